"""Lightning callbacks of the project."""

from __future__ import annotations

import time

import pytorch_lightning as pl
import torch


class TrainingThroughput(pl.Callback):
    """Seconds spent in training epochs (validation excluded) and clips trained on."""

    def __init__(self):
        self.train_seconds = 0.0
        self.clips = 0
        self._epoch_start: float | None = None

    def on_train_epoch_start(self, trainer, pl_module):
        self._epoch_start = time.perf_counter()

    def _close_epoch(self):
        if self._epoch_start is not None:
            self.train_seconds += time.perf_counter() - self._epoch_start
            self._epoch_start = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.clips += int(batch["label"].shape[0])

    def on_validation_epoch_start(self, trainer, pl_module):
        self._close_epoch()

    def on_train_epoch_end(self, trainer, pl_module):
        self._close_epoch()

    def on_train_end(self, trainer, pl_module):
        # under DDP every rank counted its own clips; the run's throughput counts all of them
        local = torch.tensor(float(self.clips), device=pl_module.device)
        self.clips = int(trainer.strategy.reduce(local, reduce_op="sum"))

    @property
    def clips_per_second(self) -> float:
        return self.clips / self.train_seconds if self.train_seconds else 0.0


class FailOnNonFiniteLoss(pl.Callback):
    """Ends the run with an error as soon as the training loss is NaN or infinite.

    A diverged run would otherwise train on for hours and be reported as a poor
    but valid result; failing makes it a failed job (and a failed Optuna trial).
    Under DDP the ranks decide together, so none is left waiting for the others.
    """

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        diverged = loss is not None and not bool(torch.isfinite(loss).all())
        if trainer.strategy.reduce_boolean_decision(diverged, all=False):
            raise FloatingPointError(
                f"the training loss is not finite at epoch {trainer.current_epoch}, step {trainer.global_step}; "
                "lower optimizer.lr or set trainer.gradient_clip_val"
            )
