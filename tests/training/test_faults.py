"""Faults injected into real runs: broken data, diverging loss, signals, an unreachable W&B.

Each test checks what a user would see: the run's status and error in
results.json, its files, its exit code and its messages.
"""

import csv
import json
import logging
import os
import signal
import subprocess
import sys
import time

import pytest
import pytorch_lightning as pl
import torch

from ar_experiments.data.dataset import VideoClipDataset
from ar_experiments.data.decode import VideoDecodeError
from ar_experiments.data.splits import DatasetIndexError, hold_out_groups, load_split
from ar_experiments.data.transforms import ClipTransform
from tests.conftest import REPO, tiny_overrides
from tests.fault_injection import FAULTS, break_video, copy_dataset, keep_train_lines

# on top of tiny_overrides: the cheapest clips and no multi-view test pass
FAST = ["logger=csv", "frames=4", "data.batch_size=2", "test.temporal_views=1", "test.spatial_crops=1"]


def synthetic_overrides(cache_dir, run_dir):
    return [*tiny_overrides(cache_dir, run_dir), *FAST]


def folder_overrides(root, run_dir):
    """A UCF101-layout folder (a broken copy of the tiny dataset) at the tiny dataset's sizes."""
    shrink = [o for o in tiny_overrides(root, run_dir) if not o.startswith(("paths.cache_dir", "data.synthetic"))]
    # from scratch: no Kinetics-400 weights file exists here
    return [
        *shrink,
        *FAST,
        "data=ucf101",
        f"data.root={root}",
        "data.short_side=36",
        "data.crop_size=32",
        "model.pretrained=null",
    ]


def results(run_dir):
    return json.loads((run_dir / "results.json").read_text())


def train_in_process(compose_config, overrides):
    from ar_experiments.train import train

    return train(compose_config(overrides))


@pytest.mark.parametrize("fault", FAULTS)
def test_a_broken_video_is_replaced_by_a_readable_one_with_its_own_label(tiny_dataset, tmp_path, fault):
    root = copy_dataset(tiny_dataset, tmp_path / "data")
    records = load_split(root, 1).train[:4]
    break_video(root / "UCF-101" / records[1].path, fault)
    dataset = VideoClipDataset(records, root / "UCF-101", 4, 16, ClipTransform(32, "random"), 36, "random")
    for index in range(len(records)):
        item = dataset[(index, 0)]
        assert item["index"] != 1 and item["label"] == records[item["index"]].label
        assert item["skipped"] == (records[1].path if index == 1 else "")
    assert records[1].path in dataset[(1, 0)]["skipped_reason"]
    with pytest.raises(VideoDecodeError, match="data.on_bad_video=skip"):
        VideoClipDataset(records, root / "UCF-101", 4, 16, ClipTransform(32), 36, on_bad_video="error")[1]


@pytest.fixture
def dataset_with_broken_training_videos(tiny_dataset, tmp_path):
    """A copy whose training set (9 videos after holding out one group per class) has one video of each fault."""
    root = copy_dataset(tiny_dataset, tmp_path / "data")
    keep_train_lines(root, per_class=4)
    train, _ = hold_out_groups(load_split(root, 1).train, groups_per_class=1, seed=0)
    broken = sorted(record.path for record in train[: len(FAULTS)])
    for path, fault in zip(broken, FAULTS):
        break_video(root / "UCF-101" / path, fault)
    return root, broken


@pytest.mark.slow
def test_unreadable_training_videos_are_replaced_counted_and_each_named_once(
    compose_config, dataset_with_broken_training_videos, tmp_path, caplog
):
    root, broken = dataset_with_broken_training_videos
    run_dir = tmp_path / "run"
    overrides = [
        *folder_overrides(root, run_dir),
        "data.val_groups_per_class=1",
        "data.num_workers=1",  # the replacements happen in a worker process
        "trainer.max_epochs=2",  # every broken video is met once per epoch
        "trainer.limit_train_batches=1.0",
    ]
    with caplog.at_level(logging.WARNING, logger="ar_experiments.training.module"):
        train_in_process(compose_config, overrides)
    record = results(run_dir)
    assert record["status"] == "completed" and record["skipped_videos"] == len(broken)
    assert (run_dir / "skipped_videos.txt").read_text().splitlines() == broken
    warnings = [r.getMessage() for r in caplog.records if "unreadable video" in r.getMessage()]
    assert sorted(w.split()[2] for w in warnings) == broken  # one warning per file, across epochs and workers


