"""SIGTERM to every process of a DDP run with loader workers, as SLURM sends it at a time limit or on preemption
(`kill -TERM -- -<process group>` on a workstation): the run ends interrupted. Under DDP the workers start
through a fork server (data/datamodule.py), so the training process's blocked signals do not reach them while
they start; their worker_init_fn alone must keep them alive until the ranks stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, tiny_overrides

FAST = ["model=x3d_xs", "frames=4", "logger=csv", "data.batch_size=2", "test.temporal_views=1"]


def group_members(group: int) -> list[tuple[int, str]]:
    """(pid, command line) of the live processes of a process group."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[2]) == group and fields[0] != "Z":  # fields after the name: state, ppid, pgrp, ...
            members.append((int(entry.name), command))
    return members


def loader_workers(group: int) -> list[int]:
    """Workers forked by the ranks' fork servers: they keep the fork server's command line."""
    forked = {pid for pid, command in group_members(group) if "forkserver" in command}
    return [pid for pid in forked if _parent(pid) in forked]  # a fork server's children


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return -1


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="reads the process table from /proc")
def test_sigterm_to_the_process_group_of_a_ddp_run_with_loader_workers_interrupts_it(tiny_dataset, cache_dir, tmp_path):
    run_dir = tmp_path / "run"
    args = [*tiny_overrides(cache_dir), *FAST, "trainer=ddp_cpu", "data.num_workers=1", "trainer.max_epochs=50"]
    args += ["trainer.limit_train_batches=4", f"hydra.run.dir={run_dir}"]
    log_file = tmp_path / "run.log"
    with open(log_file, "w") as log:
        launcher = subprocess.Popen(
            [sys.executable, "-m", "ar_experiments.train", *args],
            cwd=REPO,
            env={**os.environ, "WANDB_MODE": "disabled"},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a process group of its own, as a SLURM job step
        )
    try:
        deadline = time.monotonic() + 300
        # training under way (a checkpoint) and loader workers alive: the moment SLURM's signal may come
        while not ((run_dir / "checkpoints" / "last.ckpt").exists() and loader_workers(launcher.pid)):
            assert launcher.poll() is None, log_file.read_text()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint and loader workers after 300 s"
            time.sleep(0.05)
        os.killpg(launcher.pid, signal.SIGTERM)
        returncode = launcher.wait(timeout=300)
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
    output = log_file.read_text()
    assert returncode == 128 + signal.SIGTERM, output[-3000:]
    record = json.loads((run_dir / "results.json").read_text())
    assert record["status"] == "interrupted" and record["error"] == "RunInterrupted: stopped by SIGTERM", output[-3000:]
    assert "DataLoader worker" not in output, "a loader worker died of the signal"
    deadline = time.monotonic() + 30
    while group_members(launcher.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not group_members(launcher.pid), "processes of the run outlived it"
