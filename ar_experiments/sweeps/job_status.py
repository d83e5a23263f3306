"""Each job's own status file in `<sweep>/.progress/jobs/`, written where the job runs (see progress.py)."""

from __future__ import annotations

import logging
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback

from ..safety.atomic import atomic_write_json, read_json
from ..safety.redaction import redact_text, safe_name

log = logging.getLogger(__name__)

PROGRESS_FILE = "progress.json"
JOBS_FOLDER = Path(".progress") / "jobs"
STATUS_ENV = "AR_SWEEP_JOB_STATUS"
INTERVAL_ENV = "AR_SWEEP_PROGRESS_INTERVAL"
RUNNING, COMPLETED, FAILED, SKIPPED = "running", "completed", "failed", "skipped"
WAITING = "waiting for a GPU"
"""A started job that waits for a GPU slot (gpu_placement.py): not running yet, for the time-left estimate
(its running time counts from `running_since`)."""
FINISHED = (COMPLETED, FAILED, SKIPPED)


def now_iso(clock: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if clock is None else clock, timezone.utc).isoformat(timespec="seconds")


def update_job_status(path: str | os.PathLike | None = None, **fields: Any) -> None:
    """Add `fields` to this job's status file (AR_SWEEP_JOB_STATUS when `path` is None); no-op outside a sweep.
    Every update is a sign of progress (`updated_at`); a job back to RUNNING from WAITING notes when."""
    path = path or os.environ.get(STATUS_ENV)
    if not path:
        return
    try:
        status = read_json(Path(path)) or {}
        now = time.time()
        if fields.get("state") == RUNNING and status.get("state") != RUNNING:
            fields = {"running_since": now, **fields}
        status.update(fields, updated_at=now)
        atomic_write_json(path, status)
    except OSError as err:  # progress is a courtesy: it never fails a job
        log.warning("could not update the sweep progress file %s: %s", path, err)


class JobStatusCallback(Callback):
    """Writes each job's start and end into `<sweep>/.progress/jobs/<num>.json` (multiruns only)."""

    def on_job_start(self, config, **kwargs: Any) -> None:
        hydra = config.hydra
        if hydra.mode.name != "MULTIRUN":
            return
        path = Path(str(hydra.sweep.dir)) / JOBS_FOLDER / f"{int(hydra.job.num)}.json"
        job_dir = Path(str(hydra.runtime.output_dir))
        results = job_dir / "results.json"
        previous = read_json(results) or {}
        started = time.time()
        status = {
            "num": int(hydra.job.num),
            "job": job_dir.name,
            "run_name": safe_name(config.get("run_name", job_dir.name)),  # printed and kept: no credential
            "model": config.get("model", {}).get("name"),  # the job's kind, for the time left (time_left.py)
            "frames": config.get("frames"),
            "state": RUNNING,
            "started_at": started,
            "running_since": started,
            "updated_at": started,
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
        from .failures import failure_of

        status = read_json(Path(path)) or {}
        job_dir = Path(str(config.hydra.runtime.output_dir))
        results_path = job_dir / "results.json"
        results = read_json(results_path) or {}
        fields: dict[str, Any] = {"ended_at": time.time()}
        fields["seconds"] = round(fields["ended_at"] - status.get("started_at", fields["ended_at"]), 1)
        if (failure := failure_of(job_return)) is not None:
            fields.update(state=FAILED, error=redact_text(failure.error))
        else:
            before = status.get("completed_before")
            unchanged = before is not None and results_path.is_file() and results_path.stat().st_mtime_ns == before
            # test_top1_multiview is the central clip's top-1 when the test had one view (training/fit.py)
            fields.update(state=SKIPPED if unchanged else COMPLETED, top1=results.get("test_top1_multiview"))
        if results.get("device"):
            fields["device"] = results["device"]
        update_job_status(path, **fields)
