"""A DDP rank whose whole share of the validation or test videos is unreadable: the ranks' collectives stay
matched (no hang, no crash), the metrics count only the readable videos, and each skip is counted once."""

from __future__ import annotations

import csv
import json

import pytest

from ar_experiments.data.splits import hold_out_groups, load_split
from tests.conftest import run_train
from tests.fault_injection import break_video, copy_dataset
from tests.training.test_faults import folder_overrides

RANKS = 2


def rank_share(records: list, rank: int) -> list:
    """The videos a rank evaluates (data/dataset.py's ShardSampler: rank, rank + world, ...)."""
    return records[rank::RANKS]


@pytest.mark.slow
def test_a_rank_whose_validation_and_test_videos_are_all_unreadable_finishes_with_the_others(tiny_dataset, tmp_path):
    root = copy_dataset(tiny_dataset, tmp_path / "data")
    index = load_split(root, 1)
    _, val = hold_out_groups(index.train, groups_per_class=3, seed=0)
    broken_val, broken_test = rank_share(val, 1), rank_share(index.test, 1)
    for record in [*broken_val, *broken_test]:
        break_video(root / "UCF-101" / record.path, "not_a_video")
    run_dir = tmp_path / "run"
    overrides = [
        *folder_overrides(root, None),
        "trainer=ddp_cpu",
        "model=x3d_xs",
        "trainer.limit_train_batches=1",
        "trainer.limit_val_batches=1.0",
        "trainer.limit_test_batches=1.0",
        "trainer.num_sanity_val_steps=0",
        f"hydra.run.dir={run_dir}",
    ]
    # unmatched collectives hang (gloo waits 30 minutes) or crash; a completed run takes well under 2 minutes
    result = run_train(overrides, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((run_dir / "results.json").read_text())
    assert record["status"] == "completed" and record["world_size"] == RANKS
    assert (record["val_videos"], record["skipped_val_videos"]) == (len(val) - len(broken_val), len(broken_val))
    assert (record["test_videos"], record["skipped_test_videos"]) == (
        len(index.test) - len(broken_test),
        len(broken_test),
    )
    assert (run_dir / "skipped_val_videos.txt").read_text().splitlines() == sorted(r.path for r in broken_val)
    with open(run_dir / "test_predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(row["video"] for row in rows) == sorted(r.path for r in rank_share(index.test, 0))
    by_hand = sum(row["label"] == row["predicted"] for row in rows) / len(rows)
    assert record["test_top1"] == pytest.approx(by_hand, abs=1e-6)
    with open(run_dir / "csv" / "metrics.csv") as handle:
        val_top1 = [float(row["val/top1"]) for row in csv.DictReader(handle) if row.get("val/top1")]
    assert len(val_top1) == 1 and record["best_val_acc"] == pytest.approx(val_top1[0])
