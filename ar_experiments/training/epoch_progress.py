"""The epoch a sweep's running job is at, for its progress.json (see sweeps/progress.py).

A Lightning callback (conf/callbacks/default.yaml) that, in a multirun job, adds
`epoch`, `max_epochs` and `stage` to the job's status file named by
AR_SWEEP_JOB_STATUS (inherited by DDP ranks; rank 0 alone writes). Outside a
sweep it does nothing.
"""

from __future__ import annotations

import os

import pytorch_lightning as pl

from ..sweeps.job_status import STATUS_ENV, update_job_status


class EpochProgress(pl.Callback):
    def __init__(self):
        self.path = os.environ.get(STATUS_ENV)

    def _update(self, trainer, **fields) -> None:
        if self.path and trainer.is_global_zero:
            update_job_status(self.path, **fields)

    def on_train_start(self, trainer, pl_module):
        if self.path and trainer.is_global_zero:
            from ..sweeps.gpu_placement import trainer_device

            update_job_status(self.path, device=trainer_device(trainer))  # also where nothing placed the job

    def on_train_epoch_start(self, trainer, pl_module):
        # epochs counted from 1: "epoch 3/20" is the third of twenty, under way
        self._update(trainer, stage="train", epoch=trainer.current_epoch + 1, max_epochs=trainer.max_epochs)

    def on_validation_epoch_end(self, trainer, pl_module):
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        value = trainer.callback_metrics.get("val/top1")
        self._update(trainer, val_top1=float(value) if value is not None else None)

    def on_test_start(self, trainer, pl_module):
        self._update(trainer, stage="test")
