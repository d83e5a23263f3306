"""A sweep's time left, checked against the real remaining time of a simulated sweep; waiting for a GPU and
jobs that stopped making progress."""

from __future__ import annotations

import heapq
import io
import math

import pytest

from ar_experiments.report.progress import progress_text
from ar_experiments.safety.atomic import atomic_write_json
from ar_experiments.sweeps import time_left
from ar_experiments.sweeps.job_status import JOBS_FOLDER, RUNNING, WAITING, read_json, update_job_status
from ar_experiments.sweeps.progress import SweepMonitor
from ar_experiments.sweeps.time_left import estimate_time_left, job_kind

# `make sweep`'s grid in its order (conf/experiment/grid.yaml: slowest first), two jobs at a time
GRID = [(model, frames) for model in ("slowfast", "x3d_m") for frames in (16, 8, 6) for _split in (1, 2, 3)]
# wall seconds on a machine 2.5x slower than the demo sweep's, where X3D-M is slower still (x 1.2): the
# relative costs the estimate starts from are not this machine's
SECONDS = {
    ("slowfast", 16): 555.0, ("slowfast", 8): 372.5, ("slowfast", 6): 365.0,
    ("x3d_m", 16): 363.0, ("x3d_m", 8): 240.0, ("x3d_m", 6): 204.0,
}  # fmt: skip
EPOCHS = 5


def simulated_grid(workers: int = 2) -> list[tuple[int, tuple[str, int], float, float]]:
    """(job number, kind, start, end) of every job: each worker takes the next job when it is free."""
    free = [(0.0, worker) for worker in range(workers)]
    jobs = []
    for num, kind in enumerate(GRID):
        start, worker = heapq.heappop(free)
        jobs.append((num, kind, start, start + SECONDS[kind]))
        heapq.heappush(free, (start + SECONDS[kind], worker))
    return jobs


def job_status(num: int, kind: tuple[str, int], start: float, end: float, now: float) -> dict:
    """The job's status file at `now`, as its callbacks write it: 10% startup, 5 equal epochs, 10% test."""
    status = {"num": num, "job": f"{num}-{kind[0]}-{kind[1]}f", "model": kind[0], "frames": kind[1]}
    status.update(started_at=start, running_since=start, updated_at=now, pid=100 + num, host="node1")
    if now >= end:
        return {**status, "state": "completed", "ended_at": end, "seconds": end - start, "updated_at": end}
    status["state"] = RUNNING
    seconds = end - start
    trained_from, epoch_seconds = start + 0.1 * seconds, 0.16 * seconds
    if now >= trained_from:
        epoch = min(math.floor((now - trained_from) / epoch_seconds) + 1, EPOCHS)
        status.update(train_started_at=trained_from, train_first_epoch=1, epoch=epoch, max_epochs=EPOCHS)
        status.update(epoch_started_at=trained_from + (epoch - 1) * epoch_seconds)
        status["stage"] = "test" if now >= start + 0.9 * seconds else "train"
    return status


def time_left_at(folder, now: float) -> float:
    """What the sweep's monitor says at `now`, having watched the sweep from its start."""
    monitor = SweepMonitor(folder, out=io.StringIO(), clock=lambda: now)
    monitor.set_total(len(GRID), [job_kind([f"model={m}", f"frames={f}", "split=1"], ("x3d_m", 8)) for m, f in GRID])
    monitor.most_at_once = 2  # both workers ran from the start
    for num, kind, start, end in simulated_grid():
        if start <= now:
            atomic_write_json(folder / JOBS_FOLDER / f"{num}.json", job_status(num, kind, start, end, now))
    return monitor.poll()["time_left_s"]