def test_on_bad_video_error_stops_the_run_naming_the_video_and_the_setting(
    compose_config, dataset_with_broken_training_videos, tmp_path
):
    root, broken = dataset_with_broken_training_videos
    run_dir = tmp_path / "run"
    overrides = [
        *folder_overrides(root, run_dir),
        "data.val_groups_per_class=1",
        "data.num_workers=1",
        "data.on_bad_video=error",
        "trainer.limit_train_batches=1.0",
    ]
    with pytest.raises(VideoDecodeError):
        train_in_process(compose_config, overrides)
    record = results(run_dir)
    assert record["status"] == "failed"
    assert record["error"].startswith("VideoDecodeError: /") and "Traceback" not in record["error"]
    assert any(path in record["error"] for path in broken) and "data.on_bad_video=skip" in record["error"]


def test_split_file_problems_stop_the_run_before_a_model_is_built(compose_config, tiny_dataset, tmp_path, monkeypatch):
    from ar_experiments.training import module

    root = copy_dataset(tiny_dataset, tmp_path / "data")
    with open(root / "ucfTrainTestlist" / "trainlist01.txt", "ab") as handle:
        handle.write(b"MoveRight/v_MoveRight_g99_c01.avi 1\r\n")

    def no_model(*args, **kwargs):
        raise AssertionError("a model was built although the split files are broken")

    monkeypatch.setattr(module.VideoClassifier, "__init__", no_model)
    run_dir = tmp_path / "run"
    with pytest.raises(DatasetIndexError, match="trainlist01.txt:55: video not found: .*is data.root the folder"):
        train_in_process(compose_config, folder_overrides(root, run_dir))
    assert results(run_dir)["status"] == "failed"


@pytest.mark.slow
def test_the_command_line_lists_split_file_problems_without_traceback(tiny_dataset, tmp_path):
    root = copy_dataset(tiny_dataset, tmp_path / "data")
    with open(root / "ucfTrainTestlist" / "trainlist01.txt", "ab") as handle:
        handle.write(b"MoveRight/v_MoveRight_g01_c01.avi 1\r\nJuggling/v_Juggling_g01_c01.avi 4\r\n")
    result = run_train([*folder_overrides(root, tmp_path / "unused"), f"hydra.run.dir={tmp_path / 'run'}"])
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "error: 2 problem(s) in the dataset index:" in result.stderr
    assert "trainlist01.txt:55: duplicate entry 'MoveRight/v_MoveRight_g01_c01.avi' (first on line 1)" in result.stderr
    assert "trainlist01.txt:56: unknown class 'Juggling'" in result.stderr


def test_a_diverging_loss_fails_the_run_naming_the_step_and_the_last_finite_loss(compose_config, cache_dir, tmp_path):
    from ar_experiments.training.callbacks import NonFiniteLossError

    run_dir = tmp_path / "run"
    with pytest.raises(NonFiniteLossError):
        train_in_process(compose_config, [*synthetic_overrides(cache_dir, run_dir), "optimizer.lr=1e30"])
    record = results(run_dir)
    assert record["status"] == "failed"
    assert "training loss is nan at step 2 (epoch 0, batch 1)" in record["error"]
    assert "the last finite loss was" in record["error"] and "at step 1" in record["error"]


