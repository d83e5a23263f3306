"""The long paths, through the real command: several epochs under DDP, and runs stopped by a signal in the
middle of an epoch, then resumed by the same command, that end exactly as the run that was never stopped."""

from __future__ import annotations

import csv
import json
import signal
from collections import defaultdict
from pathlib import Path

import pytest
import torch

from tests.conftest import run_train, tiny_overrides

EPOCHS, BATCHES = 3, 6  # 6 batches of 4 clips an epoch (all 45 training videos under DDP with 2 ranks)
STEP_IN_EPOCH_2 = BATCHES + 2  # the signal comes after the 2nd batch of the 2nd epoch (of 3)


def overrides(cache_dir: Path, *extra: str) -> list[str]:
    shrunk = [o for o in tiny_overrides(cache_dir) if not o.startswith(("trainer.max_epochs", "trainer.limit_"))]
    return [
        *shrunk,
        "model=x3d_xs",
        "frames=4",
        "logger=csv",
        "model.dropout=0.5",  # dropout draws random numbers every step: the resumed run must draw the same
        "data.batch_size=4",
        "data.num_workers=1",
        "test.temporal_views=2",
        "test.spatial_crops=3",
        f"trainer.max_epochs={EPOCHS}",
        "callbacks.early_stopping=null",
        *extra,
    ]


def results(run_dir: Path) -> dict:
    return json.loads((run_dir / "results.json").read_text())


def metrics_by_epoch(run_dir: Path) -> dict[int, dict[str, str]]:
    """epoch -> every logged metric of that epoch; a metric logged twice for an epoch must agree."""
    table: dict[int, dict[str, str]] = defaultdict(dict)
    with open(run_dir / "csv" / "metrics.csv") as handle:
        for row in csv.DictReader(handle):
            epoch = int(row["epoch"])
            for key, value in row.items():
                if value and key.startswith(("train/", "val/")):
                    assert table[epoch].setdefault(key, value) == value, f"{key} of epoch {epoch} logged twice"
    return dict(table)


def train_batches(record_dir: Path) -> dict[int, dict[int, list[tuple[int, int]]]]:
    """epoch -> rank -> the (video, clip start frame) pairs it trained on, in order."""
    seen: dict[int, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    for path in sorted(record_dir.glob("rank*.jsonl")):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            seen[row["epoch"]][row["rank"]] += list(zip(row["indices"], row["starts"]))
    return seen


def assert_same_run(resumed: Path, uninterrupted: Path) -> None:
    first, second = metrics_by_epoch(uninterrupted), metrics_by_epoch(resumed)
    assert sorted(first) == list(range(EPOCHS))
    assert second == first, "per-epoch training loss, accuracy and validation metrics"
    a, b = results(uninterrupted), results(resumed)
    for key in ("best_val_acc", "test_top1", "test_top1_multiview", "test_videos", "epochs"):
        assert b[key] == a[key], key
    assert (resumed / "test_predictions.csv").read_text() == (uninterrupted / "test_predictions.csv").read_text()


def stopped_and_resumed(cache_dir: Path, run_dir: Path, *extra: str, to_parent: bool = False) -> int:
    """Run with a SIGTERM after training step STEP_IN_EPOCH_2, check the stop, run the same command again;
    returns the step the interrupted run's checkpoint was saved at."""
    signal_at = [
        "+callbacks.signal_at._target_=tests.recording.SignalAtStep",
        f"+callbacks.signal_at.step={STEP_IN_EPOCH_2}",
        f"+callbacks.signal_at.to_parent={to_parent}",
    ]
    command = [*overrides(cache_dir, f"trainer.limit_train_batches={BATCHES}", *extra, *signal_at)]
    command.append(f"hydra.run.dir={run_dir}")
    stopped = run_train(command)
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-3000:]
    assert results(run_dir)["status"] == "interrupted"
    step = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert BATCHES < step < 2 * BATCHES, f"stopped at step {step}, not in the middle of the 2nd epoch"
    resumed = run_train(command)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert results(run_dir)["status"] == "completed"
    assert "not resumable" not in resumed.stderr, "Lightning found the training loader unable to resume"
    return step