@pytest.mark.parametrize("when", ["start", "middle", "end"])
def test_a_simulated_sweeps_time_left_is_its_real_remaining_time(tmp_path, when):
    jobs = simulated_grid()
    finish = max(end for *_, end in jobs)
    now = {
        "start": min(end for *_, end in jobs) + 1,  # the first line: one SlowFast 16-frame job done
        "middle": finish / 2,
        "end": sorted(end for *_, end in jobs)[-2] + 1,  # one job left
    }[when]
    real = finish - now
    assert time_left_at(tmp_path, now) == pytest.approx(real, rel=0.2), f"{real:.0f} s left in truth"


def test_time_left_is_never_below_the_longest_running_jobs_remainder():
    finished = [{"state": "completed", "seconds": 100.0, "model": "x3d_m", "frames": 6}]
    long_one = {"started_at": 0.0, "model": "x3d_m", "frames": 6}  # 10 s in: 90 s left of 100
    assert estimate_time_left(finished, [long_one], [], at_once=8, now=10.0) == pytest.approx(90.0)
    # a job that runs longer than its kind's mean, in its first epoch of 5: at least 4 more of them
    overdue = {"started_at": 0.0, "train_started_at": 10.0, "epoch": 1, "max_epochs": 5, "epoch_started_at": 10.0}
    assert estimate_time_left(finished, [overdue], [], at_once=8, now=160.0) == pytest.approx(4 * 150.0)


def test_a_job_that_waited_for_a_gpu_counts_its_time_from_when_it_started_running(tmp_path, monkeypatch):
    path = tmp_path / "0.json"
    clock = [1000.0]
    monkeypatch.setattr("ar_experiments.sweeps.job_status.time.time", lambda: clock[0])
    atomic_write_json(path, {"num": 0, "started_at": 1000.0, "running_since": 1000.0, "state": RUNNING})
    update_job_status(path, state=WAITING)
    clock[0] = 1300.0  # five minutes without a free GPU
    update_job_status(path, state=RUNNING, device="cuda:1")
    job = read_json(path)
    assert job["running_since"] == 1300.0
    finished = [{"state": "completed", "seconds": 400.0}]
    assert estimate_time_left(finished, [job], [], at_once=1, now=1400.0) == pytest.approx(300.0)


def test_a_job_without_progress_is_named_on_the_console_in_progress_json_and_report(tmp_path):
    out, now = io.StringIO(), [5000.0]
    monitor = SweepMonitor(tmp_path, total=3, out=out, clock=lambda: now[0], stall_after=600)
    common = {"started_at": 1000.0, "running_since": 1000.0, "state": RUNNING, "host": "node7"}
    hung = {"num": 0, "job": "0-hung", **common, "pid": 42, "epoch": 2, "max_epochs": 5, "updated_at": 4200.0}
    atomic_write_json(tmp_path / JOBS_FOLDER / "0.json", hung)
    atomic_write_json(tmp_path / JOBS_FOLDER / "1.json", {"num": 1, "job": "1-busy", **common, "updated_at": 4990.0})
    progress = monitor.poll()
    assert out.getvalue() == "0-hung has made no progress for 13 min (epoch 2/5, pid 42 on node7)\n"
    assert [job["stalled"] for job in progress["running_jobs"]] == [True, False]
    assert "running: 0-hung, epoch 2/5, 67 min; NO PROGRESS for 13 min" in progress_text(progress)
    monitor.poll()
    assert out.getvalue().count("no progress") == 1, "named once when it stalls"
    end = {"num": 2, "job": "2-done", "state": "completed", "seconds": 3000.0, "ended_at": 4999.0, "run_name": "r2"}
    atomic_write_json(tmp_path / JOBS_FOLDER / "2.json", {**common, **end})
    monitor.poll()
    assert out.getvalue().splitlines()[-1].endswith("; no progress: 0-hung")


