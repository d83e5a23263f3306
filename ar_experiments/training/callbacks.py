"""Lightning callbacks of the project."""

from __future__ import annotations

import math
import os
import time

import numpy as np
import pytorch_lightning as pl
import torch

from ..sweeps.job_status import STATUS_ENV, update_job_status
from ..sweeps.time_left import HEARTBEAT_S


class TrainingThroughput(pl.Callback):
    """Seconds spent in training epochs (validation excluded), clips trained on, and when the first step began.

    The totals travel in checkpoints, so a resumed run reports the whole run's throughput: a checkpoint
    saved in the middle of an epoch (a stop by signal) carries that epoch's seconds so far, and a run
    resumed there times the rest of the epoch from its first batch (Lightning starts no epoch then). Once
    training has ended they are final: testing the best checkpoint restores callback states too,
    and would otherwise roll them back to that epoch's.
    """

    def __init__(self):
        self.train_seconds = 0.0
        self.clips = 0
        self.finished = False
        self.first_step_at: float | None = None  # time.perf_counter() when the first batch was ready
        self._epoch_start: float | None = None

    def on_train_epoch_start(self, trainer, pl_module):
        self._epoch_start = time.perf_counter()

    def _epoch_seconds(self) -> float:
        """The seconds of the epoch under way, so far (0 between epochs)."""
        return time.perf_counter() - self._epoch_start if self._epoch_start is not None else 0.0

    def _close_epoch(self):
        self.train_seconds += self._epoch_seconds()
        self._epoch_start = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        now = time.perf_counter()
        if self.first_step_at is None:
            self.first_step_at = now
        if self._epoch_start is None:  # resumed mid-epoch, or training again after a validation inside the epoch
            self._epoch_start = now

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
        self.finished = True

    def state_dict(self) -> dict:
        return {"train_seconds": self.train_seconds + self._epoch_seconds(), "clips": self.clips}

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        # the clips of every rank so far (every rank saves together); after a resume rank 0 carries them
        local = torch.tensor(float(self.clips), device=pl_module.device)
        checkpoint["callbacks"][self.state_key]["clips"] = int(trainer.strategy.reduce(local, reduce_op="sum"))

    def load_state_dict(self, state_dict: dict) -> None:
        from pytorch_lightning.utilities import rank_zero_only

        if self.finished:
            return
        self.train_seconds = state_dict.get("train_seconds", 0.0)
        self.clips = state_dict.get("clips", 0) if getattr(rank_zero_only, "rank", 0) == 0 else 0

    @property
    def clips_per_second(self) -> float:
        return self.clips / self.train_seconds if self.train_seconds else 0.0


class ResumableTraining(pl.Callback):
    """Makes a training run a function of (seed, epoch, batch), so that a resumed run is the uninterrupted one:
    the training batch sampler learns which epoch starts (Lightning's own `set_epoch` never reaches a batch
    sampler) and counts the batches done, a position checkpoints keep (data/training_batches.py); before every
    training batch the random generators are seeded from (seed, epoch, batch, rank), so dropout does not
    depend on what drew random numbers before (a loader starting, a validation pass, a restart).
    """

    def __init__(self, seed: int):
        self.seed = seed

    @staticmethod
    def _batch_sampler(trainer):
        loader = trainer.train_dataloader
        sampler = getattr(loader, "batch_sampler", None)
        return sampler if hasattr(sampler, "batch_done") else None

    def on_train_epoch_start(self, trainer, pl_module):
        if (sampler := self._batch_sampler(trainer)) is not None:
            # debug=overfit (trainer.overfit_batches): the same batches, with the same clips, every epoch
            sampler.set_epoch(0 if trainer.overfit_batches else trainer.current_epoch)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        # batch_idx counts from the epoch's start, also in a run resumed mid-epoch (Lightning restores it)
        position = [self.seed, trainer.current_epoch, batch_idx, trainer.global_rank]
        torch.manual_seed(int(np.random.SeedSequence(position).generate_state(1)[0]))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if (sampler := self._batch_sampler(trainer)) is not None:
            sampler.batch_done(trainer.num_training_batches)


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


class StopOnNonFiniteLoss(pl.Callback):
    """Fails the run at the first NaN or infinite training loss, naming the step and the last finite loss: else a
    diverged run trains on for hours with NaN weights and ends as 'completed' with chance accuracy."""

    def __init__(self):
        self.last_finite: tuple[int, float] | None = None  # (step, loss)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        value = float(outputs["loss"].detach())  # Lightning hands on training_step's loss as {"loss": ...}
        step = trainer.global_step  # optimizer steps so far, this one included
        # under DDP the ranks decide together, so none is left waiting for the others
        if not trainer.strategy.reduce_boolean_decision(not math.isfinite(value), all=False):
            self.last_finite = (step, value)
            return
        before = (
            f"the last finite loss was {self.last_finite[1]:.4g} at step {self.last_finite[0]}"
            if self.last_finite
            else "no earlier step had a finite loss"
        )
        lr = trainer.optimizers[0].param_groups[0]["lr"]
        where = (
            f"training loss is {value}" if not math.isfinite(value) else "another rank's training loss is not finite"
        )
        raise NonFiniteLossError(
            f"{where} at step {step} (epoch {trainer.current_epoch}, batch {batch_idx}); {before}. "
            f"Lower optimizer.lr (the learning rate is now {lr:g}) or set trainer.gradient_clip_val=1.0"
        )


class EpochProgress(pl.Callback):
    """In a multirun job, the epoch and stage for its progress.json: added to the job's status file
    (AR_SWEEP_JOB_STATUS; rank 0 alone writes) with when training and each epoch started (the job's pace), and
    a touch at least every HEARTBEAT_S seconds while batches finish (a file that stops changing names a job
    that stopped making progress). Outside a sweep it does nothing."""

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
