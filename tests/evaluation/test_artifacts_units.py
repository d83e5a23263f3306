"""The per-run evaluation files' numbers and names by exact value, and what goes to W&B (issue 26)."""

import logging
import math
import warnings

import numpy as np
import torch
import wandb
from pytorch_lightning.loggers import CSVLogger, WandbLogger

from ar_experiments.evaluation import artifacts
from tests.evaluation.test_run_artifacts import NAMES, _predictions


def test_the_files_of_a_run_are_named_and_the_figures_titled_by_videos_and_views(tmp_path, monkeypatch):
    drawn, logged = [], []
    monkeypatch.setattr(artifacts, "plot_confusion_matrix", lambda *args: drawn.append(("matrix", *args[2:])))
    monkeypatch.setattr(artifacts, "plot_confused_pairs", lambda *args: drawn.append(("pairs", *args[2:])))
    monkeypatch.setattr(artifacts, "_log_to_wandb", lambda *args: logged.append(args))
    accumulator, records = _predictions()
    paths = artifacts.write_run_artifacts(str(tmp_path), accumulator, records, NAMES, loggers=["a logger"])
    assert paths == {
        "test_predictions": tmp_path / "test_predictions.csv",
        "per_class_accuracy": tmp_path / "per_class_accuracy.csv",
        "confusion_matrix_csv": tmp_path / "confusion_matrix.csv",
        "confusion_matrix": tmp_path / "confusion_matrix.png",
        "confused_pairs": tmp_path / "confused_pairs.png",
    }
    title = "8 test videos, 6 views averaged"
    assert drawn == [("matrix", paths["confusion_matrix"], title), ("pairs", paths["confused_pairs"], title)]
    per_class = [
        ["Archery", 1, "1.000000"], ["Bowling", 3, "0.333333"], ["Diving", 1, "1.000000"], ["Fencing", 0, ""],
        ["Golf", 2, "0.500000"], ["Hammering", 1, "1.000000"],
    ]  # fmt: skip
    assert logged == [(["a logger"], paths, per_class)]
    assert paths["per_class_accuracy"].read_bytes().decode() == "class,support,accuracy\n" + "".join(
        f"{name},{support},{accuracy}\n" for name, support, accuracy in per_class
    )  # lines end in \n alone, not csv's default \r\n
    assert paths["confusion_matrix_csv"].read_text().splitlines()[:3] == [
        "true \\ predicted,Archery,Bowling,Diving,Fencing,Golf,Hammering",
        "Archery,1,0,0,0,0,0",
        "Bowling,0,1,2,0,0,0",
    ]
    second = paths["test_predictions"].read_text().splitlines()[2].split(",")
    assert second[:5] + second[6:] == [
        "Bowling/v_Bowling_g01_c01.avi",
        "1",
        "Bowling",
        "2",
        "Diving",
        "0.020000",
        "0.900000",
        "6",
    ]
    assert second[5].startswith("2 ") and len(second[5].split()) == 5  # the other four tie at 0.02


def test_prediction_rows_hold_the_top_classes_and_both_probabilities():
    probabilities = torch.tensor([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]])
    rows = artifacts.prediction_rows(["a.avi", "b.avi"], probabilities, torch.tensor([2, 0]), [3, 1], ["x", "y", "z"])
    assert rows == [
        ["a.avi", 2, "z", 1, "y", "1 2 0", "0.300000", "0.500000", 3],
        ["b.avi", 0, "x", 0, "x", "0 2 1", "0.600000", "0.600000", 1],
    ]


def test_the_views_of_a_figures_title():
    assert artifacts._views_label([1, 1]) == "single central view"
    assert artifacts._views_label([30, 30]) == "30 views averaged"
    assert artifacts._views_label([30, 3, 30]) == "3-30 views averaged"


