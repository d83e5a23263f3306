"""One run in this process: check the config, plan the resume, fit, test, and write the run record.

Resuming (`resume=auto`, the default): a completed run's folder is skipped (its recorded best_val_acc returned,
so a re-run sweep only does what is left), else training continues from `checkpoints/last.ckpt` if present;
`resume=<run folder or .ckpt>` continues from that checkpoint in this run's own folder (docs/faults.md).
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from ..config.checks import ConfigError
from ..data.splits import DatasetIndexError
from ..record.results import RunRecord, record_from
from ..safety.atomic import read_json
from .fit import Built, build, fit_and_test

log = logging.getLogger(__name__)
# errors whose message names the key or file and the fix in one line, which train.py prints (in a sweep, the job's
# progress line does); their tracebacks go to this logger, which conf/hydra/default.yaml sends to train.log alone
ONE_LINE_ERRORS = (ConfigError, DatasetIndexError)
train_log_only = logging.getLogger("ar_experiments.train_log_only")
LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"


def sweep_dir() -> str | None:
    """The sweep folder when this job is part of a Hydra multirun."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized() and HydraConfig.get().mode.name == "MULTIRUN":
        return str(HydraConfig.get().sweep.dir)
    return None


def sweep_group(cfg: DictConfig) -> str:
    """The W&B group: the sweep folder for a multirun, the run folder otherwise."""
    return sweep_dir() or str(cfg.paths.output_dir)


@dataclass(frozen=True)
class ResumePlan:
    """What a run does with the state it finds: nothing, continue from `checkpoint`, or skip as `completed`."""

    checkpoint: str | None = None
    completed: dict[str, Any] | None = None


