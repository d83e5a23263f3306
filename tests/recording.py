"""Callbacks that tests add to real runs on the command line (`+callbacks.NAME._target_=tests.recording.X`)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytorch_lightning as pl


class RecordTrainingBatches(pl.Callback):
    """Appends every training batch (epoch, rank, video indices, clip start frames) to `folder`/rank<r>.jsonl."""

    def __init__(self, folder: str):
        self.folder = Path(folder)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.folder.mkdir(parents=True, exist_ok=True)
        row = {
            "epoch": trainer.current_epoch,
            "batch": batch_idx,
            "rank": trainer.global_rank,
            "indices": batch["index"].tolist(),
            "starts": batch["clip_start"].tolist(),
        }
        with open(self.folder / f"rank{trainer.global_rank}.jsonl", "a") as handle:
            handle.write(json.dumps(row) + "\n")


class SignalAtStep(pl.Callback):
    """After training step `step`, rank 0 sends the signal `name` to its own process, or with `to_parent` to
    the process that started it (the command a user runs under trainer=ddp_cpu), as `kill` would."""

    def __init__(self, step: int, name: str = "SIGTERM", to_parent: bool = False):
        self.step, self.signum, self.to_parent = step, getattr(signal, name), to_parent

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step and trainer.global_rank == 0:
            os.kill(os.getppid() if self.to_parent else os.getpid(), self.signum)


class FirstEpochBest(pl.Callback):
    """Logs `probe/first_best`, highest at epoch 0: monitored with mode=max, the first epoch's checkpoint is the
    best, so the run tests a checkpoint older than its last epoch."""

    def on_validation_epoch_end(self, trainer, pl_module):
        pl_module.log("probe/first_best", -float(trainer.current_epoch))


class SlowTrainingSteps(pl.Callback):
    """Sleeps `seconds` after every training batch, so that a run's training time is mostly its steps'."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        time.sleep(self.seconds)
