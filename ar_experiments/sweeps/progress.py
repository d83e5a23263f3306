"""How far a sweep has got: one console line per finished job, and `<sweep>/progress.json`.

`SweepMonitor` runs in the launching process, started by the sweepers (hydra_plugins/) around the
whole sweep: every `interval` seconds it reads the job status files that job_status.py writes where
each job runs, prints a line for each job finished since, and writes progress.json atomically. Files,
not messages: joblib runs a job's end in its worker process, submitit on another machine, so the parts
talk through the sweep folder alone (docs/sweeps.md, "How far a sweep has got"). None of them imports torch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from ..safety.atomic import atomic_write_json
from .job_status import (
    COMPLETED,
    FAILED,
    FINISHED,
    INTERVAL_ENV,
    JOBS_FOLDER,
    PROGRESS_FILE,
    SKIPPED,
    WAITING,
    now_iso,
    read_json,
)
from .time_left import STALL_AFTER_S, JobKind, estimate_time_left, no_progress_seconds, status_kind

log = logging.getLogger(__name__)
RUNNING_KEYS = ("job", "run_name", "state", "device", "epoch", "max_epochs", "stage", "host", "pid")
FINISHED_KEYS = ("job", "run_name", "state", "top1", "seconds", "device", "error")


def duration_text(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def finished_line(
    job: dict[str, Any], done: int, total: int | None, failed: int, left: float | None, stalled: list[str] = ()
) -> str:
    """`[7/18] slowfast-8f-split1 completed 0.97 top-1 in 55 s; 2 failed; about 6 min left`, then the running
    jobs that made no progress for a while: `; no progress: 3-x3d_m-6f-split1`."""
    name = job.get("run_name") or job.get("job")
    state = job.get("state")
    seconds = job.get("seconds")
    took = f" in {duration_text(seconds)}" if seconds is not None else ""
    if state == COMPLETED:
        top1 = job.get("top1")
        what = f"completed {top1:.2f} top-1{took}" if top1 is not None else f"completed{took}"
    elif state == SKIPPED:
        what = "already completed (skipped)"
    else:
        error = " ".join(str(job.get("error", "")).split())
        what = f"failed{took}: {error[:160]}" if error else f"failed{took}"
    parts = [f"[{done}/{total if total is not None else '?'}] {name} {what}"]
    if failed:
        parts.append(f"{failed} failed")
    if left is not None and left >= 1 and (total is None or done < total):
        parts.append(f"about {duration_text(left)} left")
    if stalled:
        parts.append(f"no progress: {', '.join(stalled)}")
    return "; ".join(parts)


def stalled_line(job: dict[str, Any], seconds: float) -> str:
    """`3-x3d_m-6f-split1 has made no progress for 12 min (epoch 2/5, pid 4242 on node7)`."""
    epoch = f"epoch {job['epoch']}/{job.get('max_epochs') or '?'}, " if job.get("epoch") is not None else ""
    return (
        f"{job.get('job')} has made no progress for {duration_text(seconds)} "
        f"({epoch}pid {job.get('pid')} on {job.get('host')})"
    )


class SweepMonitor:
    """Watches `<sweep>/.progress/jobs/` from the launching process: console lines and progress.json."""

    def __init__(
        self,
        sweep_dir: str | os.PathLike,
        total: int | None = None,
        interval: float = 2.0,
        out: TextIO | None = None,
        clock=time.time,
        stall_after: float = STALL_AFTER_S,
    ):
        self.sweep_dir = Path(sweep_dir).resolve()
        self.jobs_dir = self.sweep_dir / JOBS_FOLDER
        self.total = total
        self.kinds: list[JobKind | None] = []  # of every job, by number, where the sweeper knows them
        self.interval = interval
        self.stall_after = stall_after
        self.stalled: set[int] = set()  # the running jobs announced as making no progress
        self.out = out
        self.clock = clock
        self.started_at = clock()
        self.announced: set[int] = set()
        self.most_at_once = 0  # (at least 1 wherever it is used: starting at 1 is an equivalent mutant)
        self.status = "running"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._last_written: dict[str, Any] | None = None

    # lifecycle
    def start(self) -> SweepMonitor:
        """Forget the job files of an earlier run into this folder (a resumed sweep) and start watching."""
        if self.jobs_dir.is_dir():
            for path in self.jobs_dir.glob("*.json"):  # (missing_ok matters only if one vanishes meanwhile:
                path.unlink(missing_ok=True)  # its mutants are equivalent in a test)
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.poll()
        self._thread = threading.Thread(target=self._run, name="sweep-progress", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception as err:  # noqa: BLE001 - progress never stops a sweep
                log.warning("sweep progress: %s: %s", type(err).__name__, err)

    def stop(self, status: str | None = None) -> dict[str, Any] | None:
        """The last look: lines for the jobs that ended since, and the final progress.json."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)  # (a look takes far less: 11 is an equivalent mutant)
        try:
            return self.poll(final=True, status=status)
        except Exception as err:  # noqa: BLE001 - called while a sweep's own error may be on its way out
            log.warning("sweep progress: %s: %s", type(err).__name__, err)
            return None

    def set_total(self, total: int, kinds: list[JobKind | None] | None = None) -> None:
        """The number of jobs, and each one's (model, frames) when known (time_left.py)."""
        self.total = total
        self.kinds = list(kinds or [])

    # one look at the folder
    def read_jobs(self) -> list[dict[str, Any]]:
        jobs = [job for path in self.jobs_dir.glob("*.json") if (job := read_json(path)) is not None]
        # every job file holds its num (JobStatusCallback): the default's mutants are equivalent
        return sorted(jobs, key=lambda job: job.get("num", 0))

    def poll(self, final: bool = False, status: str | None = None) -> dict[str, Any]:
        with self._lock:
            jobs = self.read_jobs()
            now = self.clock()
            finished = [job for job in jobs if job.get("state") in FINISHED]
            # (jobs come in num order, and end far above time 1: the key's num and default mutants are equivalent)
            finished.sort(key=lambda job: (job.get("ended_at") or 0, job.get("num", 0)))
            running = [job for job in jobs if job.get("state") not in FINISHED]
            training = [job for job in running if job.get("state") != WAITING]
            self.most_at_once = max(self.most_at_once, len(training))
            total = self.total
            pending = max(0, (total or 0) - len(jobs))  # (0 without a total: `range(total or 1)` below is equivalent)
            at_once = max(1, self.most_at_once)
            started = {job.get("num") for job in jobs}
            unstarted = [num for num in range(total or 0) if num not in started][:pending]
            waiting = [status_kind(job) for job in running if job.get("state") == WAITING]
            kinds = [self.kinds[num] if num < len(self.kinds) else None for num in unstarted] + waiting
            left = estimate_time_left(finished, training, kinds, at_once, now)
            stalled = [job.get("job") for job in self._stalled(training, now)]
            # one line per job finished since the last look, in the order they ended
            done = len([job for job in finished if job.get("num") in self.announced])
            failed = len([job for job in finished if job.get("num") in self.announced and job["state"] == FAILED])
            for job in finished:
                if job.get("num") in self.announced:
                    continue
                self.announced.add(job.get("num"))
                done += 1
                failed += job["state"] == FAILED
                self._print(finished_line(job, done, total, failed, left, stalled))
            if final:
                self.status = status or ("finished" if not running and pending == 0 else "stopped")
            progress = self.progress(jobs, finished, running, pending, left, now, at_once)
            self._write(progress, force=final)
            return progress

    def _stalled(self, training: list[dict[str, Any]], now: float) -> list[dict[str, Any]]:
        """The running jobs without progress for `stall_after` seconds; a line for each when it stalls."""
        stalled = [job for job in training if no_progress_seconds(job, now) >= self.stall_after]
        for job in stalled:
            if job.get("num") not in self.stalled:
                self._print(stalled_line(job, no_progress_seconds(job, now)))
        self.stalled = {job.get("num") for job in stalled}
        return stalled

    def progress(self, jobs, finished, running, pending, left, now, at_once) -> dict[str, Any]:
        counts = {state: sum(job.get("state") == state for job in finished) for state in FINISHED}
        return {
            "sweep": str(self.sweep_dir),
            "status": self.status,
            "total": self.total if self.total is not None else len(jobs),
            "done": len(finished),
            "completed": counts[COMPLETED] + counts[SKIPPED],  # a skipped job is a completed run
            "skipped": counts[SKIPPED],
            "failed": counts[FAILED],
            "running": len(running),
            "pending": pending,
            "jobs_at_once": at_once,
            "time_left_s": None if left is None or self.status != "running" else round(left, 1),
            "started_at": now_iso(self.started_at),
            "updated_at": now_iso(now),
            "elapsed_s": round(now - self.started_at, 1),
            "running_jobs": [
                {
                    **{key: job.get(key) for key in RUNNING_KEYS},
                    "seconds": round(now - job.get("started_at", now), 1),
                    "no_progress_s": round(no_progress_seconds(job, now), 1),
                    "stalled": job.get("num") in self.stalled,
                }
                for job in running
            ],
            "finished_jobs": [
                {key: job.get(key) for key in FINISHED_KEYS if job.get(key) is not None} for job in finished
            ],
        }

    def _print(self, line: str) -> None:
        with contextlib.suppress(OSError, ValueError):  # a closed or broken console never stops a sweep
            print(line, file=self.out or sys.stdout, flush=True)

    def _write(self, progress: dict[str, Any], force: bool) -> None:
        """progress.json when something but the clock changed, and at least every 30 s."""
        clockless = {k: v for k, v in progress.items() if k not in ("updated_at", "elapsed_s", "time_left_s")}
        clockless["running_jobs"] = [
            {k: v for k, v in job.items() if k not in ("seconds", "no_progress_s")} for job in progress["running_jobs"]
        ]
        last = self._last_written
        if not force and last is not None and last["state"] == clockless and self.clock() - last["at"] < 30:
            return
        try:
            atomic_write_json(self.sweep_dir / PROGRESS_FILE, progress)
        except OSError as err:
            log.warning("could not write %s: %s", self.sweep_dir / PROGRESS_FILE, err)
            return
        self._last_written = {"state": clockless, "at": self.clock()}


@contextlib.contextmanager
def watch_sweep(config: Any, total: int | None = None, interval: float | None = None) -> Iterator[SweepMonitor]:
    """Around a sweeper's sweep(): the monitor looks every `interval` seconds (env AR_SWEEP_PROGRESS_INTERVAL,
    default 2) while the jobs run; progress.json stays afterwards."""
    interval = interval if interval is not None else float(os.environ.get(INTERVAL_ENV, 2.0))
    monitor = SweepMonitor(str(config.hydra.sweep.dir), total=total, interval=interval).start()
    status = None
    try:
        yield monitor
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C; SIGINT/SIGTERM to a job (interruption.RunInterrupted)
        status = "interrupted"
        raise
    finally:
        monitor.stop(status)