# steps slowed to 0.5 s, so that the training time compared is mostly theirs, not the busy machine's noise
SLOW_STEPS = ["+callbacks.slow._target_=tests.recording.SlowTrainingSteps", "+callbacks.slow.seconds=0.5"]


@pytest.mark.slow
def test_a_run_stopped_mid_epoch_by_sigterm_resumes_to_the_uninterrupted_result(tiny_dataset, cache_dir, tmp_path):
    uninterrupted = tmp_path / "uninterrupted"
    done = run_train(
        [*overrides(cache_dir, f"trainer.limit_train_batches={BATCHES}", *SLOW_STEPS), f"hydra.run.dir={uninterrupted}"]
    )
    assert done.returncode == 0, done.stderr[-3000:]
    resumed = tmp_path / "resumed"
    stopped_and_resumed(cache_dir, resumed, *SLOW_STEPS)
    assert_same_run(resumed, uninterrupted)
    whole, again = results(uninterrupted), results(resumed)
    assert whole["train_seconds"] >= EPOCHS * BATCHES * 0.5
    for key in ("train_seconds", "train_clips_per_s"):  # the stopped process's seconds are in the checkpoint
        assert again[key] == pytest.approx(whole[key], rel=0.15), key


@pytest.fixture(scope="module")
def ddp_run(tiny_dataset, cache_dir, tmp_path_factory):
    """Three whole epochs (of BATCHES batches per rank) on 2 CPU ranks, every training batch recorded."""
    folder = tmp_path_factory.mktemp("ddp")
    record = [
        "+callbacks.record._target_=tests.recording.RecordTrainingBatches",
        f"+callbacks.record.folder={folder / 'batches'}",
    ]
    result = run_train([*overrides(cache_dir, "trainer=ddp_cpu", *record), f"hydra.run.dir={folder / 'run'}"])
    assert results(folder / "run")["world_size"] == 2
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


@pytest.mark.slow
def test_ddp_epochs_each_visit_every_video_once_in_a_new_order_with_new_clips(ddp_run, compose_config, cache_dir):
    from hydra.utils import instantiate

    datamodule = instantiate(compose_config(overrides(cache_dir)).data)
    datamodule.setup("fit")
    videos = len(datamodule.train_set)
    epochs = train_batches(ddp_run / "batches")
    assert sorted(epochs) == list(range(EPOCHS))
    orders, starts = [], []
    for epoch in range(EPOCHS):
        assert sorted(epochs[epoch]) == [0, 1]
        both = [pair for rank in (0, 1) for pair in epochs[epoch][rank]]
        assert sorted(index for index, _ in both) == list(range(videos)), f"epoch {epoch}: each video once"
        orders.append([index for index, _ in epochs[epoch][0]])
        starts.append(dict(both))
    assert orders[0] != orders[1] != orders[2] != orders[0], "a new shuffle every epoch"
    for earlier, later in ((0, 1), (1, 2)):
        moved = sum(starts[earlier][video] != starts[later][video] for video in range(videos))
        assert moved > videos // 2, f"clips start elsewhere in epoch {later} than in {earlier} ({moved} of {videos})"
    clips = [float(row["train/clips"]) for row in metrics_by_epoch(ddp_run / "run").values()]
    assert clips == [videos] * EPOCHS


@pytest.mark.slow
def test_ddp_run_stopped_mid_epoch_resumes_to_the_uninterrupted_result(ddp_run, cache_dir, tmp_path):
    """SIGTERM to the command's process: both ranks stop after the same batch, and resume from it."""
    resumed = tmp_path / "resumed"
    stopped_and_resumed(cache_dir, resumed, "trainer=ddp_cpu", to_parent=True)
    assert results(resumed)["world_size"] == 2
    assert_same_run(resumed, ddp_run / "run")  # BATCHES is the whole epoch of each rank there
