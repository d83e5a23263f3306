"""CPU share of one job when several run at once (hydra/launcher=joblib, submitit)."""

from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger(__name__)


def parallel_jobs(n_jobs: int, cores: int) -> int:
    """How many jobs joblib runs at once for its `n_jobs` (-1: one per core, -2: all cores but one, ...)."""
    return max(1, cores + 1 + n_jobs if n_jobs < 0 else n_jobs)


def hydra_launcher() -> Any:
    """This Hydra job's launcher config ({} outside Hydra)."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get().launcher if HydraConfig.initialized() else {}


def jobs_at_once(launcher: Any) -> int | None:
    """How many jobs `launcher` runs at once (joblib's n_jobs); None for a launcher without n_jobs."""
    n_jobs = launcher.get("n_jobs")
    return None if n_jobs is None else parallel_jobs(int(n_jobs), os.cpu_count() or 1)


def threads_per_job() -> int | None:
    """The CPU share of one job: the launcher's cpus_per_task (submitit), else the cores divided among the jobs
    joblib runs at once (without it N jobs each start a thread per core); None (PyTorch's default) for one job
    at a time."""
    launcher = hydra_launcher()
    if cpus := launcher.get("cpus_per_task"):
        return int(cpus)
    at_once = jobs_at_once(launcher)
    return None if at_once is None else max(1, (os.cpu_count() or 1) // at_once)


def progress_bar() -> bool:
    """Lightning's per-job progress bar: on, unless several jobs of a joblib launcher share the console
    (their bars would interleave; the sweep's own lines, progress.py, say how far it has got)."""
    return (jobs_at_once(hydra_launcher()) or 1) == 1


def console_log_level() -> str:
    """A job's console logging: INFO, or WARNING while several joblib jobs share the console (everything
    still goes to each job's train.log; the console keeps warnings and the sweep's own lines)."""
    return "INFO" if progress_bar() else "WARNING"


def limit_threads(threads: int | None, num_workers: int) -> int:
    """Apply `threads_per_job` (None or 0: PyTorch's choice) to PyTorch's CPU threads; return the data loader
    workers the run should start: `num_workers`, at most `threads`."""
    if not threads:
        return num_workers
    import torch

    threads, workers = int(threads), min(int(num_workers), int(threads))
    torch.set_num_threads(threads)
    log.info("threads_per_job=%d: %d PyTorch threads, data.num_workers=%d", threads, threads, workers)
    return workers
