"""How far a sweep has got: the console lines, progress.json, and a sweep resumed into its folder."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import pytorch_lightning as pl
from omegaconf import OmegaConf

from ar_experiments.report.progress import progress_text
from ar_experiments.safety.atomic import atomic_write_json
from ar_experiments.sweeps.job_status import JOBS_FOLDER, now_iso
from ar_experiments.sweeps.progress import SweepMonitor, duration_text, finished_line, stalled_line, watch_sweep
from ar_experiments.sweeps.time_left import estimate_time_left
from tests.conftest import REPO
from tests.sweeps.test_sweeps import shrunk

# --- the pieces -----------------------------------------------------------------------------------


def test_console_line_of_a_finished_job():
    job = {"run_name": "slowfast-8f-split1", "state": "completed", "top1": 0.9712, "seconds": 55.2}
    line = finished_line(job, done=7, total=18, failed=2, left=6 * 60)
    assert line == "[7/18] slowfast-8f-split1 completed 0.97 top-1 in 55 s; 2 failed; about 6 min left"
    failed = {
        "run_name": "x3d_m-16f-split2",
        "state": "failed",
        "seconds": 3,
        "error": "RuntimeError: CUDA out of\nmemory",
    }
    assert (
        finished_line(failed, 8, 18, 3, None)
        == "[8/18] x3d_m-16f-split2 failed in 3 s: RuntimeError: CUDA out of memory; 3 failed"
    )
    skipped = {"run_name": "x3d_m-8f-split1", "state": "skipped", "seconds": 0.1}
    assert finished_line(skipped, 18, 18, 0, 10.0) == "[18/18] x3d_m-8f-split1 already completed (skipped)"


def test_time_left_without_kinds_is_the_mean_job_times_what_is_left_over_the_jobs_at_once():
    finished = [
        {"state": "completed", "seconds": 50},
        {"state": "completed", "seconds": 70},
        {"state": "failed", "seconds": 2},  # a quick failure does not shorten the mean while runs completed
        {"state": "skipped", "seconds": 0.1},  # nor does a job skipped as already done
    ]
    # 4 not started x 60 s, plus a running job 20 s into its 60: 280 s of work for 2 at a time
    running = [{"started_at": 0.0}]
    assert estimate_time_left(finished, running, [None] * 4, at_once=2, now=20.0) == pytest.approx(140)
    assert estimate_time_left([{"state": "skipped", "seconds": 0.1}], [], [None] * 3, at_once=1, now=0.0) is None


def write_job(sweep: Path, num: int, **status) -> None:
    atomic_write_json(
        sweep / JOBS_FOLDER / f"{num}.json", {"num": num, "job": f"{num}-job", "run_name": f"run{num}", **status}
    )


def test_monitor_reads_the_job_files_into_lines_and_progress_json(tmp_path):
    clock = [1000.0]
    out = io.StringIO()
    monitor = SweepMonitor(tmp_path, total=5, out=out, clock=lambda: clock[0])
    monitor.start()
    monitor._stop.set()  # driven by hand below
    write_job(tmp_path, 0, state="running", started_at=1000.0, device="cuda:0", epoch=3, max_epochs=20, stage="train")
    write_job(tmp_path, 1, state="running", started_at=1000.0, device="cuda:1")
    write_job(tmp_path, 2, state="waiting for a GPU", started_at=1001.0)
    clock[0] = 1010.0
    progress = monitor.poll()
    assert out.getvalue() == ""
    assert (progress["total"], progress["running"], progress["pending"], progress["done"]) == (5, 3, 2, 0)
    assert progress["running_jobs"][0] | {"seconds": None} == {
        "job": "0-job", "run_name": "run0", "state": "running", "device": "cuda:0", "epoch": 3, "max_epochs": 20,
        "stage": "train", "seconds": None, "host": None, "pid": None, "no_progress_s": 10.0, "stalled": False,
    }  # fmt: skip
    assert json.loads((tmp_path / "progress.json").read_text())["running"] == 3

    clock[0] = 1060.0
    write_job(tmp_path, 1, state="completed", started_at=1000.0, ended_at=1060.0, seconds=60.0, top1=0.5)
    write_job(tmp_path, 2, state="failed", started_at=1001.0, ended_at=1059.0, seconds=1.0, error="ValueError: bad")
    progress = monitor.poll()
    # 2 not started (one of them becomes running) x 60 s + job 0 nearly done: 120 s for 2 jobs at once
    assert out.getvalue().splitlines() == [
        "[1/5] run2 failed in 1 s: ValueError: bad; 1 failed; about 60 s left",
        "[2/5] run1 completed 0.50 top-1 in 60 s; 1 failed; about 60 s left",
    ]
    assert (progress["completed"], progress["failed"], progress["running"], progress["jobs_at_once"]) == (1, 1, 1, 2)
    assert progress["time_left_s"] == pytest.approx(60.0)
    monitor.poll()
    assert len(out.getvalue().splitlines()) == 2, "each job is announced once"
    final = monitor.stop()
    assert final["status"] == "stopped" and final["time_left_s"] is None  # jobs still unfinished
    text = progress_text(final)
    assert "1 completed, 1 failed), 1 running, 2 not started" in text
    assert "running: 0-job on cuda:0, epoch 3/20" in text and "failed: 2-job: ValueError: bad" in text


def test_report_progress_prints_progress_json(tmp_path, capsys):
    from ar_experiments.report.cli import main

    progress = {
        "sweep": str(tmp_path),
        "status": "running",
        "total": 3,
        "done": 1,
        "completed": 1,
        "failed": 0,
        "running": 2,
        "pending": 0,
        "time_left_s": 60,
        "updated_at": "2026-12-05T14:00:00+00:00",
        "running_jobs": [],
    }
    atomic_write_json(tmp_path / "progress.json", progress)
    assert main(["--progress", str(tmp_path)]) == 0
    expected = "running, 1 of 3 jobs done (1 completed, 0 failed), 2 running, 0 not started; about 60 s left"
    assert f"{expected} (as of 2026-12-05T14:00:00+00:00)" in capsys.readouterr().out
    assert not (tmp_path / "report.md").exists()
    with pytest.raises(SystemExit):  # a sweep not started yet: a one-line error
        main(["--progress", str(tmp_path / "missing")])


# --- a real 6-job sweep, two at a time, then resumed into its folder --------------------------------


class FailWhileMarked(pl.Callback):
    """Fails the run at its start while `marker` lists `tag` (a fault that goes away, as a full disk does)."""

    def __init__(self, marker: str, tag: str):
        self.marker, self.tag = Path(marker), tag

    def on_train_start(self, trainer, pl_module):
        if self.marker.is_file() and self.tag in self.marker.read_text().split():
            raise RuntimeError(f"injected failure of {self.tag}")


LINE = re.compile(r"^\[(\d)/6\] (x3d_xs-4f-split[123]) (.*)$", re.MULTILINE)


def run_watching_progress(command: list[str], sweep: Path) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """Run the sweep; read its progress.json as a second terminal would, every 0.1 s while it runs."""
    env = {**os.environ, "WANDB_MODE": "disabled", "AR_SWEEP_PROGRESS_INTERVAL": "0.2"}
    process = subprocess.Popen(
        [sys.executable, "-m", "ar_experiments.train", *command],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    snapshots = []
    import threading

    outputs = {}
    reader = threading.Thread(target=lambda: outputs.update(zip(("out", "err"), process.communicate(timeout=600))))
    reader.start()
    while reader.is_alive():
        try:
            snapshots.append(json.loads((sweep / "progress.json").read_text()))
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    reader.join()
    return subprocess.CompletedProcess(process.args, process.returncode, outputs["out"], outputs["err"]), snapshots


@pytest.mark.slow
def test_six_job_sweep_two_at_a_time_reports_progress_then_resumes(tiny_dataset, cache_dir, tmp_path):
    sweep, marker = tmp_path / "sweep", tmp_path / "broken"
    marker.write_text("split2-seed1 split3-seed0\n")
    command = [
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "split=1,2,3",
        "seed=0,1",
        f"hydra.sweep.dir={sweep}",
        f"+callbacks.fail._target_={__name__}.FailWhileMarked",
        f"+callbacks.fail.marker={marker}",
        "+callbacks.fail.tag=split${split}-seed${seed}",
        *shrunk(cache_dir),
    ]
    first, snapshots = run_watching_progress(command, sweep)
    assert first.returncode != 0 and "2 of 6 jobs failed" in first.stderr, first.stderr[-3000:]
    lines = LINE.findall(first.stdout)
    assert [int(done) for done, _, _ in lines] == [1, 2, 3, 4, 5, 6], first.stdout[-3000:]
    completed = [what for _, _, what in lines if what.startswith("completed")]
    failed = [what for _, _, what in lines if what.startswith("failed")]
    assert len(completed) == 4 and len(failed) == 2
    assert all(re.match(r"completed [01]\.\d\d top-1 in \d+ s", what) for what in completed)
    assert all("RuntimeError: injected failure of split" in what for what in failed)
    assert "about" in lines[0][2] and "left" in lines[0][2] and "left" not in lines[-1][2]
    assert "2 failed" in lines[-1][2]
    assert "Epoch 0:" not in first.stdout + first.stderr, "no per-job progress bars with two jobs at once"
    assert "train," not in first.stdout, "the jobs' INFO lines go to their train.log, not between the sweep's lines"
    assert "train," in (sweep / "0-x3d_xs-4f-split1" / "train.log").read_text()

    progress = json.loads((sweep / "progress.json").read_text())
    assert {key: progress[key] for key in ("status", "total", "completed", "failed", "running", "pending")} == {
        "status": "finished", "total": 6, "completed": 4, "failed": 2, "running": 0, "pending": 0,
    }  # fmt: skip
    assert {job["device"] for job in progress["finished_jobs"]} == {"cpu"}
    # while it ran: at most two jobs at once, each seen at its epoch
    running = [job for snapshot in snapshots for job in snapshot["running_jobs"]]
    assert max(snapshot["running"] for snapshot in snapshots) <= 2
    assert any(job["epoch"] == 1 and job["max_epochs"] == 1 for job in running), snapshots[-3:]
    records = [json.loads(path.read_text()) for path in sorted(sweep.glob("*/results.json"))]
    assert [record["device"] for record in records] == ["cpu"] * 6

    # the fault is gone: the same sweep again, into its folder, finishes it; with Hydra's basic launcher
    # (one job at a time, in the launching process) to save the workers' start here
    marker.write_text("")
    again, _ = run_watching_progress([arg for arg in command if "launcher" not in arg], sweep)
    assert again.returncode == 0, again.stderr[-3000:]
    lines = LINE.findall(again.stdout)
    assert [int(done) for done, _, _ in lines] == [1, 2, 3, 4, 5, 6]
    assert sum(what.startswith("already completed (skipped)") for _, _, what in lines) == 4, lines
    assert sum(what.startswith("completed") for _, _, what in lines) == 2, lines
    progress = json.loads((sweep / "progress.json").read_text())
    assert {key: progress[key] for key in ("status", "total", "completed", "skipped", "failed", "running")} == {
        "status": "finished", "total": 6, "completed": 6, "skipped": 4, "failed": 0, "running": 0,
    }  # fmt: skip


def test_durations_read_in_seconds_minutes_then_hours():
    assert [duration_text(s) for s in (0.4, 89.4, 90.0, 5369.0, 5400.0, 5580.0)] == [
        "0 s", "89 s", "2 min", "89 min", "1.5 h", "1.6 h",
    ]  # fmt: skip


def test_console_lines_with_what_is_unknown_left_out():
    bare = {"job": "3-x3d_m-8f-split1", "state": "completed"}  # no run name, top-1 or time
    assert finished_line(bare, 1, None, 0, 30.0) == "[1/?] 3-x3d_m-8f-split1 completed; about 30 s left"
    assert finished_line({**bare, "seconds": 5.0}, 1, 4, 0, 0.9) == "[1/4] 3-x3d_m-8f-split1 completed in 5 s"
    assert finished_line(bare, 1, 4, 0, 1.0) == "[1/4] 3-x3d_m-8f-split1 completed; about 1 s left"
    assert finished_line({**bare, "top1": 0.5}, 4, 4, 0, 30.0) == "[4/4] 3-x3d_m-8f-split1 completed 0.50 top-1"
    failed = {"job": "4-x", "state": "failed", "error": "x" * 200}
    assert finished_line(failed, 2, 4, 1, None, ["0-a", "1-b"]) == (
        f"[2/4] 4-x failed: {'x' * 160}; 1 failed; no progress: 0-a, 1-b"
    )
    assert finished_line({"job": "4-x", "state": "failed"}, 2, 4, 1, None) == "[2/4] 4-x failed; 1 failed"


def test_a_stalled_line_names_the_epoch_only_when_known():
    job = {"job": "0-a", "pid": 7, "host": "n1"}
    assert stalled_line(job, 120.0) == "0-a has made no progress for 2 min (pid 7 on n1)"
    assert stalled_line({**job, "epoch": 2}, 60.0) == "0-a has made no progress for 60 s (epoch 2/?, pid 7 on n1)"


def test_progress_json_by_exact_value_written_when_something_changes_or_every_30_s(tmp_path):
    clock, out = [1000.0], io.StringIO()
    write_job(tmp_path, 9, state="completed")  # an earlier run into this folder: forgotten at the start
    monitor = SweepMonitor(tmp_path, total=4, out=out, clock=lambda: clock[0])
    monitor.set_total(6, [("x3d_m", 8)] * 6)
    monitor.start()
    monitor._stop.set()  # driven by hand below
    kind = {"model": "x3d_m", "frames": 8}
    write_job(tmp_path, 0, state="completed", ended_at=1100.0, seconds=100.0, top1=0.5, device="cuda:0", **kind)
    write_job(tmp_path, 1, state="skipped", ended_at=1050.0, seconds=0.2)
    write_job(tmp_path, 2, state="failed", ended_at=1200.0, seconds=5.0, error="E")
    running = {"started_at": 1900.0, "running_since": 1950.0, "updated_at": 1990.0, "host": "h", "pid": 3}
    write_job(tmp_path, 3, state="running", device="cuda:1", epoch=1, max_epochs=2, stage="train", **running, **kind)
    write_job(tmp_path, 4, state="waiting for a GPU", started_at=1990.0, **kind)
    clock[0] = 2000.25  # a tenth of a second is kept, not more
    progress = monitor.poll()
    # 1 job not started and 1 waiting, 100 s each (their kind's mean); job 3 has 49.75 s of its 100 left; 1 at once
    assert out.getvalue().splitlines() == [
        "[1/6] run1 already completed (skipped); about 4 min left",
        "[2/6] run0 completed 0.50 top-1 in 2 min; about 4 min left",
        "[3/6] run2 failed in 5 s: E; 1 failed; about 4 min left",
    ]
    assert progress == {
        "sweep": str(tmp_path.resolve()), "status": "running", "total": 6, "done": 3, "completed": 2, "skipped": 1,
        "failed": 1, "running": 2, "pending": 1, "jobs_at_once": 1, "time_left_s": 249.8,
        "started_at": now_iso(1000.0), "updated_at": now_iso(2000.0), "elapsed_s": 1000.2,
        "running_jobs": [
            {"job": "3-job", "run_name": "run3", "state": "running", "device": "cuda:1", "epoch": 1, "max_epochs": 2,
             "stage": "train", "seconds": 100.2, "host": "h", "pid": 3, "no_progress_s": 10.2, "stalled": False},
            {"job": "4-job", "run_name": "run4", "state": "waiting for a GPU", "device": None, "epoch": None,
             "max_epochs": None, "stage": None, "seconds": 10.2, "host": None, "pid": None, "no_progress_s": 10.2,
             "stalled": False},
        ],
        "finished_jobs": [
            {"job": "1-job", "run_name": "run1", "state": "skipped", "seconds": 0.2},
            {"job": "0-job", "run_name": "run0", "state": "completed", "top1": 0.5, "seconds": 100.0,
             "device": "cuda:0"},
            {"job": "2-job", "run_name": "run2", "state": "failed", "seconds": 5.0, "error": "E"},
        ],
    }  # fmt: skip
    assert json.loads((tmp_path / "progress.json").read_text()) == progress
    clock[0] = 2029.0  # only the clock moved: not rewritten
    monitor.poll()
    assert json.loads((tmp_path / "progress.json").read_text())["updated_at"] == now_iso(2000.0)
    clock[0] = 2030.25  # 30 s since the last write
    monitor.poll()
    assert json.loads((tmp_path / "progress.json").read_text())["updated_at"] == now_iso(2030.25)
    clock[0] = 2040.0  # a running job's epoch moved: rewritten at once
    write_job(tmp_path, 3, state="running", device="cuda:1", epoch=2, max_epochs=2, stage="train", **running, **kind)
    monitor.poll()
    assert json.loads((tmp_path / "progress.json").read_text())["running_jobs"][0]["epoch"] == 2
    for num in (3, 4, 5):
        write_job(tmp_path, num, state="completed", ended_at=2040.0 + num, seconds=10.0)
    final = monitor.stop()
    assert (final["status"], final["time_left_s"], final["done"], final["pending"]) == ("finished", None, 6, 0)
    assert out.getvalue().splitlines()[-1] == "[6/6] run5 completed in 10 s; 1 failed"
    assert json.loads((tmp_path / "progress.json").read_text()) == final


def test_the_monitor_watches_on_its_own_and_survives_a_closed_console_and_an_unwritable_progress_file(tmp_path, caplog):
    out = io.StringIO()
    monitor = SweepMonitor(tmp_path, total=1, interval=0.01, out=out).start()
    assert (monitor._thread.name, monitor._thread.daemon) == ("sweep-progress", True)  # never holds the exit
    write_job(tmp_path, 0, state="completed", seconds=1.0)
    deadline = time.monotonic() + 20
    while not out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert out.getvalue() == "[1/1] run0 completed in 1 s\n", "the watching thread printed the line"
    monitor._stop.set()
    monitor._thread.join()  # the last look below is stop()'s own
    out.close()
    (tmp_path / "progress.json").unlink()
    (tmp_path / "progress.json").mkdir()
    write_job(tmp_path, 1, state="failed")
    with caplog.at_level(logging.WARNING, logger="ar_experiments.sweeps.progress"):
        assert monitor.stop("interrupted")["status"] == "interrupted"
    (message,) = caplog.messages
    assert message.startswith(f"could not write {tmp_path / 'progress.json'}: [Errno 21] Is a directory")


def test_watch_sweep_looks_every_interval_of_the_environment_and_records_an_interrupted_sweep(tmp_path, monkeypatch):
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    monkeypatch.setenv("AR_SWEEP_PROGRESS_INTERVAL", "0.25")
    with pytest.raises(KeyboardInterrupt), watch_sweep(config, total=2) as monitor:
        assert (monitor.interval, monitor.total, monitor.sweep_dir) == (0.25, 2, tmp_path.resolve())
        raise KeyboardInterrupt
    assert json.loads((tmp_path / "progress.json").read_text())["status"] == "interrupted"
    monkeypatch.delenv("AR_SWEEP_PROGRESS_INTERVAL")
    with watch_sweep(config, total=0) as monitor:
        assert monitor.interval == 2.0
    assert json.loads((tmp_path / "progress.json").read_text())["status"] == "finished"
    with watch_sweep(config, interval=0.5) as monitor:
        assert monitor.interval == 0.5 and monitor.total is None


def test_a_failing_look_at_the_folder_warns_and_the_watching_goes_on(tmp_path, monkeypatch, caplog):
    monitor = SweepMonitor(tmp_path, interval=0.01)
    looks = []

    def poll():
        looks.append(len(looks))
        if len(looks) == 1:
            raise RuntimeError("disk gone")
        if len(looks) == 3:
            monitor._stop.set()

    monkeypatch.setattr(monitor, "poll", poll)
    with caplog.at_level(logging.WARNING, logger="ar_experiments.sweeps.progress"):
        monitor._run()
    assert looks == [0, 1, 2] and caplog.messages == ["sweep progress: RuntimeError: disk gone"]


class CountingFlushes(io.StringIO):
    def __init__(self):
        super().__init__()
        self.flushes = 0

    def flush(self):
        self.flushes += 1


def test_each_line_is_flushed_and_a_failing_last_look_only_warns(tmp_path, monkeypatch, caplog):
    out = CountingFlushes()
    monitor = SweepMonitor(tmp_path, total=1, out=out)
    assert monitor.interval == 2.0
    write_job(tmp_path, 0, state="completed")
    monitor.poll()
    assert out.getvalue() == "[1/1] run0 completed\n" and out.flushes == 1, "a console line shows at once"

    def broken(**kwargs):
        raise RuntimeError("disk gone")

    monkeypatch.setattr(monitor, "poll", broken)
    with caplog.at_level(logging.WARNING, logger="ar_experiments.sweeps.progress"):
        assert monitor.stop() is None
    assert caplog.messages == ["sweep progress: RuntimeError: disk gone"]


def test_a_sweep_with_a_job_still_running_or_not_started_ends_stopped(tmp_path):
    now = 5000.0
    monitor = SweepMonitor(tmp_path, out=io.StringIO(), clock=lambda: now, stall_after=600)
    write_job(tmp_path, 0, state="running", updated_at=4400.0)  # no start time; quiet for exactly 600 s
    progress = monitor.poll()
    assert progress["total"] == 1, "without a total, the jobs seen"
    assert (progress["running_jobs"][0]["seconds"], progress["running_jobs"][0]["stalled"]) == (0.0, True)
    assert monitor.stop()["status"] == "stopped"  # nothing pending, one running
    waiting = SweepMonitor(tmp_path / "other", total=1, out=io.StringIO(), clock=lambda: now)
    assert waiting.stop()["status"] == "stopped"  # nothing running, one never started
    now = 5001.0
    waiting.stop()  # the last look writes progress.json even when nothing but the clock moved
    assert json.loads((tmp_path / "other" / "progress.json").read_text())["updated_at"] == now_iso(5001.0)
