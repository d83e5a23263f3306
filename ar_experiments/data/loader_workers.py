"""Loader workers that leave Ctrl-C and SIGTERM to the training process, and never outlive it.

Its own module, importing torch only: a test starts a process that uses it (test_loader_signals.py).
"""

from __future__ import annotations

import atexit
import functools
import multiprocessing
import signal
import weakref

from torch.utils.data import DataLoader

STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def leave_signals_to_the_main_process(worker_id: int) -> None:
    """A loader worker ignores Ctrl-C and SIGTERM: the training process stops the run, then its workers.

    Both signals reach the workers too: Ctrl-C goes to the terminal's whole process group, and SLURM sends
    SIGTERM to every process of a job at its time limit or on preemption. A worker that died of it would
    fail the run instead of letting the training process stop at its next safe point with a checkpoint.
    Workers start with the signals blocked (SignalSafeStart): torch installs a SIGTERM handler that ends
    the worker before this function runs, and a signal pending until here is discarded by SIG_IGN.
    """
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def kill_the_living(workers: list[multiprocessing.Process]) -> None:
    for worker in workers:
        if worker.is_alive():
            worker.kill()
            worker.join()


@functools.cache
def kill_workers_left_at_exit() -> None:
    """At exit, kill the daemonic children still alive (loader workers ignore multiprocessing's SIGTERM, and
    its exit function would wait for them for ever); registered after that function, so it runs first.
    (The finalizers below also run at exit, but in weakref's atexit slot, whose order depends on imports.)"""
    atexit.register(lambda: kill_the_living([child for child in multiprocessing.active_children() if child.daemon]))


class SignalSafeStart:
    """A DataLoader mixin: its workers are started with Ctrl-C and SIGTERM blocked (forked workers inherit
    the mask); a signal meanwhile waits in this process and is handled as soon as they have started.

    torch ends the workers that outlive a loader's shutdown with SIGTERM (after a worker raised, they do),
    and multiprocessing ends daemonic children at exit with SIGTERM and then waits for them: since these
    workers ignore it, the ones still alive then get SIGKILL instead, when their iterator is collected
    and at exit. Without it a run that ended on a bad video left its worker behind for good (a joblib
    worker collected one per failed job), and the process then never exited.
    """

    def _get_iterator(self):
        if not self.num_workers:
            return super()._get_iterator()
        kill_workers_left_at_exit()
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            iterator = super()._get_iterator()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        weakref.finalize(iterator, kill_the_living, iterator._workers)
        return iterator


class VideoLoader(SignalSafeStart, DataLoader):
    pass
