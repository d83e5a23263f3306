"""How far a sweep has got: one console line per finished job, and `<sweep>/progress.json`.

Three parts, which talk through files in the sweep folder only, so they work the
same for every launcher (basic: jobs in the launching process; joblib: in worker
processes; submitit: on other machines sharing the folder):

- `JobStatusCallback` (a Hydra callback, conf/hydra/default.yaml) runs where the
  job runs: at its start it writes `<sweep>/.progress/jobs/<num>.json` (running,
  started_at, pid) and points AR_SWEEP_JOB_STATUS at it, so the GPU placement
  (gpu_placement.py) and the epoch callback (epoch_progress.py, also in DDP rank 0)
  add the device and the epoch; at its end it records completed, failed (with the
  error) or skipped (a resumed sweep's job whose folder already held a completed
  run: it counts as done), the seconds and the top-1.
- `SweepMonitor` runs in the launching process, started by the sweepers
  (hydra_plugins/ar_experiments_sweepers/) around the whole sweep: every
  `interval` seconds it reads the job files, prints a line for each job that has
  finished since, and writes progress.json atomically.
- `python -m ar_experiments.report --progress <sweep>` prints progress.json.

Time left: the mean wall time of the jobs that completed in this sweep (of every
finished job that ran, while none has completed) x (the jobs not started + what
the running ones have left of that mean), divided by the most jobs seen running
at once. Skipped jobs take no time and do not count in the mean.

This module imports neither torch nor Lightning (the report reads progress.json).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from hydra.experimental.callback import Callback

from .atomic import atomic_write_json

log = logging.getLogger(__name__)

PROGRESS_FILE = "progress.json"
JOBS_FOLDER = Path(".progress") / "jobs"
STATUS_ENV = "AR_SWEEP_JOB_STATUS"
INTERVAL_ENV = "AR_SWEEP_PROGRESS_INTERVAL"
RUNNING, COMPLETED, FAILED, SKIPPED = "running", "completed", "failed", "skipped"
FINISHED = (COMPLETED, FAILED, SKIPPED)


def now_iso(clock: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if clock is None else clock, timezone.utc).isoformat(timespec="seconds")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # not there yet, or being replaced (atomic writes: never torn, but a rename may race a read)


# --- the job's side ---------------------------------------------------------------------------


def update_job_status(path: str | os.PathLike | None = None, **fields: Any) -> None:
    """Add `fields` to this job's status file (AR_SWEEP_JOB_STATUS when `path` is None); no-op outside a sweep."""
    path = path or os.environ.get(STATUS_ENV)
    if not path:
        return
    try:
        status = _read_json(Path(path)) or {}
        status.update(fields, updated_at=time.time())
        atomic_write_json(path, status)
    except OSError as err:  # progress is a courtesy: it never fails a job
        log.warning("could not update the sweep progress file %s: %s", path, err)


def _headline(results: dict[str, Any]) -> float | None:
    value = results.get("test_top1_multiview")
    return results.get("test_top1") if value is None else value


