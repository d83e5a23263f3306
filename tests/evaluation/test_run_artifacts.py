"""Per-run metrics files: predictions per video, accuracy per class, confusion matrix and its figures."""

import csv
import json
import subprocess
import sys

import pytest
import torch

from ar_experiments.data.splits import VideoRecord
from ar_experiments.evaluation.artifacts import PREDICTION_COLUMNS, confused_pairs, write_run_artifacts
from ar_experiments.evaluation.video_level import VideoLevelAccumulator
from tests.conftest import REPO, tiny_overrides

NAMES = ["Archery", "Bowling", "Diving", "Fencing", "Golf", "Hammering"]


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _predictions():
    """8 videos of 6 classes: Bowling is twice taken for Diving, Golf once for Archery."""
    records = [
        VideoRecord(f"{NAMES[c]}/v_{NAMES[c]}_g0{i}_c01.avi", c, f"g{i}")
        for i, c in enumerate([0, 1, 1, 1, 2, 4, 4, 5])
    ]
    predicted = [0, 2, 2, 1, 2, 0, 4, 5]
    accumulator = VideoLevelAccumulator()
    for index in reversed(range(len(records))):  # order of arrival must not matter
        probs = torch.full((len(NAMES),), 0.02)
        probs[predicted[index]] = 0.9
        accumulator.update(torch.tensor([index]), probs[None], torch.tensor([records[index].label]), views_per_item=6)
    return accumulator, records


def test_predictions_csv_has_one_row_per_video_in_the_contract_columns(tmp_path):
    accumulator, records = _predictions()
    paths = write_run_artifacts(tmp_path, accumulator, records, NAMES)
    with open(paths["test_predictions"], newline="") as handle:
        assert next(csv.reader(handle)) == list(PREDICTION_COLUMNS)
    rows = read_rows(paths["test_predictions"])
    assert [row["video"] for row in rows] == [r.path for r in records]
    second = rows[1]
    assert (second["label"], second["label_name"], second["predicted"], second["predicted_name"]) == (
        "1",
        "Bowling",
        "2",
        "Diving",
    )
    assert second["top5"].split()[0] == "2" and len(second["top5"].split()) == 5
    assert float(second["prob_predicted"]) == pytest.approx(0.9) and float(second["prob_true"]) == pytest.approx(0.02)
    assert {row["views"] for row in rows} == {"6"}


def test_per_class_accuracy_and_confusion_matrix_agree_with_the_predictions(tmp_path):
    accumulator, records = _predictions()
    paths = write_run_artifacts(tmp_path, accumulator, records, NAMES)
    per_class = {row["class"]: row for row in read_rows(paths["per_class_accuracy"])}
    assert per_class["Bowling"]["support"] == "3" and float(per_class["Bowling"]["accuracy"]) == pytest.approx(1 / 3)
    assert per_class["Golf"]["support"] == "2" and float(per_class["Golf"]["accuracy"]) == pytest.approx(0.5)
    assert per_class["Fencing"] == {"class": "Fencing", "support": "0", "accuracy": ""}
    matrix = read_rows(paths["confusion_matrix_csv"])
    assert [row["true \\ predicted"] for row in matrix] == NAMES
    assert matrix[1]["Diving"] == "2" and matrix[4]["Archery"] == "1"
    assert sum(int(v) for row in matrix for k, v in row.items() if k in NAMES) == len(records)
    for name in ("confusion_matrix", "confused_pairs"):
        assert paths[name].stat().st_size > 10_000


def test_confused_pairs_are_ranked_by_count():
    confusion = torch.zeros(4, 4, dtype=torch.long)
    confusion[0, 1], confusion[2, 3], confusion[3, 0] = 1, 5, 2
    confusion += torch.eye(4, dtype=torch.long) * 10
    assert confused_pairs(confusion.numpy()) == [(2, 3, 5), (3, 0, 2), (0, 1, 1)]


def test_a_test_without_videos_writes_nothing(tmp_path):
    assert write_run_artifacts(tmp_path, VideoLevelAccumulator(), [], NAMES) == {}
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_run_leaves_its_metrics_files_gflops_and_a_checkpoint_predict_reads(tiny_dataset, cache_dir, tmp_path):
    run = tmp_path / "run"
    overrides = [o for o in tiny_overrides(cache_dir) if not o.startswith("trainer.limit_test_batches")]
    result = subprocess.run(
        [sys.executable, "-m", "ar_experiments.train", "frames=6", f"hydra.run.dir={run}", *overrides],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "WANDB_MODE": "offline"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((run / "results.json").read_text())
    assert results["status"] == "completed" and 0.005 < results["gflops"] < 1.0  # X3D-M, 6 frames at 32x32

    rows = read_rows(run / "test_predictions.csv")
    test_list = (tiny_dataset / "ucfTrainTestlist" / "testlist01.txt").read_text().split()
    assert sorted(row["video"] for row in rows) == sorted(test_list)
    assert {row["views"] for row in rows} == {str(results["test_views"])}  # multi-view predictions
    top1 = sum(row["label"] == row["predicted"] for row in rows) / len(rows)
    assert top1 == pytest.approx(results["test_top1_multiview"])
    for name in ("per_class_accuracy.csv", "confusion_matrix.csv", "confusion_matrix.png", "confused_pairs.png"):
        assert (run / name).is_file(), name
    media = next((run / "wandb").glob("offline-run-*/files/media"))
    assert list(media.rglob("confusion_matrix*.png")) and list(media.rglob("per_class_accuracy*.table.json"))

    video = tiny_dataset / "UCF-101" / rows[0]["video"]  # the run's own dataset (tests/conftest.py tiny_spec)
    predicted = subprocess.run(
        [sys.executable, "-m", "ar_experiments.predict", str(video), f"ckpt={run}", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    entry = json.loads(predicted.stdout)["videos"][0]
    assert entry["views"] == results["test_views"]
    # the same views of the same video through the same checkpoint: the run's own test prediction
    assert entry["probabilities"][rows[0]["label_name"]] == pytest.approx(float(rows[0]["prob_true"]), abs=1e-4)
