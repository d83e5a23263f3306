"""Loader workers leave SIGTERM and Ctrl-C to the training process (SLURM signals every process of a job)."""

from __future__ import annotations

import os
import signal
import time

import pytest

# 2 ranks: a fork server starts first (it imports torch, 10-20 s on 2 busy cores): slow
DDP = pytest.param(signal.SIGTERM, 2, marks=pytest.mark.slow)


@pytest.mark.parametrize(("signum", "ranks"), [(signal.SIGTERM, 1), (signal.SIGINT, 1), DDP])
def test_a_loader_worker_outlives_the_signals_that_stop_a_run(tiny_dataset, cache_dir, compose_config, signum, ranks):
    """Under DDP (2 ranks) the workers start through a fork server, not forked from the training process."""
    from types import SimpleNamespace

    from hydra.utils import instantiate

    from tests.conftest import tiny_overrides

    cfg = compose_config([*tiny_overrides(cache_dir), "data.num_workers=1", "data.batch_size=2", "frames=4"])
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    datamodule.trainer = SimpleNamespace(global_rank=0, world_size=ranks)
    loader = datamodule.train_dataloader()
    assert loader.multiprocessing_context.get_start_method() == ("forkserver" if ranks > 1 else "fork")
    batches = iter(loader)
    next(batches)
    worker = batches._workers[0]
    os.kill(worker.pid, signum)
    time.sleep(0.5)
    assert worker.is_alive(), f"the loader worker died of {signal.Signals(signum).name}"
    assert len(next(batches)["label"]) == 2


def test_a_signal_while_a_worker_starts_does_not_kill_it(tiny_dataset, cache_dir, compose_config, monkeypatch):
    """torch's worker installs a SIGTERM handler that ends it before worker_init_fn runs: a signal in that
    moment (SLURM signals every process of a job at once) must wait until the worker ignores it."""
    import torch
    from hydra.utils import instantiate

    from tests.conftest import tiny_overrides

    set_threads = torch.set_num_threads  # torch's worker calls it between its handler and worker_init_fn
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (time.sleep(2), set_threads(n)))
    cfg = compose_config([*tiny_overrides(cache_dir), "data.num_workers=1", "data.batch_size=2", "frames=4"])
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    batches = iter(datamodule.train_dataloader())
    worker = batches._workers[0]
    time.sleep(0.5)
    os.kill(worker.pid, signal.SIGTERM)
    assert len(next(batches)["label"]) == 2
    assert worker.is_alive(), "the loader worker died of a SIGTERM sent while it started"


LOADER_LEFT_RUNNING = """
import torch
from ar_experiments.data.loader_workers import VideoLoader, leave_signals_to_the_main_process

batches = iter(VideoLoader(range(100), batch_size=2, num_workers=1, worker_init_fn=leave_signals_to_the_main_process))
next(batches)
print("exiting with a worker alive", flush=True)
"""


def test_a_process_ends_with_its_loader_still_iterating():
    """multiprocessing ends daemonic children at exit with SIGTERM, which the workers ignore: without the exit
    hook that kills them, a run that stopped on an exception mid-epoch (or pytest, after such a test) never exits."""
    import subprocess
    import sys

    try:
        done = subprocess.run([sys.executable, "-c", LOADER_LEFT_RUNNING], capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.fail("the process was still waiting for its loader worker 300 s after its last line")
    assert done.returncode == 0, done.stderr
    assert "exiting with a worker alive" in done.stdout


class FailsAtThree:
    def __len__(self):
        return 20

    def __getitem__(self, index):
        if index == 3:
            raise ValueError("video 3 is broken")
        return index


@pytest.mark.parametrize("persistent_workers", [False, True])
def test_a_loader_that_stopped_on_an_error_leaves_no_worker_behind(persistent_workers):
    """A worker ignores SIGTERM, torch's way of ending the workers that outlive a shutdown: a run that ended
    on a bad video left one behind for good (a joblib worker gathered one per failed job)."""
    import gc

    from ar_experiments.data.loader_workers import VideoLoader, leave_signals_to_the_main_process

    loader = VideoLoader(
        FailsAtThree(),
        batch_size=2,
        num_workers=1,
        worker_init_fn=leave_signals_to_the_main_process,
        persistent_workers=persistent_workers,
    )
    batches = iter(loader)
    workers = list(batches._workers)
    with pytest.raises(ValueError, match="video 3 is broken"):
        list(batches)
    del loader, batches
    gc.collect()
    assert not any(worker.is_alive() for worker in workers), "a loader worker outlived its loader"
