"""Ctrl-C and pre-emption (SIGINT, SIGTERM): stop at a batch boundary with a checkpoint to resume from.

Lightning 2.6 handles SIGTERM itself only halfway: without SLURM it sets
`trainer.received_sigterm` and raises `SIGTERMException` (a SystemExit with
exit code 0) at its loop boundaries, saving nothing; Ctrl-C becomes a
KeyboardInterrupt wherever the code happens to be, which Lightning turns into
`sys.exit(1)`. `GracefulStop` replaces both with one behaviour: the current
batch finishes, `checkpoints/last.ckpt` is saved (while fitting), and the run
ends as `status: interrupted` with exit code 128 + the signal number.
"""

from __future__ import annotations

import logging
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


def is_interruption(err: BaseException) -> bool:
    """A signal or Ctrl-C, including Lightning's sys.exit(1) after a KeyboardInterrupt."""
    return isinstance(err, (SIGTERMException, KeyboardInterrupt)) or isinstance(err.__context__, KeyboardInterrupt)


class GracefulStop(pl.Callback):
    """Once installed, SIGINT and SIGTERM stop the run at the next batch boundary.

    The flag is checked after each training batch but an epoch's last, at the
    start of each epoch and after each test batch; validation runs to its end
    (a second Ctrl-C stops at once, without a checkpoint). The
    handlers are installed for the whole run, not only `fit`, so a signal
    during setup or testing also ends it cleanly. While fitting, Lightning
    chains its own SIGTERM handler onto this one and raises at its own safe
    points too (mid-validation included). Either way `on_exception` saves
    `checkpoint` when the stop happened during fit.
    DataLoader workers are forked with these handlers, so Ctrl-C (which
    reaches every process of the terminal) leaves them running until the
    main process shuts them down.
    """

    def __init__(self, checkpoint: str | Path):
        self.checkpoint = Path(checkpoint)
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

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
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if self.signum is None:
            self.signum = signum
            log.warning(
                "%s received: stopping after the current batch (Ctrl-C again stops at once, without a checkpoint)",
                signal.Signals(signum).name,
            )

    def raise_if_requested(self) -> None:
        if self.signum is not None:
            raise RunInterrupted(self.signum)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        # after an epoch's last batch, stopping waits for its validation and epoch end (Lightning's
        # own SIGTERM stop does the same); otherwise the resumed run would skip that validation
        if batch_idx + 1 < trainer.num_training_batches:
            self.raise_if_requested()

    def on_train_epoch_start(self, trainer, pl_module):
        self.raise_if_requested()

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self.raise_if_requested()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        # Lightning restores both kinds of boundary exactly: the batch that just ended is not repeated
        if isinstance(exception, SIGTERMException) and trainer.state.fn == TrainerFn.FITTING:
            trainer.save_checkpoint(self.checkpoint)
            log.warning("saved %s (epoch %d, step %d)", self.checkpoint, trainer.current_epoch, trainer.global_step)