def test_rows_are_normalised_without_a_warning_and_classes_ordered_best_first():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fractions = artifacts._row_normalised(np.array([[1, 3, 0], [0, 0, 0], [0, 1, 0]]))
    assert fractions[[0, 2]].tolist() == [[0.25, 0.75, 0.0], [0.0, 1.0, 0.0]] and np.isnan(fractions[1]).all()
    accuracy = np.array([0.5, np.nan, 0.9, 0.5])
    assert artifacts.classes_by_accuracy(accuracy, ["d", "a", "c", "b"]) == [2, 3, 0, 1]
    assert artifacts._percent(0.456) == "46%" and artifacts._percent(1.0) == "100%"
    assert artifacts._percent(math.nan) == "no videos"


def test_confused_pairs_break_ties_by_their_share_of_the_true_classs_mistakes_and_stop_at_the_limit():
    confusion = np.array([[5, 2, 1], [2, 8, 0], [0, 0, 9]])
    before = confusion.copy()
    # (0 -> 1) and (1 -> 0) are both 2 videos: two thirds of class 0's mistakes, all of class 1's
    assert artifacts.confused_pairs(confusion) == [(1, 0, 2), (0, 1, 2), (0, 2, 1)]
    assert artifacts.confused_pairs(confusion, limit=1) == [(1, 0, 2)]
    assert (confusion == before).all(), "the diagonal is left in the caller's matrix"
    assert len(artifacts.confused_pairs(np.ones((6, 6), dtype=int))) == artifacts.TOP_CONFUSED_PAIRS == 20


class RecordingWandb(WandbLogger):
    """A WandbLogger without a run: `experiment.log` records what it is given, or fails."""

    def __init__(self, fail: bool = False):
        self.logged, self.fail = [], fail

    @property
    def experiment(self):
        if self.fail:
            raise RuntimeError("offline")
        return self

    def log(self, data):
        self.logged.append(data)


def test_the_figures_and_the_per_class_table_go_to_each_wandb_logger_and_a_failure_only_warns(
    tmp_path, monkeypatch, caplog
):
    monkeypatch.setattr(wandb, "Image", lambda path: ("image", path))
    monkeypatch.setattr(wandb, "Table", lambda columns, data: ("table", columns, data))
    paths = {"confusion_matrix": tmp_path / "m.png", "confused_pairs": tmp_path / "p.png"}
    per_class = [["Archery", 2, "0.500000"], ["Fencing", 0, ""]]
    first, broken, last = RecordingWandb(), RecordingWandb(fail=True), RecordingWandb()
    with caplog.at_level(logging.WARNING, logger=artifacts.__name__):
        artifacts._log_to_wandb([CSVLogger(tmp_path), first, broken, last], paths, per_class)
    table = ("table", ["class", "support", "accuracy"], [["Archery", 2, 0.5], ["Fencing", 0, None]])
    expected = {
        "test/confusion_matrix": ("image", str(tmp_path / "m.png")),
        "test/confused_pairs": ("image", str(tmp_path / "p.png")),
        "test/per_class_accuracy": table,
    }
    assert first.logged == last.logged == [expected]
    assert caplog.messages == ["could not log the test figures to W&B (RuntimeError: offline)"]


def test_a_test_without_predictions_says_so(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger=artifacts.__name__):
        assert artifacts.write_run_artifacts(tmp_path, artifacts.VideoLevelAccumulator(), [], NAMES) == {}
    assert caplog.messages == ["no test predictions: per-run metrics files are not written"]


def test_the_confusion_matrix_counts_true_rows_and_predicted_columns():
    matrix = artifacts.confusion_matrix(torch.tensor([0, 2, 2, 1]), torch.tensor([1, 2, 0, 1]), 3)
    assert matrix.tolist() == [[0, 1, 0], [0, 1, 0], [1, 0, 1]]
    assert artifacts.confusion_matrix(torch.tensor([0]), torch.tensor([0]), 2).tolist() == [[1, 0], [0, 0]]
