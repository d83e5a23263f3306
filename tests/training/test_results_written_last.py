"""results.json is written atomically and last, so its presence means the run ended: a write that dies
halfway leaves no results.json (or the previous one whole), and every other file of the run comes before it.
The fit itself is stood in for (no model is trained); what is tested is the run's bookkeeping around it."""

import json
import os
from dataclasses import replace
from types import SimpleNamespace

import pytest

from ar_experiments.record.results import RunRecord
from ar_experiments.training import run as training_run
from ar_experiments.training.run_record import write_results
from tests.conftest import tiny_overrides


def test_a_results_write_that_dies_halfway_leaves_no_results_json(tmp_path, monkeypatch):
    def killed_before_the_data_reach_disk(fd):
        raise KeyboardInterrupt  # the bytes are written to the temporary file, not yet renamed

    monkeypatch.setattr(os, "fsync", killed_before_the_data_reach_disk)
    with pytest.raises(KeyboardInterrupt):
        write_results(tmp_path, RunRecord(status="completed", test_top1=0.5))
    assert os.listdir(tmp_path) == [], "neither results.json nor a temporary file is left"

    monkeypatch.undo()
    write_results(tmp_path, RunRecord(status="failed", error="first try"))
    monkeypatch.setattr(os, "fsync", killed_before_the_data_reach_disk)
    with pytest.raises(KeyboardInterrupt):
        write_results(tmp_path, RunRecord(status="completed", test_top1=0.5))
    kept = json.loads((tmp_path / "results.json").read_text())
    assert (kept["status"], kept["error"], kept["test_top1"]) == ("failed", "first try", None)
    assert os.listdir(tmp_path) == ["results.json"]


def test_results_json_is_the_last_file_a_run_writes(compose_config, cache_dir, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    written: list[str] = []
    rename = os.replace

    def recorded_rename(source, destination):  # every atomic write ends with this rename
        written.append(os.path.relpath(destination, run_dir))
        rename(source, destination)

    built = SimpleNamespace(
        known=dict, skipped=lambda: {"train": ["A/v_1.avi"], "val": ["B/v_2.avi"], "test": ["C/v_3.avi"]}
    )

    def fake_fit_and_test(cfg, built, record, resume_from, stop, group, started):
        (run_dir / "checkpoints").mkdir()
        (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"weights")
        (run_dir / "test_predictions.csv").write_text("video,label,predicted\n")
        return replace(record, status="completed", best_val_acc=0.5, test_top1=0.25)

    monkeypatch.setattr(training_run, "build", lambda cfg, resolved: built)
    monkeypatch.setattr(training_run, "fit_and_test", fake_fit_and_test)
    monkeypatch.setattr(os, "replace", recorded_rename)
    record = training_run.run_in_this_process(compose_config(tiny_overrides(cache_dir, run_dir)))
    assert (record.status, record.best_val_acc) == ("completed", 0.5)

    assert written[-1] == "results.json"
    assert {"skipped_videos.txt", "skipped_val_videos.txt", "skipped_test_videos.txt"} <= set(written)
    results = run_dir / "results.json"
    assert all(path.stat().st_mtime_ns <= results.stat().st_mtime_ns for path in run_dir.rglob("*") if path.is_file())
    record = json.loads(results.read_text())
    assert (record["skipped_videos"], record["skipped_val_videos"], record["skipped_test_videos"]) == (1, 1, 1)
