"""The run returns the record it writes; a run that fails mid-fit still records what was known; the CPU share
of a job reaches its data loader as an argument, not as a changed config."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
import torch

from ar_experiments.record.results import KEYS
from tests.conftest import tiny_overrides

FAST = ["model=x3d_xs", "frames=4", "logger=csv", "data.batch_size=2", "test.temporal_views=1", "test.spatial_crops=1"]


def written(run_dir) -> dict:
    return json.loads((run_dir / "results.json").read_text())


@pytest.mark.slow  # a whole tiny fit and test: 45 s on 2 busy cores
def test_the_run_returns_the_record_it_writes(compose_config, tiny_dataset, cache_dir, tmp_path):
    from ar_experiments.training.run import run_in_this_process

    record = run_in_this_process(compose_config([*tiny_overrides(cache_dir, tmp_path), *FAST]))
    assert written(tmp_path) == asdict(record)
    assert list(written(tmp_path)) == list(KEYS)
    assert record.status == "completed" and record.device == "cpu" and record.test_views == 1
    assert all(isinstance(value, float) for value in (record.best_val_acc, record.test_top1, record.test_top5))
    assert record.params > 0 and record.train_clips_per_s > 0 and record.wall_seconds > record.train_seconds


def test_a_run_that_fails_mid_fit_records_what_was_known(compose_config, tiny_dataset, cache_dir, tmp_path):
    from ar_experiments.training.callbacks import NonFiniteLossError
    from ar_experiments.training.run import run_in_this_process

    with pytest.raises(NonFiniteLossError):
        run_in_this_process(compose_config([*tiny_overrides(cache_dir, tmp_path), *FAST, "optimizer.lr=1e30"]))
    record = written(tmp_path)
    assert record["status"] == "failed" and "training loss is nan" in record["error"]
    assert record["params"] > 0 and record["gflops"] > 0 and record["device"] == "cpu"  # built before the fit
    assert record["skipped_videos"] == 0 and record["wall_seconds"] > 0 and record["peak_rss_mb"] > 0
    assert record["model"] == "x3d_xs" and record["test_top1"] is None and record["epochs"] is None


def test_threads_per_job_caps_the_workers_the_data_module_gets_and_leaves_the_config_alone(
    compose_config, tiny_dataset, cache_dir, tmp_path
):
    from ar_experiments.training.fit import build

    cfg = compose_config([*tiny_overrides(cache_dir, tmp_path), *FAST, "data.num_workers=2", "threads_per_job=1"])
    threads = torch.get_num_threads()
    try:
        built = build(cfg, {"model": dict(cfg.model), "optimizer": None, "scheduler": None})
        assert built.datamodule.num_workers == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert cfg.data.num_workers == 2
