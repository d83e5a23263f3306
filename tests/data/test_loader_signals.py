"""Loader workers leave SIGTERM and Ctrl-C to the training process (SLURM signals every process of a job)."""

from __future__ import annotations

import os
import signal
import time

import pytest


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_loader_worker_outlives_the_signals_that_stop_a_run(tiny_dataset, cache_dir, compose_config, signum):
    from hydra.utils import instantiate

    from tests.conftest import tiny_overrides

    cfg = compose_config([*tiny_overrides(cache_dir), "data.num_workers=1", "data.batch_size=2", "frames=4"])
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    batches = iter(datamodule.train_dataloader())
    next(batches)
    worker = batches._workers[0]
    os.kill(worker.pid, signum)
    time.sleep(0.5)
    assert worker.is_alive(), f"the loader worker died of {signal.Signals(signum).name}"
    assert len(next(batches)["label"]) == 2
