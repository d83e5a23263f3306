"""`python -m ar_experiments.report --progress <sweep>`: a sweep's progress.json in a few lines."""

from __future__ import annotations

from typing import Any

from ..sweeps.job_status import FAILED
from ..sweeps.progress import duration_text


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
        stalled = f"; NO PROGRESS for {duration_text(job['no_progress_s'])}" if job.get("stalled") else ""
        lines.append(
            f"  {job.get('state')}: {job.get('job')}{device}{epoch}{stage}, "
            f"{duration_text(job.get('seconds') or 0)}{stalled}"
        )
    for job in progress.get("finished_jobs", []):
        if job.get("state") == FAILED:
            lines.append(f"  failed: {job.get('job')}: {job.get('error', '')}")
    return "\n".join(lines)