class JobStatusCallback(Callback):
    """Writes each job's start and end into `<sweep>/.progress/jobs/<num>.json` (multiruns only)."""

    def on_job_start(self, config, **kwargs: Any) -> None:
        hydra = config.hydra
        if hydra.mode.name != "MULTIRUN":
            return
        path = Path(str(hydra.sweep.dir)) / JOBS_FOLDER / f"{int(hydra.job.num)}.json"
        job_dir = Path(str(hydra.runtime.output_dir))
        results = job_dir / "results.json"
        previous = _read_json(results) or {}
        status = {
            "num": int(hydra.job.num),
            "job": job_dir.name,
            "run_name": str(config.get("run_name", job_dir.name)),
            "state": RUNNING,
            "started_at": time.time(),
            "pid": os.getpid(),
            "host": os.uname().nodename,
            # a completed run already there is skipped by train(): its results.json keeps this mtime
            "completed_before": results.stat().st_mtime_ns if previous.get("status") == COMPLETED else None,
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(path, status)
        except OSError as err:
            log.warning("could not write the sweep progress file %s: %s", path, err)
            return
        os.environ[STATUS_ENV] = str(path)

    def on_job_end(self, config, job_return, **kwargs: Any) -> None:
        path = os.environ.pop(STATUS_ENV, None)
        if not path:
            return
        from hydra.core.utils import JobStatus

        status = _read_json(Path(path)) or {}
        job_dir = Path(str(config.hydra.runtime.output_dir))
        results_path = job_dir / "results.json"
        results = _read_json(results_path) or {}
        fields: dict[str, Any] = {"ended_at": time.time()}
        fields["seconds"] = round(fields["ended_at"] - status.get("started_at", fields["ended_at"]), 1)
        if job_return.status == JobStatus.FAILED:
            error = job_return._return_value  # .return_value would re-raise it
            fields.update(state=FAILED, error=f"{type(error).__name__}: {error}")
        else:
            before = status.get("completed_before")
            unchanged = before is not None and results_path.is_file() and results_path.stat().st_mtime_ns == before
            fields.update(state=SKIPPED if unchanged else COMPLETED, top1=_headline(results))
        if results.get("device"):
            fields["device"] = results["device"]
        update_job_status(path, **fields)


# --- the launching process's side ---------------------------------------------------------------


def duration_text(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def estimate_time_left(
    finished: list[dict[str, Any]], running_elapsed: list[float], pending: int, at_once: int
) -> float | None:
    """Seconds left (see the module's docstring), or None before any job that ran has finished."""
    ran = [job for job in finished if job.get("state") in (COMPLETED, FAILED) and job.get("seconds") is not None]
    completed = [job["seconds"] for job in ran if job["state"] == COMPLETED]
    durations = completed or [job["seconds"] for job in ran]
    if not durations:
        return None
    mean = sum(durations) / len(durations)
    work = pending * mean + sum(max(mean - elapsed, 0.0) for elapsed in running_elapsed)
    return work / max(1, at_once)


def finished_line(job: dict[str, Any], done: int, total: int | None, failed: int, left: float | None) -> str:
    """`[7/18] slowfast-8f-split1 completed 0.97 top-1 in 55 s; 2 failed; about 6 min left`."""
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
    return "; ".join(parts)


class SweepMonitor:
    """Watches `<sweep>/.progress/jobs/` from the launching process: console lines and progress.json."""

    def __init__(
        self,
        sweep_dir: str | os.PathLike,
        total: int | None = None,
        interval: float = 2.0,
        out: TextIO | None = None,
        clock=time.time,
    ):
        self.sweep_dir = Path(sweep_dir).resolve()
        self.jobs_dir = self.sweep_dir / JOBS_FOLDER
        self.total = total
        self.interval = interval
        self.out = out
        self.clock = clock
        self.started_at = clock()
        self.announced: set[int] = set()
        self.most_at_once = 0
        self.status = "running"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._last_written: dict[str, Any] | None = None

    # lifecycle
    def start(self) -> SweepMonitor:
        """Forget the job files of an earlier run into this folder (a resumed sweep) and start watching."""
        if self.jobs_dir.is_dir():
            for path in self.jobs_dir.glob("*.json"):
                path.unlink(missing_ok=True)
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
            self._thread.join(timeout=10)
        try:
            return self.poll(final=True, status=status)
        except Exception as err:  # noqa: BLE001 - called while a sweep's own error may be on its way out
            log.warning("sweep progress: %s: %s", type(err).__name__, err)
            return None

    def set_total(self, total: int) -> None:
        self.total = total

    # one look at the folder
    def read_jobs(self) -> list[dict[str, Any]]:
        jobs = [job for path in self.jobs_dir.glob("*.json") if (job := _read_json(path)) is not None]
        return sorted(jobs, key=lambda job: job.get("num", 0))

    def poll(self, final: bool = False, status: str | None = None) -> dict[str, Any]:
        with self._lock:
            jobs = self.read_jobs()
            now = self.clock()
            finished = [job for job in jobs if job.get("state") in FINISHED]
            finished.sort(key=lambda job: (job.get("ended_at") or 0, job.get("num", 0)))
            running = [job for job in jobs if job.get("state") not in FINISHED]
            training = [job for job in running if job.get("state") != "waiting for a GPU"]
            self.most_at_once = max(self.most_at_once, len(training))
            total = self.total
            pending = max(0, (total or 0) - len(jobs))
            elapsed = [now - job.get("started_at", now) for job in training]
            at_once = max(1, self.most_at_once)
            left = estimate_time_left(finished, elapsed, pending + len(running) - len(training), at_once)
            # one line per job finished since the last look, in the order they ended
            done = len([job for job in finished if job.get("num") in self.announced])
            failed = len([job for job in finished if job.get("num") in self.announced and job["state"] == FAILED])
            for job in finished:
                if job.get("num") in self.announced:
                    continue
                self.announced.add(job.get("num"))
                done += 1
                failed += job["state"] == FAILED
                self._print(finished_line(job, done, total, failed, left))
            if final:
                self.status = status or ("finished" if not running and pending == 0 else "stopped")
            progress = self.progress(jobs, finished, running, pending, left, now, at_once)
            self._write(progress, force=final)
            return progress

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
                    "job": job.get("job"),
                    "run_name": job.get("run_name"),
                    "state": job.get("state"),
                    "device": job.get("device"),
                    "epoch": job.get("epoch"),
                    "max_epochs": job.get("max_epochs"),
                    "stage": job.get("stage"),
                    "seconds": round(now - job.get("started_at", now), 1),
                    "host": job.get("host"),
                    "pid": job.get("pid"),
                }
                for job in running
            ],
            "finished_jobs": [
                {
                    key: job.get(key)
                    for key in ("job", "run_name", "state", "top1", "seconds", "device", "error")
                    if job.get(key) is not None
                }
                for job in finished
            ],
        }

    def _print(self, line: str) -> None:
        out = self.out or sys.stdout
        try:
            print(line, file=out, flush=True)
        except (OSError, ValueError):
            pass

    def _write(self, progress: dict[str, Any], force: bool = False) -> None:
        """progress.json when something but the clock changed, and at least every 30 s."""
        clockless = {k: v for k, v in progress.items() if k not in ("updated_at", "elapsed_s", "time_left_s")}
        clockless["running_jobs"] = [
            {k: v for k, v in job.items() if k != "seconds"} for job in progress["running_jobs"]
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
    """Around a sweeper's sweep(): the monitor runs while the jobs do; progress.json stays afterwards.

    It looks every `interval` seconds (env AR_SWEEP_PROGRESS_INTERVAL, default 2)."""
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


# --- reading it back ------------------------------------------------------------------------------


def progress_text(progress: dict[str, Any]) -> str:
    """progress.json in a few lines, for `python -m ar_experiments.report --progress <sweep>`."""
    left = progress.get("time_left_s")
    head = (
        f"Sweep {progress.get('sweep')}: {progress.get('status')}, {progress.get('done', 0)} of "
        f"{progress.get('total')} jobs done ({progress.get('completed', 0)} completed"
        + (f", {progress['skipped']} of them skipped as already done" if progress.get("skipped") else "")
        + f", {progress.get('failed', 0)} failed), {progress.get('running', 0)} running, "
        f"{progress.get('pending', 0)} not started"
        + (f"; about {duration_text(left)} left" if left is not None else "")
        + (f" (as of {progress['updated_at']})" if progress.get("updated_at") else "")
    )
    lines = [head]
    for job in progress.get("running_jobs", []):
        epoch = f", epoch {job['epoch']}/{job.get('max_epochs') or '?'}" if job.get("epoch") is not None else ""
        device = f" on {job['device']}" if job.get("device") else ""
        stage = f", {job['stage']}" if job.get("stage") and job.get("stage") != "train" else ""
        lines.append(
            f"  {job.get('state')}: {job.get('job')}{device}{epoch}{stage}, {duration_text(job.get('seconds') or 0)}"
        )
    for job in progress.get("finished_jobs", []):
        if job.get("state") == FAILED:
            lines.append(f"  failed: {job.get('job')}: {job.get('error', '')}")
    return "\n".join(lines)


def read_progress(sweep: str | os.PathLike) -> dict[str, Any]:
    path = Path(sweep) / PROGRESS_FILE
    progress = _read_json(path)
    if progress is None:
        raise FileNotFoundError(f"no {PROGRESS_FILE} in {Path(sweep)}; it appears when a sweep starts")
    return progress


def print_progress(sweep: str | os.PathLike | None, parser: Any = None) -> int:
    """`report --progress`: the sweep's progress.json in words (the newest sweep when `sweep` is None)."""
    try:
        if sweep is None:
            from .sweep_results import latest_sweep

            sweep = latest_sweep(Path.cwd())
        progress = read_progress(sweep)
    except FileNotFoundError as err:
        if parser is not None:
            parser.error(str(err))
        raise
    print(progress_text(progress))
    return 0