def test_a_jobs_kind_comes_from_its_overrides_or_the_sweeps_defaults():
    assert job_kind(["model=slowfast", "frames=16", "split=2"], ("x3d_m", 8)) == ("slowfast", 16)
    assert job_kind(["split=2", "+trainer.x=1"], ("x3d_m", 8)) == ("x3d_m", 8)
    assert job_kind(["+model=slowfast", "+frames=6", "seed"], ("x3d_m", 8)) == ("slowfast", 6)
    assert job_kind(["frames=${oc.env:F}", "tag=a=b"], ("x3d_m", 8)) == ("x3d_m", 8)


def test_a_training_job_writes_its_pace_and_a_heartbeat_to_its_status_file(tmp_path, monkeypatch):
    import pytorch_lightning as pl
    from pytorch_lightning.demos.boring_classes import BoringModel

    from ar_experiments.training import callbacks

    path = tmp_path / "0.json"
    atomic_write_json(path, {"num": 0, "state": RUNNING, "started_at": 0.0})
    monkeypatch.setenv("AR_SWEEP_JOB_STATUS", str(path))
    writes = []
    monkeypatch.setattr(callbacks, "update_job_status", lambda *a, **fields: writes.append(fields))
    monkeypatch.setattr(callbacks, "HEARTBEAT_S", 0.0)  # every batch
    trainer = pl.Trainer(
        max_epochs=2, limit_train_batches=3, limit_val_batches=1, callbacks=[callbacks.EpochProgress()],
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(BoringModel())
    (started,) = [fields for fields in writes if "train_started_at" in fields]
    assert started["train_first_epoch"] == 1 and started["device"] == "cpu"
    epochs = [fields for fields in writes if "epoch_started_at" in fields]
    assert [fields["epoch"] for fields in epochs] == [1, 2] and epochs[0]["max_epochs"] == 2
    assert epochs[0]["epoch_started_at"] <= epochs[1]["epoch_started_at"]
    assert writes.count({}) >= 2 * (3 + 1), "a heartbeat after each training and validation batch"


def test_a_kinds_relative_cost_is_its_listed_point_or_linear_between_and_beyond_them():
    assert [time_left.relative_cost(("x3d_m", frames)) for frames in (6, 8, 16)] == [68.0, 80.0, 121.0]
    assert [time_left.relative_cost(("slowfast", frames)) for frames in (6, 8, 16)] == [146.0, 149.0, 222.0]
    assert time_left.relative_cost(("x3d_m", 12)) == 100.5  # halfway from 8 to 16
    assert time_left.relative_cost(("x3d_m", 32)) == 203.0  # the 8-16 segment continued
    assert time_left.relative_cost(("slowfast", 4)) == 143.0  # the 6-8 segment continued down
    assert time_left.relative_cost(("c3d", 8)) is None and time_left.relative_cost(None) is None


def test_a_two_point_cost_line_is_enough_and_few_frames_cost_at_least_half_the_cheapest(monkeypatch):
    monkeypatch.setattr(time_left, "RELATIVE_COST", {"a": {8: 100.0, 16: 300.0}, "b": {8: 100.0}})
    assert time_left.relative_cost(("a", 12)) == 200.0
    assert time_left.relative_cost(("a", 6)) == 50.0  # the line says 50: just the floor
    assert time_left.relative_cost(("a", 2)) == 50.0  # the line says -50
    assert time_left.relative_cost(("b", 8)) is None  # one point gives no line


def test_expected_times_come_from_the_kind_then_the_sweeps_scale_then_the_mean():
    finished = [
        {"state": "completed", "seconds": 100.0, "model": "x3d_m", "frames": 8},
        {"state": "completed", "seconds": 140.0, "model": "x3d_m", "frames": 8},
        {"state": "completed", "seconds": 50.0, "model": "c3d", "frames": 6},  # no relative cost
        {"state": "completed", "seconds": 20.0},  # no kind
        {"state": "failed", "seconds": 500.0, "model": "slowfast", "frames": 16},  # counts while none completed
        {"state": "skipped", "seconds": 1.0, "model": "x3d_m", "frames": 8},  # took no time
        {"state": "completed", "model": "x3d_m", "frames": 6},  # no time recorded
    ]
    times = time_left.JobTimes(finished)
    assert times.known and times.mean == pytest.approx(310.0 / 4)
    assert times.by_kind == {("x3d_m", 8): 120.0, ("c3d", 6): 50.0}
    assert times.scale == 1.5  # 120 s where the relative cost is 80
    assert times.expected(("x3d_m", 8)) == 120.0
    assert times.expected(("slowfast", 16)) == 1.5 * 222.0
    assert times.expected(("c3d", 8)) == times.expected(None) == pytest.approx(310.0 / 4)
    failed_only = time_left.JobTimes([finished[4], {"state": "failed", "seconds": 300.0}])
    assert failed_only.known and failed_only.mean == 400.0 and failed_only.scale is None
    unknown = time_left.JobTimes([finished[5], finished[6]])
    assert not unknown.known and unknown.mean == 0.0 and unknown.expected(("x3d_m", 8)) == 0.0


def test_a_running_jobs_own_pace_counts_its_epochs_since_its_training_started():
    job = {"train_started_at": 100.0, "epoch": 3, "max_epochs": 5, "epoch_started_at": 300.0}
    # 2 epochs in 200 s: 50 s left of epoch 3, then 2 more epochs of 100 s
    assert time_left.pace_left(job, now=350.0) == 250.0
    assert time_left.pace_left({**job, "train_first_epoch": 2}, now=350.0) == 150.0 + 2 * 200.0  # resumed at 2
    assert time_left.pace_left({**job, "epoch_started_at": 500.0}, now=800.0) == 2 * 200.0  # overdue epoch: 0
    first = {"train_started_at": 100.0, "epoch": 1, "max_epochs": 5}  # its first epoch has taken 60 s so far
    assert time_left.pace_left(first, now=160.0) == 4 * 60.0
    for idle in ({**job, "stage": "test"}, {**job, "max_epochs": None}, {"epoch": 3, "max_epochs": 5}):
        assert time_left.pace_left(idle, now=350.0) == 0.0


def test_running_and_quiet_seconds_count_from_the_latest_known_moment():
    job = {"started_at": 10.0}
    assert time_left.running_seconds(job, 100.0) == time_left.no_progress_seconds(job, 100.0) == 90.0
    job["running_since"] = 40.0
    assert time_left.running_seconds(job, 100.0) == time_left.no_progress_seconds(job, 100.0) == 60.0
    job["updated_at"] = 95.0
    assert time_left.running_seconds(job, 100.0) == 60.0 and time_left.no_progress_seconds(job, 100.0) == 5.0
    assert time_left.running_seconds({}, 100.0) == time_left.no_progress_seconds({}, 100.0) == 0.0


def test_the_work_left_is_shared_by_the_jobs_at_once():
    finished = [{"state": "completed", "seconds": 100.0}]
    running = [{"started_at": 0.0}]  # 30 s in: 70 s left
    assert estimate_time_left(finished, running, [None, None], at_once=2, now=30.0) == 135.0
    assert estimate_time_left(finished, running, [None, None], at_once=0, now=30.0) == 270.0
    assert estimate_time_left(finished, [], [], at_once=1, now=30.0) == 0.0
    assert estimate_time_left([{"state": "completed"}], running, [None], at_once=1, now=30.0) is None
    too_long = {"started_at": 0.0, "model": "x3d_m", "frames": 8}
    assert time_left.job_left(too_long, time_left.JobTimes(finished), now=150.0) == 0.0


def test_a_status_file_gives_a_kind_only_with_both_model_and_frames():
    assert time_left.status_kind({"model": "slowfast", "frames": "16"}) == ("slowfast", 16)
    assert time_left.status_kind({"model": "slowfast"}) is None
    assert time_left.status_kind({"frames": 16}) is None
