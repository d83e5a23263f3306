"""Ctrl-C and pre-emption (SIGINT, SIGTERM): stop at a safe point with a checkpoint to resume from exactly.

Where a run stops and what it leaves is docs/faults.md's "Ctrl-C, pre-emption and resuming". `GracefulStop`
only notes the signal; the stop goes through Lightning's own SIGTERM path (its loops raise `SIGTERMException`
at their checks), with the ranks deciding together after each batch so that all stop after the same one.
Lightning's own SIGTERM handler is kept out, since it runs a collective inside the signal handler.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path

import pytorch_lightning as pl
from pytorch_lightning.trainer.states import TrainerFn
from pytorch_lightning.utilities.exceptions import SIGTERMException

from ..data.loader_workers import STOP_SIGNALS

log = logging.getLogger(__name__)


def take_signals(handler) -> dict[int, object]:
    """Make `handler` SIGINT's and SIGTERM's; the handlers it replaced, for `restore_signals` (none outside the
    main thread, where Python refuses to install handlers)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}


def restore_signals(previous: dict[int, object]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


class RunInterrupted(SIGTERMException):
    """Training stopped on SIGINT or SIGTERM; the process exits with 128 + the signal number. A SystemExit, not
    an Exception: a Hydra multirun stops at once instead of starting its next job on a machine being taken away."""

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum

    def __str__(self) -> str:
        return f"stopped by {signal.Signals(self.signum).name}"


def as_interruption(err: BaseException, signum: int | None) -> RunInterrupted | None:
    """`err` as a RunInterrupted if it is a stop by signal or Ctrl-C, else None; Lightning's own stops too: its
    SIGTERMException (exit code 0) and the sys.exit(1) it makes of a KeyboardInterrupt."""
    if isinstance(err, RunInterrupted):
        return err
    if isinstance(err, (SIGTERMException, KeyboardInterrupt)) or isinstance(err.__context__, KeyboardInterrupt):
        return RunInterrupted(signum or signal.SIGINT)
    return None


class GracefulStop(pl.Callback):
    """Once installed (for the whole run, not only while a trainer runs), SIGINT and SIGTERM stop the run at the
    next safe point; a second Ctrl-C at once. DataLoader workers ignore both signals (data/loader_workers.py):
    the main process shuts them down. DDP ranks started by train() never stop at once
    (`second_ctrl_c_stops_at_once=False`): a Ctrl-C reaches them from the terminal and from the launching
    process, which kills them itself on a second Ctrl-C.
    """

    def __init__(self, checkpoint: str | Path, second_ctrl_c_stops_at_once: bool = True):
        self.checkpoint = Path(checkpoint)
        self.second_ctrl_c_stops_at_once = second_ctrl_c_stops_at_once
        self.signum: int | None = None
        self._previous: dict[int, object] = {}
        self._steps_at_start: int | None = None
        self._pid = os.getpid()

    def install(self) -> GracefulStop:
        self._previous = take_signals(self._request_stop)
        return self

    def restore(self) -> None:
        restore_signals(self._previous)
        self._previous = {}

    def _request_stop(self, signum: int, frame) -> None:
        if os.getpid() != self._pid:
            return  # a forked DataLoader worker: the main process stops the run and then the workers
        if self.signum is not None:
            if signum == signal.SIGINT and self.second_ctrl_c_stops_at_once:
                raise KeyboardInterrupt
            return
        self.signum = signum
        at_once = " (Ctrl-C again stops at once, without a checkpoint)" if self.second_ctrl_c_stops_at_once else ""
        log.warning("%s received: stopping at the next safe point%s", signal.Signals(signum).name, at_once)

    def raise_if_requested(self) -> None:
        if self.signum is not None:
            raise RunInterrupted(self.signum)

    def _stop_when_any_rank_asks(self, trainer) -> None:
        """Let Lightning's loops raise SIGTERMException at their next check, on every rank at once."""
        if trainer.strategy.reduce_boolean_decision(self.signum is not None, all=False):
            self.signum = self.signum or signal.SIGTERM  # another rank was signalled
            trainer._signal_connector.received_sigterm = True

    def _take_back_the_signals(self) -> None:
        """Lightning installs its own SIGTERM handler when a trainer starts; this one stays in charge."""
        take_signals(self._request_stop)

    # a signal that came while no trainer ran stops the next one before its first batch
    def on_train_start(self, trainer, pl_module):
        self._take_back_the_signals()
        self._steps_at_start = trainer.global_step
        self.raise_if_requested()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        # a batch that ends the epoch is followed by validation: that stop waits for the epoch's end; one
        # inside an accumulated step waits for the step (a checkpoint holds no gradients accumulated so far)
        done = trainer.fit_loop.epoch_loop.batch_progress.current.ready
        if done < trainer.num_training_batches and done % trainer.accumulate_grad_batches == 0:
            self._stop_when_any_rank_asks(trainer)

    def on_train_epoch_end(self, trainer, pl_module):
        self._stop_when_any_rank_asks(trainer)

    def on_test_start(self, trainer, pl_module):
        self._take_back_the_signals()
        self.raise_if_requested()

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self.raise_if_requested()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException) or trainer.state.fn != TrainerFn.FITTING:
            return
        # before the first step of this fit the checkpoint it started from (if any) is still current;
        # Lightning does not resume a checkpoint taken before the loops began
        if self._steps_at_start is None or trainer.global_step == self._steps_at_start:
            log.warning("stopped before training advanced; nothing new to save")
            return
        trainer.save_checkpoint(self.checkpoint)  # every rank takes part; rank 0 writes
        if trainer.is_global_zero:
            log.warning("saved %s (epoch %d, step %d)", self.checkpoint, trainer.current_epoch, trainer.global_step)
