"""Pieces that keep a run's state safe: atomic checkpoints, resume decisions, signals, loggers that never fail."""

import json
import logging
import os
import signal

import pytest
import torch

from ar_experiments.config.checks import ConfigError
from ar_experiments.training.checkpoint_io import AtomicCheckpointIO
from ar_experiments.training.interruption import GracefulStop, RunInterrupted
from ar_experiments.training.run import LAST_CHECKPOINT, plan_resume
from tests.conftest import tiny_overrides


def test_a_checkpoint_write_that_dies_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"epoch": 1}, path)

    def dies_halfway(obj, handle):
        handle.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt  # the process is being killed

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"epoch": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=False)["epoch"] == 1
    assert os.listdir(path.parent) == ["last.ckpt"]  # no temporary file left behind


def _results(run_dir, **fields):
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.json").write_text(json.dumps(fields))


def test_resume_auto_skips_a_completed_run_and_continues_an_unfinished_one(tmp_path):
    done, unfinished, fresh = tmp_path / "0-done", tmp_path / "1-unfinished", tmp_path / "2-fresh"
    _results(done, status="completed", best_val_acc=0.5, overrides=["model=x3d_m"])
    _results(unfinished, status="interrupted", overrides=["model=slowfast"])
    (unfinished / LAST_CHECKPOINT).parent.mkdir()
    (unfinished / LAST_CHECKPOINT).write_bytes(b"ckpt")
    assert plan_resume("auto", done, ["model=x3d_m"]).completed["best_val_acc"] == 0.5
    assert plan_resume("auto", unfinished, ["model=slowfast"]).checkpoint == str(unfinished / LAST_CHECKPOINT)
    assert plan_resume("auto", fresh, ["model=x3d_m"]).checkpoint is None


def test_resume_refuses_a_folder_left_by_a_job_with_other_settings(tmp_path):
    _results(tmp_path, status="completed", best_val_acc=0.5, overrides=["model=x3d_m", "optimizer.lr=0.1"])
    with pytest.raises(ConfigError, match="other overrides .*optimizer.lr=0.1.*hydra.sweep.dir"):
        plan_resume("auto", tmp_path, ["model=x3d_m", "optimizer.lr=0.01"])


def test_resume_refuses_a_results_file_that_is_not_json(tmp_path):
    (tmp_path / "results.json").write_text("status: completed\n")  # edited by hand, or another tool's
    with pytest.raises(ConfigError, match="results.json cannot be read as JSON; delete it or run in a new folder"):
        plan_resume("auto", tmp_path, ["model=x3d_m"])


def test_resume_from_a_named_run_folder_or_checkpoint(tmp_path):
    (tmp_path / LAST_CHECKPOINT).parent.mkdir()
    (tmp_path / LAST_CHECKPOINT).write_bytes(b"ckpt")
    assert plan_resume(str(tmp_path), tmp_path / "new", None).checkpoint == str(tmp_path / LAST_CHECKPOINT)
    with pytest.raises(ConfigError, match="no checkpoint at"):
        plan_resume(str(tmp_path / "checkpoints"), tmp_path / "new", None)


def test_train_returns_the_recorded_metric_of_a_completed_run_without_training(compose_config, cache_dir, tmp_path):
    from ar_experiments.train import train

    _results(tmp_path, status="completed", best_val_acc=0.625)
    before = (tmp_path / "results.json").read_text()
    assert train(compose_config(tiny_overrides(cache_dir, tmp_path))) == 0.625
    assert (tmp_path / "results.json").read_text() == before
    assert not (tmp_path / "checkpoints").exists()


def test_ctrl_c_asks_for_a_stop_and_a_second_ctrl_c_stops_at_once(tmp_path):
    before = signal.getsignal(signal.SIGINT)
    stop = GracefulStop(tmp_path / "last.ckpt").install()
    try:
        os.kill(os.getpid(), signal.SIGINT)  # no KeyboardInterrupt: the run finishes its batch
        with pytest.raises(RunInterrupted) as caught:
            stop.raise_if_requested()
        assert caught.value.code == 128 + signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        stop.restore()
    assert signal.getsignal(signal.SIGINT) is before


def test_wandb_failing_mid_run_costs_one_warning_not_the_run(tmp_path, caplog):
    from ar_experiments.training.loggers import FailSafeWandbLogger

    class DiskFull:
        def log(self, *args, **kwargs):
            raise OSError(28, "No space left on device")

    logger = FailSafeWandbLogger(project="test", save_dir=str(tmp_path), mode="offline")
    logger._experiment = DiskFull()
    with caplog.at_level(logging.WARNING, logger="ar_experiments.training.loggers"):
        logger.log_metrics({"train/loss": 1.0}, step=1)
        logger.log_metrics({"train/loss": 0.9}, step=2)
    assert logger.failed
    assert [r.getMessage() for r in caplog.records if "W&B failed" in r.getMessage()] == [
        "W&B failed while logging (OSError: [Errno 28] No space left on device); "
        "it is off for the rest of this run, the other loggers go on"
    ]


def test_a_resumed_csv_log_keeps_its_earlier_epochs(tmp_path):
    from ar_experiments.training.loggers import ResumableCSVLogger

    first = ResumableCSVLogger(save_dir=str(tmp_path), name="csv", version="")
    first.log_metrics({"train/loss": 1.5, "epoch": 0}, step=1)
    first.save()
    resumed = ResumableCSVLogger(save_dir=str(tmp_path), name="csv", version="")
    resumed.log_metrics({"train/loss": 1.2, "val/top1": 0.5, "epoch": 1}, step=3)
    resumed.save()
    lines = (tmp_path / "csv" / "metrics.csv").read_text().splitlines()
    assert lines[0] == "epoch,step,train/loss,val/top1"
    assert lines[1:] == ["0,1,1.5,", "1,3,1.2,0.5"]
