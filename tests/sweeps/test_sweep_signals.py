"""A joblib sweep stopped by a signal: its running jobs end `interrupted` with their checkpoint, the command exits
non-zero, and no process of the sweep is left (hydra_plugins/ar_experiments_sweepers/worker_exit.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, SMALLEST_RUN, tiny_overrides


def session_processes(session: int) -> list[int]:
    """The live processes of a session, from /proc (fields of /proc/PID/stat after the command's name: the
    state, Z for one that ended and waits to be reaped, and the session)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):  # not a process, or one that just ended
            continue
        if int(fields[3]) == session and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"no {what} after {seconds} s"
        time.sleep(0.5)


def training(status: Path) -> bool:
    """The job's status file says its training started (training/callbacks.py EpochProgress writes its device then)."""
    try:
        return "device" in json.loads(status.read_text())
    except (OSError, ValueError):
        return False


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the workers end with the sweep on Linux")
@pytest.mark.parametrize(
    ("signum", "to_the_group"),
    [(signal.SIGTERM, False), (signal.SIGINT, True), (signal.SIGTERM, True)],
    ids=["SIGTERM to the main process", "Ctrl-C to the process group", "SIGTERM to the process group (SLURM)"],
)
def test_a_signalled_joblib_sweep_interrupts_its_jobs_and_leaves_no_process(
    tiny_dataset, cache_dir, tmp_path, signum, to_the_group
):
    sweep = tmp_path / "sweep"
    command = [sys.executable, "-m", "ar_experiments.train", "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    command += [*tiny_overrides(cache_dir), *SMALLEST_RUN, "trainer.max_epochs=100", "seed=1,2"]
    console = (tmp_path / "console.txt").open("w")
    sweep_process = subprocess.Popen(
        [*command, f"hydra.sweep.dir={sweep}"],
        cwd=REPO,
        stdout=console,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own session and process group: a terminal's, or a SLURM job's
        env={**os.environ, "WANDB_MODE": "disabled"},
    )
    session = sweep_process.pid
    try:
        statuses = [sweep / ".progress" / "jobs" / f"{job}.json" for job in (0, 1)]
        wait_for(lambda: all(map(training, statuses)), 300, "training in both jobs")
        time.sleep(2)  # a few batches
        if to_the_group:
            os.killpg(session, signum)
        else:
            os.kill(session, signum)
        assert sweep_process.wait(timeout=120) == 128 + signum
        wait_for(lambda: not session_processes(session), 120, "end of the sweep's workers")
    finally:
        for pid in session_processes(session):
            os.kill(pid, signal.SIGKILL)
        sweep_process.kill()
        console.close()
    jobs = sorted(path for path in sweep.iterdir() if path.name[0].isdigit())
    assert len(jobs) == 2, (tmp_path / "console.txt").read_text()[-3000:]
    for job in jobs:
        assert json.loads((job / "results.json").read_text())["status"] == "interrupted", job.name
        assert (job / "checkpoints" / "last.ckpt").is_file(), job.name
