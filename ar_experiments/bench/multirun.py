"""Overheads of a multirun: seconds until each job's first training step, and memory growth.

A real `python -m ar_experiments.train -m` of tiny jobs (two training batches
each, default loggers) runs in a fresh subprocess. A callback added through the
command line writes the wall-clock time of each job's first training step, so
the first job's start-up counts from the moment the command was launched,
interpreter start and imports included: what a user waits for. Later jobs
start in a process that has all that behind it; their `startup_s` in
results.json (from the start of `train()`) is the warm figure. Peak memory never
falls within a process, so the last job's peak over the first's shows what
earlier jobs left behind.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytorch_lightning as pl

from ..config.resolvers import CONF_DIR
from ..report.sweep_results import Sweep

TINY_JOB = ["debug=fast", "trainer.enable_progress_bar=false"]  # one epoch of two batches, one to validate and test
STAMP = "first_step_at.txt"


class FirstStepStamp(pl.Callback):
    """Writes the wall-clock time (time.time()) of the run's first training step to `path`."""

    def __init__(self, path: str):
        self.path = Path(path)
        self.written = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if not self.written:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(repr(time.time()))
            self.written = True


def prepare_dataset(overrides: list[str]) -> None:
    """Generate the config's dataset beforehand, so no measured run pays for it."""
    from hydra.utils import instantiate

    from ..config.compose import compose_train_config

    instantiate(compose_train_config(overrides).data).prepare_data()


def train_command(arguments: list[str], timeout_s: float, **run) -> subprocess.CompletedProcess:
    """`python -m ar_experiments.train ARGUMENTS` from the checkout, W&B offline unless the caller's setting says."""
    env = {**os.environ, "WANDB_MODE": os.environ.get("WANDB_MODE", "offline")}
    command = [sys.executable, "-m", "ar_experiments.train", *arguments]
    return subprocess.run(command, cwd=CONF_DIR.parent, timeout=timeout_s, env=env, **run)


def run_multirun(sweep_dir: Path, jobs: int, overrides: list[str], timeout_s: int = 900) -> tuple[float, list[dict]]:
    """(seconds from launching the command to the first job's first step, results.json of each job in order)."""
    stamp = f"+callbacks.first_step_stamp._target_={FirstStepStamp.__module__}.{FirstStepStamp.__qualname__}"
    arguments = [
        "-m",
        f"seed={','.join(str(seed) for seed in range(jobs))}",
        f"hydra.sweep.dir={sweep_dir}",
        *TINY_JOB,
        stamp,
        f"+callbacks.first_step_stamp.path=${{paths.output_dir}}/{STAMP}",
        *overrides,
    ]
    launched = time.time()
    result = train_command(arguments, timeout_s, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"the bench multirun failed ({' '.join(arguments)}):\n{result.stderr[-3000:]}")
    done = [job for job in Sweep.read(sweep_dir).jobs if job.results]
    records = [job.results for job in done]
    if len(records) != jobs or any(r.get("startup_s") is None or r.get("peak_rss_mb") is None for r in records):
        raise RuntimeError(f"expected {jobs} results.json with startup_s and peak_rss_mb under {sweep_dir}")
    return float((done[0].folder / STAMP).read_text()) - launched, records
