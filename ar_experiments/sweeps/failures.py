"""Failed jobs of a multirun: what failed, where its folder is, and one error that lists them all."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobFailure:
    number: int
    folder: str
    error: str

    def __str__(self) -> str:
        return f"job {self.number} ({self.folder}): {self.error}"


def job_folder(job_return: Any) -> str:
    """The output folder of a job, from the Hydra config it ran with."""
    try:
        return str(job_return.hydra_cfg.hydra.runtime.output_dir)
    except AttributeError:
        return "?"


def job_number(job_return: Any) -> int:
    try:
        return int(job_return.hydra_cfg.hydra.job.num)
    except AttributeError:
        return -1


def failure_of(job_return: Any) -> JobFailure | None:
    """The failure of a finished Hydra job, or None when it completed."""
    from hydra.core.utils import JobStatus

    if job_return.status != JobStatus.FAILED:
        return None
    error = job_return._return_value  # the exception the job raised (reading .return_value re-raises it)
    return JobFailure(job_number(job_return), job_folder(job_return), f"{type(error).__name__}: {error}")


FAIL_FAST = "sweep.fail_fast=true"


class SweepFailed(RuntimeError):
    """Raised at the end of a sweep (or at the first failure with sweep.fail_fast=true)."""

    def __init__(self, failures: list[JobFailure], launched: int, stopped_because: str = ""):
        self.failures = failures
        stop = f"; {stopped_because} stopped the sweep there" if stopped_because else ""
        lines = [f"{len(failures)} of {launched} jobs failed{stop}:"]
        lines += [f"  {failure}" for failure in failures]
        lines.append("Each failed job's results.json (status: failed, error) and train.log hold the details.")
        super().__init__("\n".join(lines))


class FailureCollector:
    """Stands between a sweeper and its launcher: records failed jobs, hands on the completed ones, so that the
    sweeper (which raises the first failed job's error as soon as its batch ends) goes on; `raise_if_failed()`
    reports every failure once the sweep is over. With `fail_fast` the first batch holding a failure ends it."""

    def __init__(self, launcher: Any, fail_fast: bool = False):
        self.launcher = launcher
        self.fail_fast = fail_fast
        self.launched = 0
        self.failures: list[JobFailure] = []

    def launch(self, job_overrides, initial_job_idx: int):
        returns = self.launcher.launch(job_overrides, initial_job_idx=initial_job_idx)
        self.launched += len(returns)
        completed = []
        for job_return in returns:
            failure = failure_of(job_return)
            if failure is None:
                completed.append(job_return)
                continue
            log.error("%s", failure)
            self.failures.append(failure)
        if self.failures and self.fail_fast:
            raise SweepFailed(self.failures, self.launched, stopped_because=FAIL_FAST)
        return completed

    def raise_if_failed(self) -> None:
        if self.failures:
            raise SweepFailed(self.failures, self.launched)
