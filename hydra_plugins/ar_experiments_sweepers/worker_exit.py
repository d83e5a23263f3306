"""A joblib sweep stopped by a signal: its running jobs end `interrupted`, with their checkpoint, and no process
of the sweep is left behind.

What joblib does alone (measured on a 2-job `hydra/launcher=joblib` sweep): SIGTERM to the sweep's main process
(Python's default: die at once) left both loky workers alive, parent PID 1, training on, then idle; Ctrl-C
(KeyboardInterrupt in the main process) or SIGTERM to the process group made joblib abort, which SIGKILLs the
workers: either way no job wrote its checkpoint or its results.json. A handler that waits in the main process
for the jobs would not help: loky takes a worker that ends for one that crashed and SIGKILLs the others.

So the signal goes the other way round:
- the sweep's main process exits at once on SIGINT or SIGTERM (128 + the signal), leaving the workers to stop
  by themselves (`exit_at_once_on_stop_signals`, while a joblib launcher runs the jobs);
- each worker asks Linux to send it SIGTERM when the sweep's main process ends (`prctl(PR_SET_PDEATHSIG)`),
  so that the signal reaches every running job whichever process it was sent to; the job stops at its next
  safe point with its checkpoint (training/interruption.py) and the worker then exits instead of waiting for
  jobs of a sweep that is gone; a worker that finds the main process gone before a job starts ends at once.
PR_SET_PDEATHSIG fires when the *thread* that started the worker ends: loky starts its workers from the
thread that submits the jobs (the main thread) or from its executor's management thread, which lives as long as
the workers. Elsewhere than on Linux the workers are left as joblib leaves them.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import logging
import os
import signal
import sys

JOBLIB_LAUNCHER = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def runs_in_workers(config) -> bool:
    return config.hydra.launcher.get("_target_") == JOBLIB_LAUNCHER


@contextlib.contextmanager
def exit_at_once_on_stop_signals(config):
    """While a joblib launcher runs the jobs of `config`'s sweep: SIGINT and SIGTERM end this process at once."""
    if not runs_in_workers(config):
        yield
        return

    def exit_now(signum: int, frame) -> None:
        sys.stderr.write(f"{signal.Signals(signum).name}: the sweep stops; its running jobs save a checkpoint\n")
        sys.stderr.flush()
        os._exit(128 + signum)  # not SystemExit: joblib would SIGKILL the workers on the way out

    previous = {signum: signal.signal(signum, exit_now) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def ending_with_the_sweep(task_function, config):
    """`task_function` as the jobs of `config`'s sweep run it: in a worker, ended with the sweep's main process."""
    if not runs_in_workers(config):
        return task_function
    return functools.partial(_run_in_worker, task_function, os.getpid())


def _run_in_worker(task_function, sweep_pid: int, cfg):
    if os.getpid() == sweep_pid:  # joblib runs a single job in this process
        return task_function(cfg)
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != sweep_pid:  # the sweep ended before this job started (or before the line above)
        _exit_worker(128 + signal.SIGTERM)
    try:
        return task_function(cfg)
    except SystemExit as stop:  # RunInterrupted: the job wrote its checkpoint and its results.json
        if os.getppid() != sweep_pid:
            _exit_worker(stop.code if isinstance(stop.code, int) else 1)
        raise


def _exit_worker(code: int) -> None:
    """End this worker as Python ends: exit functions (the data loader workers' end) and logs flushed; but not
    through SystemExit, which loky takes as the job's result and then waits for the next job."""
    atexit._run_exitfuncs()
    logging.shutdown()
    os._exit(code)