def epoch_metrics(run_dir) -> dict[str, list[float]]:
    """Per-epoch values of each training and validation metric in the run's metrics.csv."""
    with open(run_dir / "csv" / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    keys = ("train/loss", "train/top1", "val/loss", "val/top1")
    return {key: [float(row[key]) for row in rows if row.get(key)] for key in keys}


@pytest.mark.slow
def test_same_config_and_seed_give_identical_losses_and_accuracies(compose_config, cache_dir, tmp_path):
    runs = []
    for workers in (0, 1):
        run_dir = tmp_path / f"workers{workers}"
        overrides = [*synthetic_overrides(cache_dir, run_dir), "trainer.max_epochs=2", f"data.num_workers={workers}"]
        train_in_process(compose_config, overrides)
        runs.append((epoch_metrics(run_dir), results(run_dir)["best_val_acc"]))
    (first, first_best), (second, second_best) = runs
    assert len(first["train/loss"]) == len(first["val/top1"]) == 2
    assert first == second and first_best == second_best


def run_train(args, env=None, **popen):
    command = [sys.executable, "-m", "ar_experiments.train", *args]
    environment = {**os.environ, "WANDB_MODE": "offline", **(env or {})}
    if popen:
        return subprocess.Popen(command, cwd=REPO, env=environment, text=True, **popen)
    return subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=600)


