"""Runs and sweeps through a real one-node SLURM cluster (conftest.py): job arrays, DDP tasks, preemption.

Each test is tiny (the tests' tiny data, a few batches); the whole file runs in a few minutes.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, tiny_overrides

pytestmark = pytest.mark.slow

FAST = ["model=x3d_xs", "frames=4", "logger=csv", "data.batch_size=2", "test.temporal_views=1"]


def train_command(*args: str) -> str:
    """The shell line a user puts in a batch script: `exec` makes python the job's main process."""
    return "exec " + shlex.join([sys.executable, "-m", "ar_experiments.train", *args])


def submit(cluster, folder: Path, command: str, *sbatch: str) -> str:
    """sbatch `command` from the repository root, its output in `folder`/slurm.out; returns the job id."""
    folder.mkdir(parents=True, exist_ok=True)
    options = [f"--chdir={REPO}", f"--output={folder / 'slurm.out'}", "--export=ALL,WANDB_MODE=disabled", *sbatch]
    return cluster.run("sbatch", "--parsable", *options, "--wrap", command).stdout.strip()


def job_output(folder: Path) -> str:
    path = folder / "slurm.out"
    return path.read_text() if path.exists() else ""


def results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def test_sigterm_to_a_slurm_job_interrupts_it_and_the_same_command_resumes(
    slurm_cluster, tiny_dataset, cache_dir, tmp_path
):
    """What SLURM does at a time limit or on preemption: SIGTERM to every process of the job, the data
    loader's workers included (`scancel --signal=TERM --full`)."""
    run_dir = tmp_path / "run"
    args = [
        *tiny_overrides(cache_dir),
        *FAST,
        "data.num_workers=1",
        "trainer.max_epochs=3",
        "trainer.limit_train_batches=4",
        f"hydra.run.dir={run_dir}",
    ]
    job = submit(slurm_cluster, tmp_path / "first", train_command(*args))
    deadline = time.monotonic() + 300
    while not (run_dir / "checkpoints" / "last.ckpt").exists():
        assert slurm_cluster.run("squeue", "-h", "-j", job).stdout.strip(), job_output(tmp_path / "first")[-3000:]
        assert time.monotonic() < deadline, "no checkpoint after 300 s"
        time.sleep(0.2)
    slurm_cluster.run("scancel", "--signal=TERM", "--full", job)
    slurm_cluster.wait_for_job(job)
    record = results(run_dir)
    assert record["status"] == "interrupted", job_output(tmp_path / "first")[-3000:]
    assert record["error"] == "RunInterrupted: stopped by SIGTERM"
    stopped_at = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert 4 <= stopped_at < 12

    again = submit(slurm_cluster, tmp_path / "again", train_command(*args))
    slurm_cluster.wait_for_job(again)
    record = results(run_dir)
    assert record["status"] == "completed", job_output(tmp_path / "again")[-3000:]
    assert record["resumed_from"] == str(run_dir / "checkpoints" / "last.ckpt") and record["epochs"] == 3
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 12
