"""Lightning callbacks of the project."""

from __future__ import annotations

import time

import pytorch_lightning as pl


class TrainingThroughput(pl.Callback):
    """Seconds spent in training epochs (validation excluded), clips trained on, and when the first step began."""

    def __init__(self):
        self.train_seconds = 0.0
        self.clips = 0
        self.first_step_at: float | None = None  # time.perf_counter() when the first batch was ready
        self._epoch_start: float | None = None

    def on_train_epoch_start(self, trainer, pl_module):
        self._epoch_start = time.perf_counter()

    def _close_epoch(self):
        if self._epoch_start is not None:
            self.train_seconds += time.perf_counter() - self._epoch_start
            self._epoch_start = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.first_step_at is None:
            self.first_step_at = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.clips += int(batch["label"].shape[0])

    def on_validation_epoch_start(self, trainer, pl_module):
        self._close_epoch()

    def on_train_epoch_end(self, trainer, pl_module):
        self._close_epoch()

    @property
    def clips_per_second(self) -> float:
        return self.clips / self.train_seconds if self.train_seconds else 0.0
