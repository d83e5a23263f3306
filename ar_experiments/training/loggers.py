"""Experiment loggers from the `logger` config group; W&B never fails a run."""

from __future__ import annotations

import csv
import functools
import io
import logging
import warnings
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import CSVLogger, WandbLogger
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from ..safety.atomic import atomic_open
from ..safety.redaction import is_secret_name, redact_secrets, redacted_argv

log = logging.getLogger(__name__)


def build_loggers(logger_cfg: DictConfig | None, config: dict[str, Any], group: str) -> list:
    """Instantiate every configured logger and record the resolved `config` in each; `group` is the W&B group.

    If W&B cannot start (bad key, no network, disk full) the run goes on with the other loggers and a warning.
    """
    from hydra.utils import instantiate

    loggers = []
    for name, entry in (logger_cfg or {}).items():
        if not entry:  # switched off (logger.<name>=null)
            continue
        entry = _without_credentials(name, entry)
        if entry["_target_"].endswith("WandbLogger"):
            loggers += _start_wandb(entry, config, group)
        else:
            loggers.append(instantiate(entry))
            loggers[-1].log_hyperparams(config)
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
    # nor in a run's name or tags: a name built from ${oc.env:...} would put one into W&B's files
    return redact_secrets({key: value for key, value in settings.items() if key not in dropped})


def _start_wandb(entry: dict[str, Any], config: dict[str, Any], group: str) -> list:
    """[the W&B logger], started, or [] when W&B cannot start."""
    from hydra.utils import instantiate

    try:
        logger = instantiate(entry, group=group)
        # starting the run now makes a failure show here, not mid-training; W&B records the command line
        with redacted_argv():
            logger.experiment.config.update(config, allow_val_change=True)
        return [logger]
    except Exception as err:  # noqa: BLE001 - any W&B failure must leave the run alive
        log.warning("W&B could not start (%s: %s); this run continues with the other loggers", type(err).__name__, err)
        return []


def _fail_safe(method):
    """Run a W&B logger method; its first failure becomes one warning and switches the logger off."""

    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        if self.failed:
            return None
        try:
            return method(self, *args, **kwargs)
        except Exception as err:  # noqa: BLE001 - a lost connection or a full disk must not end training
            self.failed = True
            log.warning(
                "W&B failed while logging (%s: %s); it is off for the rest of this run, the other loggers go on",
                type(err).__name__,
                err,
            )
            return None

    return guarded


class FailSafeWandbLogger(WandbLogger):
    """A WandbLogger whose failures after the start (network gone, disk full, W&B service dead)
    cost a warning and W&B's part of the logs, never the run."""

    failed = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Lightning passes anonymous=None, and wandb warns on every run that the setting has no effect
        if self._wandb_init.get("anonymous") is None:
            del self._wandb_init["anonymous"]

    log_hyperparams = _fail_safe(WandbLogger.log_hyperparams)
    log_metrics = _fail_safe(WandbLogger.log_metrics)
    after_save_checkpoint = _fail_safe(WandbLogger.after_save_checkpoint)
    finalize = _fail_safe(WandbLogger.finalize)


class ResumableCSVLogger(CSVLogger):
    """A CSVLogger that keeps the rows already in its metrics.csv: Lightning's (2.6) deletes the file when a
    logger starts in a folder that has one, which here is the same run, being resumed."""

    @property
    def experiment(self):
        if self._experiment is None and rank_zero_only.rank == 0:
            metrics = Path(self.log_dir) / "metrics.csv"
            earlier = metrics.read_bytes() if metrics.is_file() else b""
            with warnings.catch_warnings():  # its "previous log files will be deleted" is not true here
                warnings.filterwarnings("ignore", message="Experiment logs directory")
                writer = super().experiment  # deletes metrics.csv
            if earlier.strip():
                with atomic_open(metrics, "wb") as handle:
                    handle.write(earlier)
                writer.metrics_keys = next(csv.reader(io.StringIO(earlier.decode("utf-8"))))
        return super().experiment
