"""The epoch a sweep's running job is at, for its progress.json (see sweeps/progress.py).

A Lightning callback (conf/callbacks/default.yaml) that, in a multirun job, adds
`epoch`, `max_epochs` and `stage` to the job's status file named by
AR_SWEEP_JOB_STATUS (inherited by DDP ranks; rank 0 alone writes), with when
training and each epoch started (the job's pace, for the sweep's time left), and
touches the file at least every HEARTBEAT_S seconds while batches finish (a file
that stops changing names a job that stopped making progress; sweeps/time_left.py).
Outside a sweep it does nothing.
"""

from __future__ import annotations

import os
import time

import pytorch_lightning as pl

from ..sweeps.job_status import STATUS_ENV, update_job_status
from ..sweeps.time_left import HEARTBEAT_S


class EpochProgress(pl.Callback):
    def __init__(self):
        self.path = os.environ.get(STATUS_ENV)
        self._written_at = 0.0

    def _update(self, trainer, **fields) -> None:
        if self.path and trainer.is_global_zero:
            update_job_status(self.path, **fields)
            self._written_at = time.time()

    def on_train_start(self, trainer, pl_module):
        if self.path and trainer.is_global_zero:
            from ..sweeps.gpu_placement import trainer_device

            # the device also where nothing placed the job; a resumed run trains from its epoch on
            self._update(
                trainer,
                device=trainer_device(trainer),
                train_started_at=time.time(),
                train_first_epoch=trainer.current_epoch + 1,
            )

    def on_train_epoch_start(self, trainer, pl_module):
        # epochs counted from 1: "epoch 3/20" is the third of twenty, under way
        epoch = trainer.current_epoch + 1
        self._update(trainer, stage="train", epoch=epoch, max_epochs=trainer.max_epochs, epoch_started_at=time.time())

    def _heartbeat(self, trainer) -> None:
        if time.time() - self._written_at >= HEARTBEAT_S:
            self._update(trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._heartbeat(trainer)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._heartbeat(trainer)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._heartbeat(trainer)

    def on_validation_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        value = trainer.callback_metrics.get("val/top1")
        self._update(trainer, val_top1=float(value) if value is not None else None)

    def on_test_start(self, trainer, pl_module):
        self._update(trainer, stage="test")
