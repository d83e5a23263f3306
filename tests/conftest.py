"""Shared fixtures: a small generated dataset and a shrunken Hydra config."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = str(REPO / "conf")

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


def run_train(
    args: list[str], env: dict[str, str] | None = None, wandb_mode: str = "disabled", timeout: int = 600
) -> subprocess.CompletedProcess:
    """`python -m ar_experiments.train ARGS` from the repository root, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "ar_experiments.train", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "WANDB_MODE": wandb_mode, **(env or {})},
    )


# Small enough to generate in a few seconds, large enough for three splits and a group holdout.
TINY_SYNTHETIC = {"classes": ["MoveRight", "MoveLeft", "RotateClockwise"], "clips_per_group": [1, 1], "seed": 7}


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def synthetic_spec(**changes):
    """The generator settings of conf/data/synthetic.yaml (what `make sweep` trains on), with `changes` on top."""
    from omegaconf import OmegaConf

    from ar_experiments.data.synthetic import SyntheticSpec

    values = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "data" / "synthetic.yaml").synthetic)
    return SyntheticSpec.from_config({**values, **changes})


def tiny_spec():
    """The tiny dataset's settings, as a run with `tiny_overrides` builds them: the fixture and such runs
    share one dataset (same files, generated once)."""
    return synthetic_spec(**TINY_SYNTHETIC)


@pytest.fixture(scope="session")
def tiny_dataset(cache_dir) -> Path:
    """A generated UCF101-layout dataset of 3 classes x 25 groups x 1 clip: the one tiny runs train on."""
    from ar_experiments.data.synthetic import dataset_root, ensure_synthetic_dataset

    spec = tiny_spec()
    return ensure_synthetic_dataset(dataset_root(cache_dir, spec), spec)


def tiny_overrides(cache_dir: Path, output_dir: Path | None = None) -> list[str]:
    """Overrides that shrink a run of the demo's recipe (conf/experiment/demo.yaml) to seconds on the tiny dataset."""
    overrides = [
        "experiment=demo",
        f"paths.cache_dir={cache_dir}",
        f"data.synthetic.classes=[{','.join(TINY_SYNTHETIC['classes'])}]",
        "data.synthetic.clips_per_group=[1,1]",
        f"data.synthetic.seed={TINY_SYNTHETIC['seed']}",
        "data.num_workers=0",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
        "trainer.enable_progress_bar=false",
    ]
    if output_dir is not None:
        overrides.append(f"paths.output_dir={output_dir}")
    return overrides


@pytest.fixture
def compose_config():
    """compose(overrides) -> the training config, as `python -m ar_experiments.train` would see it."""
    from hydra import compose, initialize_config_dir

    import ar_experiments  # noqa: F401  (registers resolvers)

    def _compose(overrides: list[str]):
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            return compose("train", overrides=overrides)

    return _compose
