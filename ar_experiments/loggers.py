"""Experiment loggers from the `logger` config group; W&B never fails a run."""

from __future__ import annotations

import logging
from typing import Any

from omegaconf import DictConfig, OmegaConf

from .redaction import is_secret_name, redacted_argv

log = logging.getLogger(__name__)


def build_loggers(logger_cfg: DictConfig | None, config: dict[str, Any], group: str) -> list:
    """Instantiate every configured logger and record the resolved `config` in each.

    The W&B run gets its name and tags from the config, `group` (the sweep
    folder) and the config. If W&B cannot start (bad key, no network, disk full)
    the run goes on with the other loggers and a warning.
    """
    from hydra.utils import instantiate

    loggers = []
    for name, entry in (logger_cfg or {}).items():
        if not entry or "_target_" not in entry:
            continue
        entry = _without_credentials(name, entry)
        if entry["_target_"].endswith("WandbLogger"):
            wandb_logger = _start_wandb(instantiate, entry, config, group)
            if wandb_logger is not None:
                loggers.append(wandb_logger)
            continue
        logger = instantiate(entry)
        logger.log_hyperparams(config)
        loggers.append(logger)
        log.debug("logger %s ready", name)
    return loggers


def _without_credentials(name: str, entry: DictConfig) -> dict[str, Any]:
    """The logger's settings minus any credential: the config is saved with every run, so none may live there."""
    settings = OmegaConf.to_container(entry, resolve=True)
    dropped = [key for key in settings if is_secret_name(key)]
    if dropped:
        log.warning(
            "ignoring logger.%s.%s, since credentials are not taken from the config (it is saved with every run); "
            "set WANDB_API_KEY in the environment or run `wandb login`",
            name,
            ",".join(dropped),
        )
    return {key: value for key, value in settings.items() if key not in dropped}


def _start_wandb(instantiate, entry, config: dict[str, Any], group: str):
    try:
        logger = instantiate(entry, group=group)
        # starting the run now makes a failure show here, not mid-training; W&B records the command line
        with redacted_argv():
            logger.experiment.config.update(config, allow_val_change=True)
        return logger
    except Exception as err:  # noqa: BLE001 - any W&B failure must leave the run alive
        log.warning("W&B could not start (%s: %s); this run continues with the other loggers", type(err).__name__, err)
        return None
