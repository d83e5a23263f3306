"""Every option of every config group composes, and every code path it names (`_target_`, a sweeper's search
space) is importable: a module moved or renamed without its config fails here, not an hour into a sweep."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, OmegaConf

from tests.conftest import CONF_DIR

GROUPS_OF_OTHER_ENTRIES = {"local"}  # conf/local holds only a README: a user's own overrides, ignored by git


def group_options() -> list[tuple[str, str]]:
    options = []
    for folder in sorted(Path(CONF_DIR).iterdir()):
        if not folder.is_dir() or folder.name in GROUPS_OF_OTHER_ENTRIES:
            continue
        for path in sorted(folder.rglob("*.yaml")):
            group = path.parent.relative_to(CONF_DIR).as_posix()
            options.append((group, path.stem))
    return options


def code_paths(node: Any, where: str = "") -> list[tuple[str, str]]:
    """(key, dotted path) of every `_target_` and every string value naming a module of this package."""
    found = []
    if isinstance(node, DictConfig) and not node._is_none():
        for key, value in node.items_ex(resolve=False):
            path = f"{where}.{key}" if where else str(key)
            if isinstance(value, str) and (key == "_target_" or value.startswith("ar_experiments.")):
                found.append((path, value))
            elif isinstance(value, DictConfig | ListConfig):
                found += code_paths(value, path)
    elif isinstance(node, ListConfig) and not node._is_none():
        for index, item in enumerate(node._iter_ex(resolve=False)):
            if isinstance(item, DictConfig | ListConfig):
                found += code_paths(item, f"{where}[{index}]")
    return found


def compose_with(group: str, option: str) -> DictConfig:
    overrides = [f"{group.replace('/', '.')}={option}"] if not group.startswith("hydra") else [f"{group}={option}"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=True)


@pytest.mark.parametrize(("group", "option"), group_options(), ids=lambda value: str(value))
def test_every_group_option_composes_and_its_code_paths_import(group, option):
    import ar_experiments  # noqa: F401  (registers the resolvers)

    cfg = compose_with(group, option)
    paths = code_paths(cfg)
    assert paths, f"{group}={option}: found no _target_ at all; the walk over the config is broken"
    unresolved = []
    for key, dotted in paths:
        try:
            get_object(dotted)
        except Exception as err:  # noqa: BLE001 - any failure to locate is what this test reports
            unresolved.append(f"{key}: {dotted} ({type(err).__name__})")
    assert not unresolved, f"{group}={option} names code that does not import:\n" + "\n".join(unresolved)


def test_a_stale_target_is_caught(tmp_path):
    """The walk sees nested targets: a moved module's old path would fail the test above."""
    cfg = OmegaConf.create({"a": {"b": [{"_target_": "ar_experiments.moved_away.StopOnNonFiniteLoss"}]}})
    ((key, dotted),) = code_paths(cfg)
    assert key == "a.b[0]._target_"
    with pytest.raises(Exception):  # noqa: B017 - hydra raises ImportError or its own error by version
        get_object(dotted)
