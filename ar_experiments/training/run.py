"""One run in this process: check the config, plan the resume, fit, test, and write the run record."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

log = logging.getLogger(__name__)


def _instantiate_all(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry with a _target_ (entries set to null are switched off)."""
    from hydra.utils import instantiate

    return [instantiate(entry) for entry in (group or {}).values() if entry and "_target_" in entry]


def sweep_dir() -> str | None:
    """The sweep folder when this job is part of a Hydra multirun."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized() and HydraConfig.get().mode.name == "MULTIRUN":
        return str(HydraConfig.get().sweep.dir)
    return None


def sweep_group(cfg: DictConfig) -> str:
    """The W&B group: the sweep folder for a multirun, the run folder otherwise."""
    return sweep_dir() or str(cfg.paths.output_dir)


def run_in_this_process(cfg: DictConfig, wandb_group: str | None = None, started: float | None = None) -> float:
    """Fit, test with the best checkpoint, write results.json; return best val top-1.

    The config is checked before any data is read and the split files before
    any model is built. A job whose folder already holds a completed run is
    skipped; one with a checkpoint resumes from it (see resume.py). In a DDP
    rank started by distributed.py this runs in every rank, and rank 0 writes.
    """
    started = time.perf_counter() if started is None else started
    from ..config.checks import ConfigError, check_config
    from ..safety.redaction import redact_secrets
    from ..sweeps.gpu_placement import planned_device
    from . import ranks
    from .console_log import FILE_ONLY, ONE_LINE_ERRORS
    from .interruption import GracefulStop, as_interruption
    from .ranks import is_global_zero
    from .resume import LAST_CHECKPOINT, job_overrides, plan_resume
    from .run_record import base_record, peak_gpu_mb, peak_rss_mb, write_results, write_skipped_videos

    run_dir = Path(cfg.paths.output_dir)
    try:
        # redacted before anything is saved: the module's settings go into every checkpoint
        resolved = redact_secrets(check_config(cfg))
    except ConfigError as err:
        log.error("%s failed: the config is invalid", _run_name(cfg), exc_info=True, extra=FILE_ONLY)
        if is_global_zero():  # a sweep's report lists this job as failed, with the reason
            write_results(run_dir, {"status": "failed", "run_name": _run_name(cfg), "error": _error_text(err)})
        raise
    overrides = job_overrides()
    plan = plan_resume(cfg.get("resume", "auto"), run_dir, overrides)
    if plan.completed is not None:
        log.info("%s already holds this completed run (results.json); skipping it", run_dir)
        best = plan.completed.get("best_val_acc")
        return float(best) if best is not None else float("nan")
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {**base_record(cfg), "overrides": overrides, "resumed_from": plan.checkpoint}
    record["device"] = planned_device(cfg)  # the GPU(s) placed on, for a failed run; a fit records its own
    # a DDP rank started by train() leaves the second Ctrl-C to its launching process
    stop = GracefulStop(run_dir / LAST_CHECKPOINT, second_ctrl_c_stops_at_once=not ranks.STARTED_RANK).install()
    state: dict[str, Any] = {"started": started}  # what the fit built, for the record even when it fails
    try:
        _fit_and_test(cfg, resolved, record, state, plan.checkpoint, stop, wandb_group or sweep_group(cfg))
        return float(record["best_val_acc"]) if record["best_val_acc"] is not None else float("nan")
    except BaseException as err:
        interrupted = as_interruption(err, stop.signum)
        record.update(status="interrupted" if interrupted else "failed", error=_error_text(interrupted or err))
        # the traceback in train.log: a sweep goes on past it; a one-line error's line is the console's
        one_line = FILE_ONLY if isinstance(err, ONE_LINE_ERRORS) else None
        log.error("%s %s", cfg.run_name, record["status"], exc_info=True, extra=one_line)
        if interrupted:
            if not ranks.STARTED_RANK:  # the launching process knows the sweep folder and says it
                log_how_to_resume(run_dir)
            if interrupted is not err:
                raise interrupted from err
        raise
    finally:
        stop.restore()
        module = state.get("module")
        found = {"train": module.skipped_videos, **module.left_out} if module is not None else {}
        skipped = {stage: sorted(found.get(stage, ())) for stage in ("train", "val", "test")}
        record.update(
            skipped_videos=len(skipped["train"]),
            skipped_val_videos=len(skipped["val"]),
            skipped_test_videos=len(skipped["test"]),
            wall_seconds=time.perf_counter() - started,
            peak_rss_mb=peak_rss_mb(),
            peak_gpu_mb=peak_gpu_mb(),
        )
        if is_global_zero():
            for stage, videos in skipped.items():
                if videos:
                    write_skipped_videos(run_dir, videos, stage)
            write_results(run_dir, record)
        _finish_wandb()


def _fit_and_test(cfg, resolved, record, state, resume_from, stop, wandb_group) -> None:
    """Build data, model, loggers and trainer; fit; test the best checkpoint; fill `record`."""
    from hydra.utils import instantiate

    from ..evaluation.video_level import ViewSettings
    from ..models.weights import find_pretrained, load_pretrained
    from ..safety.safe_load import explain_unsafe_checkpoint
    from ..sweeps.cpu_share import limit_threads
    from .loggers import build_loggers

    # before Lightning is imported (seconds on a busy CPU), so a missing weights file fails fast
    weights = find_pretrained(cfg.model)
    import pytorch_lightning as pl

    from ..evaluation.artifacts import write_run_artifacts
    from ..models import clip_gflops
    from .callbacks import ResumableTraining, TrainingThroughput
    from .cudnn_check import warn_known_problems
    from .module import VideoClassifier, network_args

    limit_threads(cfg)
    warn_known_problems(str(cfg.trainer.precision), str(cfg.trainer.accelerator))  # known-bad torch/cuDNN for 3D convs
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    class_names = datamodule.classes  # reads and checks the split files before any model is built
    module = state["module"] = VideoClassifier(
        model=resolved["model"],
        class_names=class_names,
        optimizer=resolved["optimizer"],
        scheduler=resolved["scheduler"],
        view_settings=ViewSettings.from_data_config(cfg.data).as_dict(),
        train_batch_size=cfg.data.batch_size,
    )
    if weights is not None:
        record.update(load_pretrained(module.net, weights).as_record())
    record["params"] = sum(p.numel() for p in module.net.parameters())
    record["gflops"] = clip_gflops(num_classes=len(class_names), **network_args(module.hparams.model))
    throughput = TrainingThroughput()
    provenance = {key: record[key] for key in ("git_commit", "git_dirty", "versions")}
    loggers = build_loggers(cfg.get("logger"), {**resolved, **provenance}, group=wandb_group)
    validation = {} if cfg.data.val_groups_per_class else {"limit_val_batches": 0}  # the whole trainlist trains
    trainer: pl.Trainer = instantiate(
        cfg.trainer,
        callbacks=[*_instantiate_all(cfg.get("callbacks")), ResumableTraining(cfg.seed), throughput, stop],
        logger=loggers or False,
        **validation,
    )
    with explain_unsafe_checkpoint(resume_from or ""):
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
    stop.raise_if_requested()
    checkpoint = trainer.checkpoint_callback
    best_path = checkpoint.best_model_path if checkpoint is not None else ""
    with explain_unsafe_checkpoint(best_path):
        trainer.test(module, datamodule=datamodule, ckpt_path=best_path or None, weights_only=True)
    metrics = trainer.callback_metrics
    best_val = checkpoint.best_model_score if checkpoint is not None else None
    record.update(
        status="completed",
        epochs=trainer.current_epoch,
        best_val_acc=best_val if best_val is not None else metrics.get("val/top1"),
        test_top1=metrics.get("test/top1"),
        test_top5=metrics.get("test/top5"),
        test_top1_multiview=metrics.get("test/top1_multiview", metrics.get("test/top1")),
        test_top5_multiview=metrics.get("test/top5_multiview", metrics.get("test/top5")),
        test_mean_class_acc=metrics.get("test/mean_class_acc"),
        test_views=cfg.test.temporal_views * cfg.test.spatial_crops,
        test_videos=module.evaluated["test"],
        val_videos=module.evaluated["val"],
        lr_effective=module.effective_lr,
        effective_batch_size=module.effective_batch_size(),
        device=_device_name(trainer),
        train_seconds=throughput.train_seconds,
        train_clips_per_s=throughput.clips_per_second,
        best_checkpoint=best_path,
        world_size=trainer.world_size,
        startup_s=throughput.first_step_at - state["started"] if throughput.first_step_at is not None else None,
    )
    if trainer.is_global_zero:
        run_dir = Path(cfg.paths.output_dir)
        write_run_artifacts(run_dir, module.test_predictions, datamodule.index.test, class_names, trainer.loggers)


def _device_name(trainer) -> str:
    """What the run trained on: "cpu", "cuda:3 (NVIDIA H200)", "cuda:0,1 (2 x NVIDIA H200)" (sweeps/)."""
    from ..sweeps.gpu_placement import trainer_device

    return trainer_device(trainer)


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
    import sys

    wandb = sys.modules.get("wandb")
    if wandb is None or wandb.run is None:
        return
    try:
        wandb.finish()
    except Exception as err:  # noqa: BLE001 - the run's results are already written
        log.warning("W&B could not finish its run (%s: %s); its local files are kept", type(err).__name__, err)