def job_overrides() -> list[str] | None:
    """This job's command-line overrides (a sweep's values included) minus `resume=`; None outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return sorted(o for o in HydraConfig.get().overrides.task if not o.lstrip("+~").startswith("resume="))


def plan_resume(resume: str, run_dir: Path, overrides: list[str] | None) -> ResumePlan:
    """Decide from `resume` and the state in `run_dir`; refuse state left by a job with other overrides."""
    if resume != "auto":
        path = Path(resume).expanduser()
        checkpoint = path / LAST_CHECKPOINT if path.is_dir() else path
        if not checkpoint.is_file():
            raise ConfigError([f"resume={resume}: no checkpoint at {checkpoint}; pass a run folder or a .ckpt file"])
        return ResumePlan(checkpoint=str(checkpoint))
    results = run_dir / "results.json"
    previous = read_json(results)
    if previous is None and results.is_file():  # written atomically: a hand-edited or foreign file; do not guess
        raise ConfigError([f"{results} cannot be read as JSON; delete it or run in a new folder"])
    recorded = (previous or {}).get("overrides")
    if recorded is not None and overrides is not None and sorted(recorded) != overrides:
        raise ConfigError(
            [
                f"{run_dir} holds a run with other overrides ({' '.join(recorded)}); re-run with exactly "
                "those to resume it, or give this run a new folder (hydra.run.dir=... / hydra.sweep.dir=...)"
            ]
        )
    if previous is not None and previous.get("status") == "completed":
        return ResumePlan(completed=previous)
    last = run_dir / LAST_CHECKPOINT
    return ResumePlan(checkpoint=str(last)) if last.is_file() else ResumePlan()


def run_in_this_process(
    cfg: DictConfig, wandb_group: str | None = None, started: float | None = None, *, started_rank: bool = False
) -> RunRecord:
    """Fit, test with the best checkpoint, write results.json; return the record written. The config is checked
    before any data is read, and the split files before any model is built; a completed run is skipped (its
    record returned), an interrupted one resumed (plan_resume). In DDP this runs in every rank, and rank 0
    writes; `started_rank`: a rank that distributed.py started, whose launcher handles the second Ctrl-C and
    the resume hint.
    """
    started = time.perf_counter() if started is None else started
    from pytorch_lightning.utilities import rank_zero_only

    from ..config.checks import check_config
    from ..safety.redaction import redact_secrets
    from ..sweeps.gpu_placement import planned_device
    from .interruption import GracefulStop, as_interruption
    from .run_record import base_record, peak_gpu_mb, peak_rss_mb, write_results, write_skipped_videos

    run_dir = Path(cfg.paths.output_dir)
    try:
        # redacted before anything is saved: the module's settings go into every checkpoint
        resolved = redact_secrets(check_config(cfg))
    except ConfigError as err:
        train_log_only.error("%s failed: the config is invalid", _run_name(cfg), exc_info=True)
        if rank_zero_only.rank == 0:  # a sweep's report lists this job as failed, with the reason
            write_results(run_dir, RunRecord(status="failed", run_name=_run_name(cfg), error=_error_text(err)))
        raise
    overrides = job_overrides()
    plan = plan_resume(cfg.get("resume", "auto"), run_dir, overrides)
    if plan.completed is not None:
        log.info("%s already holds this completed run (results.json); skipping it", run_dir)
        return record_from(plan.completed)
    run_dir.mkdir(parents=True, exist_ok=True)
    # the GPU(s) placed on, for a failed run; a fit records its own
    record = replace(base_record(cfg), overrides=overrides, resumed_from=plan.checkpoint, device=planned_device(cfg))
    stop = GracefulStop(run_dir / LAST_CHECKPOINT, second_ctrl_c_stops_at_once=not started_rank).install()
    built: Built | None = None
    try:
        built = build(cfg, resolved)
        record = replace(record, **built.known())
        record = fit_and_test(cfg, built, record, plan.checkpoint, stop, wandb_group or sweep_group(cfg), started)
    except BaseException as err:
        interrupted = as_interruption(err, stop.signum)
        record = replace(
            record, status="interrupted" if interrupted else "failed", error=_error_text(interrupted or err)
        )
        # the traceback in train.log: a sweep goes on past it; a one-line error's line is the console's
        (train_log_only if isinstance(err, ONE_LINE_ERRORS) else log).error(
            "%s %s", cfg.run_name, record.status, exc_info=True
        )
        if interrupted:
            if not started_rank:  # the launching process knows the sweep folder and says it
                log_how_to_resume(run_dir)
            if interrupted is not err:
                raise interrupted from err
        raise
    finally:
        stop.restore()
        skipped = built.skipped() if built is not None else {"train": [], "val": [], "test": []}
        record = replace(
            record,
            skipped_videos=len(skipped["train"]),
            skipped_val_videos=len(skipped["val"]),
            skipped_test_videos=len(skipped["test"]),
            wall_seconds=time.perf_counter() - started,
            peak_rss_mb=peak_rss_mb(),
            peak_gpu_mb=peak_gpu_mb(),
        )
        if rank_zero_only.rank == 0:  # rank 0 alone writes run files
            for stage, videos in skipped.items():
                if videos:
                    write_skipped_videos(run_dir, videos, stage)
            write_results(run_dir, record)
        _finish_wandb()
    return record


def _run_name(cfg: DictConfig) -> str | None:
    """The run name, or None when the config is too broken to resolve it."""
    try:
        return str(cfg.run_name)
    except Exception:  # noqa: BLE001 - any resolution error: the record is written without it
        return None


def _error_text(err: BaseException) -> str:
    """`Type: message`; for an error raised in a DataLoader worker, without the worker's traceback."""
    text = str(err)
    if "Original Traceback" in text:  # torch re-raises a worker's error with its traceback as the message
        text = text.strip().splitlines()[-1].split(": ", 1)[-1]  # the traceback's last line: "module.Type: message"
    return f"{type(err).__name__}: {text}"


def log_how_to_resume(run_dir: Path) -> None:
    sweep = sweep_dir()
    folder = f"hydra.sweep.dir={sweep}" if sweep else f"hydra.run.dir={run_dir}"
    log.warning("interrupted; to resume, re-run the same command with %s", folder)


def _finish_wandb() -> None:
    """Close this job's W&B run so the next multirun job starts its own; a W&B failure here is only a warning."""
    wandb = sys.modules.get("wandb")
    if wandb is None or wandb.run is None:
        return
    try:
        wandb.finish()
    except Exception as err:  # noqa: BLE001 - the run's results are already written
        log.warning("W&B could not finish its run (%s: %s); its local files are kept", type(err).__name__, err)
