"""Ctrl-C and pre-emption (SIGINT, SIGTERM): stop at a safe point with a checkpoint to resume from.

What Lightning 2.6 does on its own, without SLURM: while a trainer runs, its
SIGTERM handler sets `trainer.received_sigterm`, and the loops raise
`SIGTERMException` (a SystemExit with exit code 0) at points a checkpoint can
resume from exactly: after a training batch, after a validation batch, after
an epoch's end (never between an epoch's last batch and its validation). It
saves nothing. Ctrl-C raises KeyboardInterrupt wherever the code happens to
be, which Lightning turns into `sys.exit(1)`.

`GracefulStop` keeps Lightning's safe points and adds what is missing: Ctrl-C
is passed on to Lightning as SIGTERM, `checkpoints/last.ckpt` is saved when
the stop happens while fitting, a signal that arrives while no trainer runs
(setup, between fit and test) stops the next one at its start, and the run
ends as `status: interrupted` with exit code 128 + the signal number.
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

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class RunInterrupted(SIGTERMException):
    """Training stopped on SIGINT or SIGTERM; the process exits with 128 + the signal number.

    A SystemExit, not an Exception: a Hydra multirun stops at once instead of
    starting its next job on a machine that is being taken away.
    """

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum

    def __str__(self) -> str:
        return f"stopped by {signal.Signals(self.signum).name}"


def as_interruption(err: BaseException, signum: int | None) -> RunInterrupted | None:
    """`err` as a RunInterrupted if it is a stop by signal or Ctrl-C, else None.

    Covers Lightning's own stops: its SIGTERMException (exit code 0) and the
    sys.exit(1) it makes of a KeyboardInterrupt.
    """
    if isinstance(err, RunInterrupted):
        return err
    if isinstance(err, (SIGTERMException, KeyboardInterrupt)) or isinstance(err.__context__, KeyboardInterrupt):
        return RunInterrupted(signum or signal.SIGINT)
    return None


class GracefulStop(pl.Callback):
    """Once installed, SIGINT and SIGTERM stop the run at the next safe point; a second Ctrl-C at once.

    Installed for the whole run, not only while a trainer runs. DataLoader
    workers are forked with these handlers and ignore the signals, so Ctrl-C
    (which reaches every process of the terminal) leaves them running until
    the main process shuts them down.
    """

    def __init__(self, checkpoint: str | Path):
        self.checkpoint = Path(checkpoint)
        self.signum: int | None = None
        self._previous: dict[int, object] = {}
        self._steps_at_start: int | None = None
        self._pid = os.getpid()

    def install(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            self._previous = {signum: signal.signal(signum, self._request_stop) for signum in SIGNALS}
        return self

    def restore(self) -> None:
        """Put back the handlers that were there before `install`."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _request_stop(self, signum: int, frame) -> None:
        if os.getpid() != self._pid:
            return  # a forked DataLoader worker: the main process stops the run and then the workers
        if self.signum is not None:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            return  # Lightning's SIGTERM handler calls this one too
        self.signum = signum
        log.warning(
            "%s received: stopping at the next safe point (Ctrl-C again stops at once, without a checkpoint)",
            signal.Signals(signum).name,
        )
        if signum == signal.SIGINT and signal.getsignal(signal.SIGTERM) != self._request_stop:
            signal.raise_signal(signal.SIGTERM)  # a trainer runs: its loops stop at their safe points

    def raise_if_requested(self) -> None:
        if self.signum is not None:
            raise RunInterrupted(self.signum)

    # a signal that came while no trainer ran stops the next one before its first batch
    def on_train_start(self, trainer, pl_module):
        self._steps_at_start = trainer.global_step
        self.raise_if_requested()

    def on_test_start(self, trainer, pl_module):
        self.raise_if_requested()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException) or trainer.state.fn != TrainerFn.FITTING:
            return
        # before the first step of this fit the checkpoint it started from (if any) is still current;
        # Lightning does not resume a checkpoint taken before the loops began
        if self._steps_at_start is None or trainer.global_step == self._steps_at_start:
            log.warning("stopped before training advanced; nothing new to save")
            return
        trainer.save_checkpoint(self.checkpoint)
        log.warning("saved %s (epoch %d, step %d)", self.checkpoint, trainer.current_epoch, trainer.global_step)
