"""The training config as `python -m ar_experiments.train OVERRIDES` composes it, for the commands that build
parts of a run without running one (summary, bench)."""

from __future__ import annotations

from omegaconf import DictConfig

from .resolvers import CONF_DIR


def compose_train_config(overrides: list[str]) -> DictConfig:
    from hydra import compose, initialize_config_dir

    if not CONF_DIR.is_dir():
        raise FileNotFoundError(f"no conf/ folder at {CONF_DIR}; run this from a checkout of the project")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=overrides)
