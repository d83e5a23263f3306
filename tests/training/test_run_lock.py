"""One live process per run folder and per sweep folder (issue 18, item 3)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ar_experiments.training.run_lock import RUN_LOCK, SWEEP_LOCK, FolderInUse, acquire, holding
from tests.conftest import REPO, run_train, tiny_overrides

HOLD = """
import sys, time
from pathlib import Path
from ar_experiments.training.run_lock import acquire
acquire(Path(sys.argv[1]), sys.argv[2], "sweep" if sys.argv[2] == ".sweep.lock" else "run")
print("held", flush=True)
time.sleep(120)
"""


@pytest.fixture
def lock_holder():
    """hold(folder, name) -> a live process holding that folder's lock (killed at the end)."""
    started = []

    def hold(folder: Path, name: str = RUN_LOCK) -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(folder), name], cwd=REPO, stdout=subprocess.PIPE, text=True
        )
        started.append(process)
        assert process.stdout.readline().strip() == "held"
        return process

    yield hold
    for process in started:
        process.kill()
        process.wait()


def test_a_second_run_in_a_held_folder_stops_at_once_naming_the_owner(lock_holder, compose_config, cache_dir, tmp_path):
    from ar_experiments.train import train

    run_dir = tmp_path / "run"
    owner = lock_holder(run_dir)
    with pytest.raises(FolderInUse, match=rf"in use by another run: pid {owner.pid} on "):
        train(compose_config(tiny_overrides(cache_dir, run_dir)))
    assert sorted(p.name for p in run_dir.iterdir()) == [RUN_LOCK], "nothing read or written by the second run"


def test_a_folder_whose_owner_died_is_taken_over_and_freed_on_every_exit(lock_holder, tmp_path):
    owner = lock_holder(tmp_path)
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    assert (tmp_path / RUN_LOCK).exists(), "a killed owner leaves its lock file"
    with holding(tmp_path) as lock:
        assert json.loads((tmp_path / RUN_LOCK).read_text())["pid"] == os.getpid()
        assert acquire(tmp_path) is lock, "taking it again in the same process is re-entry"
    assert not (tmp_path / RUN_LOCK).exists()
    with pytest.raises(RuntimeError), holding(tmp_path):
        raise RuntimeError("the run fails")
    assert not (tmp_path / RUN_LOCK).exists()


@pytest.mark.slow
def test_a_second_sweep_into_a_held_sweep_folder_stops_before_writing_anything(lock_holder, cache_dir, tmp_path):
    sweep = tmp_path / "sweep"
    owner = lock_holder(sweep, SWEEP_LOCK)
    result = run_train(["-m", f"hydra.sweep.dir={sweep}", *tiny_overrides(cache_dir), "seed=0,1"], timeout=120)
    assert result.returncode == 1
    assert f"in use by another sweep: pid {owner.pid}" in result.stderr.splitlines()[-1]
    assert sorted(p.name for p in sweep.iterdir()) == [SWEEP_LOCK], "no multirun.yaml, no job folder"


@pytest.mark.parametrize(
    "environment,owner",
    [({}, True), ({"RANK": "1"}, False), ({"RANK": "0"}, True), ({"SLURM_NTASKS": "2", "SLURM_PROCID": "1"}, False)],
)
def test_only_the_launching_process_or_rank_0_takes_the_folder(monkeypatch, tmp_path, environment, owner):
    for name in ("RANK", "SLURM_NTASKS", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with holding(tmp_path) as lock:
        assert (lock is not None) == owner and (tmp_path / RUN_LOCK).exists() == owner


def test_a_sweep_holding_its_folder_can_hand_its_callbacks_to_joblib_workers(tmp_path):
    """The joblib launcher pickles Hydra's callbacks; the folder lock inside one must not stop it."""
    import pickle

    from omegaconf import OmegaConf

    from ar_experiments.training.run_lock import FolderLockCallback

    callback = FolderLockCallback()
    callback.on_multirun_start(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "sweep")}}}))
    try:
        copy = pickle.loads(pickle.dumps(callback))
        assert getattr(copy, "lock", None) is None and callback.lock is not None  # the lock stays here
    finally:
        callback.on_multirun_end(None)
