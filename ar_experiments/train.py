"""Train, validate and test one configuration; a Hydra multirun of it is the experiment grid.

    python -m ar_experiments.train model=slowfast frames=16 split=2
    python -m ar_experiments.train -m model=x3d_m,slowfast frames=6,8,16
"""

from __future__ import annotations

import gc
import logging
import time
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from . import config_resolvers  # noqa: F401  (registers the resolvers the configs use)

log = logging.getLogger(__name__)


def _instantiate_all(group: DictConfig | None) -> list[Any]:
    """Instantiate every entry with a _target_ (entries set to null are switched off)."""
    from hydra.utils import instantiate

    return [instantiate(entry) for entry in (group or {}).values() if entry and "_target_" in entry]


def _sweep_group(cfg: DictConfig) -> str:
    """The W&B group: the sweep folder for a multirun, the run folder otherwise."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        hydra_cfg = HydraConfig.get()
        if hydra_cfg.mode.name == "MULTIRUN":
            return str(hydra_cfg.sweep.dir)
    return str(cfg.paths.output_dir)


def base_record(cfg: DictConfig) -> dict[str, Any]:
    from .run_record import git_state, package_versions

    return {
        "status": "running",
        "run_name": cfg.run_name,
        "data": cfg.data.name,
        "model": cfg.model.name,
        "frames": cfg.data.frames,
        "stride": cfg.data.stride,
        "split": cfg.data.split,
        "seed": cfg.seed,
        "optimizer": cfg.optimizer._target_.rsplit(".", 1)[-1],
        "lr": cfg.optimizer.lr,
        **git_state(Path(cfg.paths.root_dir)),
        "versions": package_versions(),
    }


def train(cfg: DictConfig) -> float:
    """Fit, test with the best checkpoint, write results.json; return best val top-1."""
    started = time.perf_counter()  # before the imports: the first job of a process pays for them
    import pytorch_lightning as pl
    from hydra.utils import instantiate

    from .callbacks import TrainingThroughput
    from .loggers import build_loggers
    from .module import VideoClassifier
    from .run_record import peak_rss_mb, redact_secrets, write_results

    run_dir = Path(cfg.paths.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    record = base_record(cfg)
    try:
        pl.seed_everything(cfg.seed, workers=True)
        datamodule = instantiate(cfg.data)
        class_names = datamodule.classes  # reads and checks the split files before any model is built
        module = VideoClassifier(
            model=OmegaConf.to_container(cfg.model, resolve=True),
            class_names=class_names,
            optimizer=OmegaConf.to_container(cfg.optimizer, resolve=True),
            scheduler=OmegaConf.to_container(cfg.scheduler, resolve=True),
        )
        record["params"] = sum(p.numel() for p in module.net.parameters())
        throughput = TrainingThroughput()
        resolved = redact_secrets(OmegaConf.to_container(cfg, resolve=True))
        loggers = build_loggers(cfg.get("logger"), resolved, group=_sweep_group(cfg))
        trainer: pl.Trainer = instantiate(
            cfg.trainer, callbacks=[*_instantiate_all(cfg.get("callbacks")), throughput], logger=loggers or False
        )
        trainer.fit(module, datamodule=datamodule)
        checkpoint = trainer.checkpoint_callback
        best_path = checkpoint.best_model_path if checkpoint is not None else ""
        trainer.test(module, datamodule=datamodule, ckpt_path=best_path or None)
        metrics = trainer.callback_metrics
        best_val = checkpoint.best_model_score if checkpoint is not None and checkpoint.best_model_score is not None else metrics.get("val/top1")
        record.update(
            status="completed",
            epochs=trainer.current_epoch,
            best_val_acc=best_val,
            test_top1=metrics.get("test/top1"),
            test_top5=metrics.get("test/top5"),
            test_top1_multiview=metrics.get("test/top1_multiview", metrics.get("test/top1")),
            test_top5_multiview=metrics.get("test/top5_multiview", metrics.get("test/top5")),
            test_mean_class_acc=metrics.get("test/mean_class_acc"),
            test_views=cfg.test.temporal_views * cfg.test.spatial_crops,
            train_seconds=throughput.train_seconds,
            train_clips_per_s=throughput.clips_per_second,
            best_checkpoint=best_path,
            world_size=trainer.world_size,
            skipped_videos=len(module.skipped_videos),
            startup_s=throughput.first_step_at - started if throughput.first_step_at is not None else None,
        )
        return float(record["best_val_acc"]) if record["best_val_acc"] is not None else float("nan")
    except BaseException as err:
        record.update(status="interrupted" if isinstance(err, KeyboardInterrupt) else "failed", error=f"{type(err).__name__}: {err}")
        raise
    finally:
        record["wall_seconds"] = time.perf_counter() - started
        record["peak_rss_mb"] = peak_rss_mb()
        write_results(run_dir, record)
        _finish_wandb()


def _finish_wandb() -> None:
    """Close this job's W&B run so the next multirun job starts its own."""
    import sys

    if "wandb" in sys.modules and sys.modules["wandb"].run is not None:
        sys.modules["wandb"].finish()


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float:
    try:
        return train(cfg)
    finally:
        # trainer, module and loaders reference each other: collect them now, before the next multirun job
        gc.collect()


if __name__ == "__main__":
    main()
