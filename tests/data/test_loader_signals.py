"""Loader workers leave SIGTERM and Ctrl-C to the training process (SLURM signals every process of a job)."""

from __future__ import annotations

import os
import signal
import time

import pytest


@pytest.mark.parametrize(("signum", "ranks"), [(signal.SIGTERM, 1), (signal.SIGINT, 1), (signal.SIGTERM, 2)])
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
