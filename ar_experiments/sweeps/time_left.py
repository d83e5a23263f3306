"""How long a sweep has left, and which of its running jobs have stopped making progress.

The rules, as a user reads them, are docs/sweeps.md's "Time left" and "No progress". Two of them are
easy to undo by accident: a job's remainder is never below what its own pace says, so a job that runs
longer than expected never counts as done; and the sweep cannot end before its slowest running job,
whatever the mean says. Waiting for a GPU is not running; skipped jobs take no time and count in no mean.
"""

from __future__ import annotations

import bisect
from typing import Any

from .job_status import COMPLETED, FAILED

JobKind = tuple[str, int]  # (model name, frames)

# Mean wall seconds of each kind in the demo sweep (`make sweep`, README's table: 2 jobs at a time,
# 2 CPU cores, 5 epochs of synthetic data). Only their ratios are used, for kinds that have not
# completed yet in a sweep; frames between or beyond the listed ones are interpolated linearly.
RELATIVE_COST: dict[str, dict[int, float]] = {
    "x3d_m": {6: 68.0, 8: 80.0, 16: 121.0},
    "slowfast": {6: 146.0, 8: 149.0, 16: 222.0},
}
HEARTBEAT_S = 60.0
STALL_AFTER_S = 600.0


def job_kind(overrides: list[str], default: JobKind) -> JobKind:
    """(model, frames) of a job from its command-line overrides (`model=slowfast`, `frames=16`)."""
    # (no model name or frame count holds "=" or starts with X, and a missing value falls back below: the mutants
    # of the split, the strip and the get's default are equivalent)
    values = dict(item.lstrip("+").split("=", 1) for item in overrides if "=" in item)
    frames = values.get("frames", default[1])
    return str(values.get("model", default[0])), int(frames) if str(frames).isdigit() else default[1]


def status_kind(job: dict[str, Any]) -> JobKind | None:
    """The kind a job's status file records (JobStatusCallback), or None."""
    if job.get("model") is None or job.get("frames") is None:
        return None
    return str(job["model"]), int(job["frames"])


def relative_cost(kind: JobKind | None) -> float | None:
    """RELATIVE_COST of `kind`, linear in frames between and beyond its listed points; None if unlisted."""
    points = sorted(RELATIVE_COST.get(kind[0], {}).items()) if kind is not None else []
    if len(points) < 2:
        return None
    # the segment that holds the frames, or the end segment nearest to them
    right = min(max(bisect.bisect([frames for frames, _ in points], kind[1]), 1), len(points) - 1)
    (f0, c0), (f1, c1) = points[right - 1], points[right]
    # below the listed frames, no less than half the cheapest: a run's start and test do not shrink with frames
    return max(c0 + (c1 - c0) * (kind[1] - f0) / (f1 - f0), points[0][1] / 2)


class JobTimes:
    """Expected wall seconds of a job of a kind, from the sweep's finished jobs."""

    def __init__(self, finished: list[dict[str, Any]]):
        ran = [job for job in finished if job.get("state") in (COMPLETED, FAILED) and job.get("seconds") is not None]
        completed = [job for job in ran if job["state"] == COMPLETED]
        durations = [job["seconds"] for job in completed or ran]
        self.known = bool(durations)
        self.mean = sum(durations) / len(durations) if durations else 0.0
        by_kind: dict[JobKind, list[float]] = {}
        for job in completed:
            if (kind := status_kind(job)) is not None:
                by_kind.setdefault(kind, []).append(job["seconds"])
        self.by_kind = {kind: sum(times) / len(times) for kind, times in by_kind.items()}
        ratios = [seconds / cost for kind, seconds in self.by_kind.items() if (cost := relative_cost(kind))]
        self.scale = sum(ratios) / len(ratios) if ratios else None

    def expected(self, kind: JobKind | None) -> float:
        if kind in self.by_kind:
            return self.by_kind[kind]
        cost = relative_cost(kind)
        return self.scale * cost if self.scale is not None and cost is not None else self.mean


def running_seconds(job: dict[str, Any], now: float) -> float:
    """Seconds the job has run, since it left the wait for a GPU (if it waited)."""
    return now - job.get("running_since", job.get("started_at", now))


def pace_left(job: dict[str, Any], now: float) -> float:
    """Training seconds still ahead of a running job at its own pace (0 before training, and while testing)."""
    trained_from, epoch, epochs = job.get("train_started_at"), job.get("epoch"), job.get("max_epochs")
    if trained_from is None or epoch is None or not epochs or job.get("stage") == "test":
        return 0.0
    epoch_from = job.get("epoch_started_at", trained_from)
    done = epoch - job.get("train_first_epoch", 1)  # whole epochs trained in this process
    per_epoch = (epoch_from - trained_from) / done if done > 0 else now - trained_from
    return max(per_epoch - (now - epoch_from), 0.0) + per_epoch * (epochs - epoch)


def job_left(job: dict[str, Any], times: JobTimes, now: float) -> float:
    expected = times.expected(status_kind(job)) - running_seconds(job, now)
    return max(expected, pace_left(job, now), 0.0)  # (pace_left is never below 0: dropping 0.0 is equivalent)


def estimate_time_left(
    finished: list[dict[str, Any]],
    running: list[dict[str, Any]],
    pending: list[JobKind | None],
    at_once: int,
    now: float,
) -> float | None:
    """Seconds left; None before any job that ran has finished. `running` are the status files of the jobs
    running now (not waiting for a GPU), `pending` the kinds of the jobs not running yet (None where unknown)."""
    times = JobTimes(finished)
    if not times.known:
        return None
    remainders = [job_left(job, times, now) for job in running]
    work = sum(times.expected(kind) for kind in pending) + sum(remainders)
    return max(work / max(1, at_once), max(remainders, default=0.0))


def no_progress_seconds(job: dict[str, Any], now: float) -> float:
    """Seconds since the job's status file last changed."""
    return now - job.get("updated_at", job.get("running_since", job.get("started_at", now)))