def sigterm_when_first_checkpoint_exists(args, job_dir) -> subprocess.CompletedProcess:
    """Start a run, send SIGTERM once the first epoch's checkpoint is written (as a scheduler would), wait."""
    log_file = job_dir.parent.parent / "sigterm.log"
    with open(log_file, "w") as log:
        process = run_train(args, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while not (job_dir / "checkpoints" / "last.ckpt").exists():
            assert process.poll() is None, log_file.read_text()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint after 300 s"
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(timeout=300)
    return subprocess.CompletedProcess(args, returncode, log_file.read_text(), "")


def sweep_args(cache_dir, sweep):
    # 3 epochs of 4 batches: after the first epoch's checkpoint, two epochs remain to be interrupted
    return [
        "-m",
        "model=x3d_m",
        *synthetic_overrides(cache_dir, None),
        "trainer.max_epochs=3",
        "trainer.limit_train_batches=4",
        f"hydra.sweep.dir={sweep}",
    ]


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_the_same_command_resumes_then_skips(cache_dir, tiny_dataset, tmp_path):
    sweep = tmp_path / "sweep"
    job = sweep / "0-x3d_m-4f-split1"
    args = sweep_args(cache_dir, sweep)
    stopped = sigterm_when_first_checkpoint_exists(args, job)
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stdout[-3000:]
    assert results(job)["status"] == "interrupted" and results(job)["error"] == "RunInterrupted: stopped by SIGTERM"
    assert f"re-run the same command with hydra.sweep.dir={sweep}" in stopped.stdout
    interrupted_at = torch.load(job / "checkpoints" / "last.ckpt", weights_only=False)["global_step"]
    assert 4 <= interrupted_at < 12

    resumed = run_train(args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    record = results(job)
    assert record["status"] == "completed" and record["epochs"] == 3
    assert record["resumed_from"] == str(job / "checkpoints" / "last.ckpt")
    assert torch.load(job / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 12  # 3 x 4 batches
    assert len(epoch_metrics(job)["val/top1"]) == 3  # the epochs before the interruption are still in the CSV

    again = run_train(args)
    assert again.returncode == 0 and "already holds this completed run" in again.stdout
    assert results(job) == record


class CtrlCAtStep(pl.Callback):
    """Presses Ctrl-C (SIGINT to this process) after training step `step`."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.slow
def test_ctrl_c_mid_epoch_stops_after_the_batch_and_the_run_resumes_to_full_length(compose_config, cache_dir, tmp_path):
    run_dir = tmp_path / "run"
    overrides = [*synthetic_overrides(cache_dir, run_dir), "trainer.max_epochs=2", "trainer.limit_train_batches=3"]
    ctrl_c = [f"+callbacks.ctrl_c._target_={__name__}.CtrlCAtStep", "+callbacks.ctrl_c.step=4"]
    with pytest.raises(SystemExit) as stopped:  # no KeyboardInterrupt: the batch finishes, a checkpoint is saved
        train_in_process(compose_config, [*overrides, *ctrl_c])
    assert stopped.value.code == 128 + signal.SIGINT
    assert (
        results(run_dir)["status"] == "interrupted" and results(run_dir)["error"] == "RunInterrupted: stopped by SIGINT"
    )
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 4  # epoch 1, batch 1

    train_in_process(compose_config, overrides)
    record = results(run_dir)
    assert record["status"] == "completed" and record["epochs"] == 2
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 6  # 2 x 3 batches


@pytest.mark.slow
def test_an_unreachable_wandb_server_leaves_the_run_complete_with_csv_logs(cache_dir, tiny_dataset, tmp_path):
    unreachable = {
        "WANDB_BASE_URL": "http://127.0.0.1:9",  # nothing listens on the discard port
        "WANDB_API_KEY": "0" * 40,
        "WANDB_INIT_TIMEOUT": "20",
        "WANDB_HTTP_TIMEOUT": "2",
        "WANDB__GRAPHQL_RETRY_MAX": "1",
    }
    run_dir = tmp_path / "run"
    overrides = [o for o in synthetic_overrides(cache_dir, None) if o != "logger=csv"]
    result = run_train([*overrides, "logger=many", "logger.wandb.mode=online", f"hydra.run.dir={run_dir}"], unreachable)
    assert result.returncode == 0, result.stderr[-3000:]
    assert results(run_dir)["status"] == "completed"
    assert epoch_metrics(run_dir)["val/top1"]
    assert "W&B could not start" in result.stdout + result.stderr


@pytest.mark.slow
def test_unreadable_test_and_validation_videos_are_left_out_counted_once_and_listed(
    compose_config, tiny_dataset, tmp_path, caplog
):
    root = copy_dataset(tiny_dataset, tmp_path / "data")
    index = load_split(root, 1)
    _, val = hold_out_groups(index.train, groups_per_class=3, seed=0)
    broken_test = sorted([index.test[2].path, index.test[5].path])
    break_video(root / "UCF-101" / broken_test[0], "zero_bytes")
    break_video(root / "UCF-101" / broken_test[1], "short_stream")  # opens, but the later views' frames are gone
    break_video(root / "UCF-101" / val[0].path, "not_a_video")
    run_dir = tmp_path / "run"
    overrides = [
        *folder_overrides(root, run_dir),
        "trainer.limit_val_batches=1.0",
        "trainer.limit_test_batches=1.0",
        "test.temporal_views=3",
        "test.spatial_crops=3",
        "data.num_workers=1",
    ]
    with caplog.at_level(logging.WARNING, logger="ar_experiments.training.module"):
        train_in_process(compose_config, overrides)
    record = results(run_dir)
    assert record["status"] == "completed"
    assert (record["test_videos"], record["skipped_test_videos"]) == (len(index.test) - 2, 2)
    assert (record["val_videos"], record["skipped_val_videos"]) == (len(val) - 1, 1)
    assert (run_dir / "skipped_test_videos.txt").read_text().splitlines() == broken_test
    assert (run_dir / "skipped_val_videos.txt").read_text().splitlines() == [val[0].path]
    with open(run_dir / "test_predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    videos = [row["video"] for row in rows]
    assert len(videos) == len(set(videos)) == len(index.test) - 2 and not set(broken_test) & set(videos)
    assert {row["views"] for row in rows} == {"9"}
    by_hand = sum(row["label"] == row["predicted"] for row in rows) / len(rows)
    assert record["test_top1_multiview"] == pytest.approx(by_hand, abs=1e-6)
    with open(run_dir / "per_class_accuracy.csv") as handle:
        assert sum(int(row["support"]) for row in csv.DictReader(handle)) == len(rows)
    warnings = [r.getMessage() for r in caplog.records if "left out of the" in r.getMessage()]
    assert sorted(w.split()[3] for w in warnings if "test video" in w) == broken_test  # each named once
    assert [w.split()[3] for w in warnings if "val video" in w] == [val[0].path]
