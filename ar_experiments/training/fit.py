"""Build a run's data and network, fit, and test the best checkpoint: the run's record with what they measured.

The run (run.py) writes the record, also when the fit fails part-way.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from ..record.results import RunRecord

if TYPE_CHECKING:
    from ..models.weights import PretrainedLoad
    from .interruption import GracefulStop

log = logging.getLogger(__name__)


@dataclass
class Built:
    """The data and the network of a run, built before it fits: kept by the run to record what they found
    (the unreadable videos) even when the fit fails."""

    config: dict[str, Any]  # the resolved config (secrets redacted), which the loggers record
    datamodule: Any
    module: Any  # the VideoClassifier (training/module.py)
    pretrained: PretrainedLoad | None  # what loading Kinetics-400 weights did; None: random initialisation

    def known(self) -> dict[str, Any]:
        """The record's keys known once the network is built: its size and its weights' origin."""
        from ..models import clip_gflops
        from .module import network_args

        module = self.module
        return {
            **(self.pretrained.as_record() if self.pretrained else {}),
            "params": sum(p.numel() for p in module.net.parameters()),
            "gflops": clip_gflops(num_classes=len(module.class_names), **network_args(module.hparams.model)),
        }

    def skipped(self) -> dict[str, list[str]]:
        """Unreadable videos per stage: train (each replaced by another), val and test (left out)."""
        found = {"train": self.module.skipped_videos, **self.module.left_out}
        return {stage: sorted(found.get(stage, ())) for stage in ("train", "val", "test")}


def build(cfg: DictConfig, resolved: dict[str, Any]) -> Built:
    """The run's threads, seed, data module (its split files read and checked) and network (weights loaded)."""
    from hydra.utils import instantiate

    from ..evaluation.video_level import ViewSettings
    from ..models.weights import find_pretrained, load_pretrained
    from ..sweeps.cpu_share import limit_threads

    # before Lightning is imported (seconds on a busy CPU), so a missing weights file fails fast
    weights = find_pretrained(cfg.model)
    import pytorch_lightning as pl

    from .cudnn_check import warn_known_problems
    from .module import VideoClassifier

    workers = limit_threads(cfg.get("threads_per_job"), cfg.data.num_workers)
    warn_known_problems(str(cfg.trainer.precision), str(cfg.trainer.accelerator))  # known-bad torch/cuDNN for 3D convs
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data, num_workers=workers)
    class_names = datamodule.classes  # reads and checks the split files before any model is built
    module = VideoClassifier(
        model=resolved["model"],
        class_names=class_names,
        optimizer=resolved["optimizer"],
        scheduler=resolved["scheduler"],
        view_settings=asdict(ViewSettings.from_data_config(cfg.data)),
        train_batch_size=cfg.data.batch_size,
    )
    pretrained = load_pretrained(module.net, weights) if weights is not None else None
    return Built(resolved, datamodule, module, pretrained)


def fit_and_test(
    cfg: DictConfig,
    built: Built,
    record: RunRecord,
    resume_from: str | None,
    stop: GracefulStop,
    group: str,
    started: float,
) -> RunRecord:
    """Fit (resuming from `resume_from`), test the best checkpoint, write the test's artifacts; `record` completed
    with what they measured. `stop` is the run's signal handler (a callback); `group` the W&B group; `started`
    the job's start (time.perf_counter())."""
    from hydra.utils import instantiate

    from ..evaluation.artifacts import write_run_artifacts
    from ..safety.safe_load import explain_unsafe_checkpoint
    from ..sweeps.gpu_placement import trainer_device
    from .callbacks import ResumableTraining, TrainingThroughput
    from .loggers import build_loggers
    from .run_record import clean_number

    module, datamodule = built.module, built.datamodule
    throughput = TrainingThroughput()
    # the loggers' config: the run's, with the code and packages it ran (the W&B run shows them)
    provenance = {"git_commit": record.git_commit, "git_dirty": record.git_dirty, "versions": record.versions}
    loggers = build_loggers(cfg.get("logger"), {**built.config, **provenance}, group=group)
    validation = {} if cfg.data.val_groups_per_class else {"limit_val_batches": 0}  # the whole trainlist trains
    configured = [callback for callback in (instantiate(cfg.get("callbacks")) or {}).values() if callback is not None]
    trainer = instantiate(
        cfg.trainer,
        callbacks=[*configured, ResumableTraining(cfg.seed), throughput, stop],
        logger=loggers or False,
        **validation,
    )
    with explain_unsafe_checkpoint(resume_from or ""):
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
    stop.raise_if_requested()
    checkpoint = trainer.checkpoint_callback
    best_path = checkpoint.best_model_path if checkpoint is not None else ""
    with explain_unsafe_checkpoint(best_path):
        # verbose=False: Lightning would print its table on a console that a sweep's jobs share
        trainer.test(module, datamodule=datamodule, ckpt_path=best_path or None, weights_only=True, verbose=False)
    metrics = trainer.callback_metrics
    log.info("test: %s", ", ".join(f"{k} {float(v):.4f}" for k, v in sorted(metrics.items()) if k.startswith("test/")))
    if trainer.is_global_zero:
        run_dir = Path(cfg.paths.output_dir)
        write_run_artifacts(
            run_dir, module.test_predictions, datamodule.index.test, module.class_names, trainer.loggers
        )
    metrics = {name: clean_number(value) for name, value in metrics.items()}
    best_val = clean_number(checkpoint.best_model_score) if checkpoint is not None else None
    return replace(
        record,
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
        device=trainer_device(trainer),
        world_size=trainer.world_size,
        train_seconds=throughput.train_seconds,
        train_clips_per_s=throughput.clips_per_second,
        best_checkpoint=best_path,
        startup_s=throughput.first_step_at - started if throughput.first_step_at is not None else None,
    )
