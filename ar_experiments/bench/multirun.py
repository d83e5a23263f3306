"""Overheads of a multirun: seconds from each job's start to its first training step, and memory growth.

A real `python -m ar_experiments.train -m` of tiny jobs (two training batches
each, default loggers) runs in a subprocess; every job records `startup_s` and
`peak_rss_mb` in its results.json. Peak memory never falls within a process,
so the last job's peak over the first's shows what earlier jobs left behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .training import CONF_DIR

TINY_JOB = [
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "trainer.limit_test_batches=1",
    "trainer.enable_progress_bar=false",
]


def run_multirun(sweep_dir: Path, jobs: int, overrides: list[str], timeout_s: int = 900) -> list[dict]:
    """results.json of each job of a `jobs`-job multirun over seeds, in job order."""
    command = [
        sys.executable,
        "-m",
        "ar_experiments.train",
        "-m",
        f"seed={','.join(str(seed) for seed in range(jobs))}",
        f"hydra.sweep.dir={sweep_dir}",
        *TINY_JOB,
        *overrides,
    ]
    result = subprocess.run(
        command,
        cwd=CONF_DIR.parent,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={**os.environ, "WANDB_MODE": os.environ.get("WANDB_MODE", "offline")},
    )
    if result.returncode != 0:
        raise RuntimeError(f"the bench multirun failed ({' '.join(command)}):\n{result.stderr[-3000:]}")
    folders = sorted((p for p in sweep_dir.iterdir() if (p / "results.json").is_file()), key=_job_number)
    records = [json.loads((folder / "results.json").read_text()) for folder in folders]
    if len(records) != jobs or any(r.get("startup_s") is None or r.get("peak_rss_mb") is None for r in records):
        raise RuntimeError(f"expected {jobs} results.json with startup_s and peak_rss_mb under {sweep_dir}")
    return records


def _job_number(folder: Path) -> int:
    return int(folder.name.split("-", 1)[0])
