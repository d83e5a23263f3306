"""results.json is written atomically and last, so its presence means the run ended: a write that dies
halfway leaves no results.json (or the previous one whole), and every other file of the run comes before it.
The fit itself is stood in for (no model is trained); what is tested is the run's bookkeeping around it."""

import json
import os
from types import SimpleNamespace

import pytest

from ar_experiments.training import run as training_run
from ar_experiments.training.run_record import write_results
from tests.conftest import tiny_overrides


def test_a_results_write_that_dies_halfway_leaves_no_results_json(tmp_path, monkeypatch):
    def killed_before_the_data_reach_disk(fd):
        raise KeyboardInterrupt  # the bytes are written to the temporary file, not yet renamed

    monkeypatch.setattr(os, "fsync", killed_before_the_data_reach_disk)
    with pytest.raises(KeyboardInterrupt):
        write_results(tmp_path, {"status": "completed", "test_top1": 0.5})
    assert os.listdir(tmp_path) == [], "neither results.json nor a temporary file is left"

    monkeypatch.undo()
    write_results(tmp_path, {"status": "failed", "error": "first try"})
    monkeypatch.setattr(os, "fsync", killed_before_the_data_reach_disk)
    with pytest.raises(KeyboardInterrupt):
        write_results(tmp_path, {"status": "completed", "test_top1": 0.5})
    assert json.loads((tmp_path / "results.json").read_text()) == {"status": "failed", "error": "first try"}
    assert os.listdir(tmp_path) == ["results.json"]


def test_results_json_is_the_last_file_a_run_writes(compose_config, cache_dir, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    written: list[str] = []
    rename = os.replace

    def recorded_rename(source, destination):  # every atomic write ends with this rename
        written.append(os.path.relpath(destination, run_dir))
        rename(source, destination)

    def fake_fit_and_test(cfg, resolved, record, state, *args):
        (run_dir / "checkpoints").mkdir()
        (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"weights")
        (run_dir / "test_predictions.csv").write_text("video,label,predicted\n")
        state["module"] = SimpleNamespace(
            skipped_videos={"A/v_1.avi"}, left_out={"val": {"B/v_2.avi"}, "test": {"C/v_3.avi"}}
        )
        record.update(status="completed", best_val_acc=0.5)

    monkeypatch.setattr(training_run, "_fit_and_test", fake_fit_and_test)
    monkeypatch.setattr(os, "replace", recorded_rename)
    assert training_run.run_in_this_process(compose_config(tiny_overrides(cache_dir, run_dir))) == 0.5

    assert written[-1] == "results.json"
    assert {"skipped_videos.txt", "skipped_val_videos.txt", "skipped_test_videos.txt"} <= set(written)
    results = run_dir / "results.json"
    assert all(path.stat().st_mtime_ns <= results.stat().st_mtime_ns for path in run_dir.rglob("*") if path.is_file())
    record = json.loads(results.read_text())
    assert (record["skipped_videos"], record["skipped_val_videos"], record["skipped_test_videos"]) == (1, 1, 1)
