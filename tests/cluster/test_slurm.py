"""Runs and sweeps through a real two-node SLURM cluster (conftest.py): job arrays, DDP tasks, several nodes
per job, preemption.

Each test is tiny (the tests' tiny data, a few batches); the whole file runs in a few minutes.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
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


def sweep_jobs(sweep: Path) -> list[dict]:
    return [results(path.parent) for path in sorted(sweep.glob("*/results.json"))]


def assert_report_builds(sweep: Path) -> None:
    """`python -m ar_experiments.report SWEEP` succeeds and writes the sweep's report.md."""
    report = subprocess.run(
        [sys.executable, "-m", "ar_experiments.report", str(sweep)], cwd=REPO, capture_output=True, text=True
    )
    assert report.returncode == 0 and (sweep / "report.md").is_file(), report.stderr[-2000:]


def test_a_slurm_launcher_grid_runs_as_one_job_array_with_progress_and_a_report(
    slurm_cluster, tiny_dataset, cache_dir, tmp_path
):
    """The cluster grid (docs/clusters.md) on a CPU partition: 2 jobs, one array, accounting off."""
    sweep = tmp_path / "sweep"
    launcher = ["hydra/launcher=slurm", "hydra.launcher.gpus_per_node=0", "hydra.launcher.cpus_per_task=1"]
    launcher += ["hydra.launcher.mem_gb=2", "hydra.launcher.timeout_min=20"]
    args = ["-m", *launcher, *tiny_overrides(cache_dir), *FAST, "trainer.limit_train_batches=1", "seed=0,1"]
    sweep_run = subprocess.run(
        [sys.executable, "-m", "ar_experiments.train", *args, f"hydra.sweep.dir={sweep}"],
        cwd=REPO,
        env={**slurm_cluster.env, "WANDB_MODE": "disabled"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = sweep_run.stdout + sweep_run.stderr
    assert sweep_run.returncode == 0, output[-3000:]
    assert [job["status"] for job in sweep_jobs(sweep)] == ["completed", "completed"]
    assert "[2/2] " in sweep_run.stdout, "a progress line per finished job"
    assert len(set((sweep / ".submitit").glob("*_0"))) == 1, "one job array"
    # without accounting submitit's warning comes once, not once per poll; sacct's own lines go to a file
    assert "Call #2 - Bypassing sacct error" not in output
    assert "accounting storage is disabled" not in output
    assert "Slurm accounting storage is disabled" in (sweep / "sacct.log").read_text()
    assert_report_builds(sweep)


def test_srun_tasks_per_node_train_one_ddp_run_through_lightnings_slurm_environment(
    slurm_cluster, tiny_dataset, cache_dir, tmp_path
):
    run_dir = tmp_path / "run"
    args = [*tiny_overrides(cache_dir), *FAST, "trainer=ddp_cpu", "trainer.limit_train_batches=1"]
    srun = ["srun", "--ntasks-per-node=2", "--cpus-per-task=1", f"--chdir={REPO}"]
    done = subprocess.run(
        [*srun, sys.executable, "-m", "ar_experiments.train", *args, f"hydra.run.dir={run_dir}"],
        env={**slurm_cluster.env, "WANDB_MODE": "disabled"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    record = results(run_dir)
    assert record["status"] == "completed" and record["world_size"] == 2
    assert "Starting 2 DDP processes" not in done.stdout + done.stderr, "SLURM started the ranks, not train()"


def assert_each_test_video_evaluated_once(run_dir: Path, tiny_dataset: Path) -> None:
    """The ranks' shares of the test set (DistributedSampler pads them to equal lengths) make one record of
    every test video, each once."""
    test_list = (tiny_dataset / "ucfTrainTestlist" / "testlist01.txt").read_text().split()
    predicted = [line.split(",")[0] for line in (run_dir / "test_predictions.csv").read_text().splitlines()[1:]]
    assert sorted(predicted) == sorted(test_list)
    assert results(run_dir)["test_videos"] == len(test_list)


def launched_on(cluster, job: str) -> list[str]:
    """The nodes whose slurmd launched tasks of the job's first step (their logs, in the cluster's folder)."""
    logs = {node: cluster.conf.parent / f"slurmd-{node}.log" for node in cluster.nodes}
    return sorted(node for node, log in logs.items() if f"launch task StepId={job}.0 " in log.read_text())


def test_a_slurm_launcher_job_on_two_nodes_trains_one_run_on_the_ranks_of_both(
    slurm_cluster, tiny_dataset, cache_dir, tmp_path
):
    """docs/clusters.md's "several nodes per job" on a CPU partition: 2 nodes x 2 tasks, one DDP run of 4 ranks."""
    sweep = tmp_path / "sweep"
    launcher = ["hydra/launcher=slurm", "hydra.launcher.nodes=2", "hydra.launcher.gpus_per_node=0"]
    launcher += ["hydra.launcher.tasks_per_node=2", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2"]
    ddp = ["trainer=ddp_cpu", "trainer.num_nodes=2", "trainer.devices=2", "trainer.limit_test_batches=1.0"]
    args = ["-m", *launcher, *tiny_overrides(cache_dir), *FAST, *ddp, f"hydra.sweep.dir={sweep}"]
    sweep_run = subprocess.run(
        [sys.executable, "-m", "ar_experiments.train", *args],
        cwd=REPO,
        env={**slurm_cluster.env, "WANDB_MODE": "disabled"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert sweep_run.returncode == 0, (sweep_run.stdout + sweep_run.stderr)[-3000:]
    [run_dir] = [path.parent for path in sweep.glob("*/results.json")]
    record = results(run_dir)
    assert record["status"] == "completed" and record["world_size"] == 4
    assert_each_test_video_evaluated_once(run_dir, tiny_dataset)
    # where SLURM put each task (submitit's first line in each task's log), and Lightning's 4 ranks
    [job] = [path.name for path in (sweep / ".submitit").iterdir() if path.is_dir()]
    placed = [(sweep / ".submitit" / job / f"{job}_{task}_log.out").read_text() for task in range(4)]
    places = sorted(re.search(r"node=(\d)\(2\), global_rank=(\d)\(4\)", text).groups() for text in placed)
    assert places == [("0", "0"), ("0", "1"), ("1", "2"), ("1", "3")]
    assert launched_on(slurm_cluster, job) == sorted(slurm_cluster.nodes)
    members = re.findall(
        r"Initializing distributed: GLOBAL_RANK: \d, MEMBER: (\d/4)", (run_dir / "train.log").read_text()
    )
    assert sorted(members) == ["1/4", "2/4", "3/4", "4/4"]
    assert_report_builds(sweep)


def test_srun_on_two_nodes_inside_sbatch_trains_one_run_with_a_rank_on_each(
    slurm_cluster, tiny_dataset, cache_dir, tmp_path
):
    run_dir = tmp_path / "run"
    ddp = ["trainer=ddp_cpu", "trainer.num_nodes=2", "trainer.devices=1", "trainer.limit_test_batches=1.0"]
    train = train_command(*tiny_overrides(cache_dir), *FAST, *ddp, f"hydra.run.dir={run_dir}")
    srun = "exec srun --nodes=2 --ntasks-per-node=1 --cpus-per-task=1 " + train.removeprefix("exec ")
    job = submit(slurm_cluster, tmp_path / "batch", srun, "--nodes=2")
    slurm_cluster.wait_for_job(job, timeout=400)  # a rank that fails early leaves the other one waiting for it
    assert (run_dir / "results.json").is_file(), job_output(tmp_path / "batch")[-3000:]
    record = results(run_dir)
    assert record["status"] == "completed" and record["world_size"] == 2, job_output(tmp_path / "batch")[-3000:]
    assert_each_test_video_evaluated_once(run_dir, tiny_dataset)
    assert launched_on(slurm_cluster, job) == sorted(slurm_cluster.nodes)
    assert "Starting 2 DDP processes" not in job_output(tmp_path / "batch"), "SLURM started the ranks, not train()"


def test_a_joblib_sweep_inside_sbatch_runs_every_job(slurm_cluster, tiny_dataset, cache_dir, tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *tiny_overrides(cache_dir), *FAST]
    command = train_command(*args, "trainer.limit_train_batches=1", "seed=0,1", f"hydra.sweep.dir={sweep}")
    job = submit(slurm_cluster, tmp_path / "batch", command, "--cpus-per-task=2")
    slurm_cluster.wait_for_job(job)
    statuses = [job["status"] for job in sweep_jobs(sweep)]
    assert statuses == ["completed", "completed"], job_output(tmp_path / "batch")[-3000:]
