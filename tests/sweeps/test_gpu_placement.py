"""GPU placement of a multirun's jobs, on a simulated list of GPUs (no GPU needed)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from ar_experiments.sweeps import gpu_placement
from ar_experiments.sweeps.gpu_placement import claim_gpus, describe_device, placement_wanted
from ar_experiments.sweeps.gpu_slots import SlotPool, visible_gpus
from tests.conftest import REPO


def test_visible_gpus_follow_cuda_visible_devices():
    assert visible_gpus({}, count=4) == ["0", "1", "2", "3"]  # unset: every GPU of the machine
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "5,2"}, count=2) == ["5", "2"]  # in CUDA's order
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "1,-1,3"}) == ["1"]  # CUDA stops at an invalid entry
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}, count=0) == []
    uuid = "GPU-8f3a2c1e-0000-0000-0000-000000000000"
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": f"{uuid},3"}) == [uuid, "3"]


def test_one_job_per_gpu_then_wait_then_a_released_gpu_is_reused(tmp_path):
    pool = SlotPool(tmp_path, ["0", "1", "2", "3"])
    claims = [pool.try_claim() for _ in range(4)]
    assert [claim.indices for claim in claims] == [[0], [1], [2], [3]]
    assert pool.try_claim() is None, "a fifth job waits: every GPU is taken"
    claims[2].release()  # job 2 ended (or failed)
    fifth = pool.try_claim()
    assert fifth.indices == [2]


def test_k_jobs_per_gpu_spread_over_the_gpus_before_they_pack(tmp_path):
    pool = SlotPool(tmp_path, ["0", "1"], jobs_per_gpu=3)
    claims = [pool.try_claim() for _ in range(6)]
    assert [claim.indices[0] for claim in claims] == [0, 1, 0, 1, 0, 1]
    assert pool.try_claim() is None
    claims[3].release()
    assert pool.try_claim().indices == [1]


def test_a_process_prefers_the_gpu_it_used_before(tmp_path):
    pool = SlotPool(tmp_path, ["0", "1", "2"], jobs_per_gpu=2)
    claims = [pool.try_claim(prefer=2) for _ in range(3)]  # held: a claim dropped is a claim released
    assert [claim.indices for claim in claims] == [[2], [2], [0]], "its GPU full: the emptiest other one"


def test_ddp_jobs_take_whole_gpus_all_at_once_or_none(tmp_path):
    pool = SlotPool(tmp_path, ["0", "1", "2", "3"], jobs_per_gpu=2)
    small = pool.try_claim()
    assert small.indices == [0]
    ddp = pool.try_claim(2, whole=True)
    assert ddp.indices == [1, 2] and len(ddp.handles) == 4, "every slot of two GPUs"
    assert pool.try_claim(2, whole=True) is None, "only GPU 3 is whole: nothing is taken"
    assert pool.try_claim().indices == [3], "so GPU 3 stays free for a one-GPU job"
    with pytest.raises(ValueError, match="asks for 5 GPU"):
        pool.try_claim(5, whole=True)


def test_a_dead_process_frees_its_gpu(tmp_path):
    """A job killed outright (out of memory, SIGKILL) never releases its slot itself: the kernel does."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys
                from ar_experiments.sweeps.gpu_slots import SlotPool
                claim = SlotPool({str(tmp_path)!r}, ["0"]).try_claim()
                print(claim.indices, flush=True)
                sys.stdin.read()
                """
            ),
        ],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "[0]"
        pool = SlotPool(tmp_path, ["0"])
        assert pool.try_claim() is None
    finally:
        holder.kill()
        holder.wait()
    assert pool.try_claim().indices == [0]


def test_waiting_job_says_so_and_gets_the_next_free_slot(tmp_path):
    pool = SlotPool(tmp_path, ["0"])
    first = pool.try_claim()
    told = []

    def free_it():
        told.append("waiting")
        first.release()

    assert pool.claim(on_wait=free_it, poll_s=0.01).indices == [0]
    assert told == ["waiting"]


# --- the job's side: which jobs are placed, and on what --------------------------------------------


@pytest.fixture
def in_a_multirun(monkeypatch, tmp_path):
    """A multirun of `n_jobs` at once on a machine whose CUDA sees `count` GPUs (simulated)."""
    import torch

    def setup(count: int, n_jobs: int = 2, launcher: str = "hydra_plugins.hydra_joblib_launcher.JoblibLauncher"):
        monkeypatch.setattr(gpu_placement, "_hydra_launcher", lambda: (True, {"n_jobs": n_jobs, "_target_": launcher}))
        monkeypatch.setattr(gpu_placement, "sweep_folder", lambda: tmp_path / "sweep")
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
        monkeypatch.setattr(gpu_placement, "_PREVIOUS_GPU", None)
        for name in ("LOCAL_RANK", "SLURM_JOB_ID", "SUBMITIT_EXECUTOR", "CUDA_VISIBLE_DEVICES"):
            monkeypatch.delenv(name, raising=False)

    return setup


def gpu_job(compose_config, tmp_path, name: str, *extra: str):
    return compose_config(["trainer=gpu", f"paths.output_dir={tmp_path / name}", *extra])


def test_jobs_get_their_own_gpu_among_those_cuda_visible_devices_allows(
    in_a_multirun, compose_config, tmp_path, monkeypatch
):
    in_a_multirun(count=2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,6")  # the machine has more; this sweep may use two
    first, second, third = (gpu_job(compose_config, tmp_path, f"job{i}") for i in range(3))
    statuses = []
    record = lambda **fields: statuses.append(fields)  # noqa: E731
    with claim_gpus(first, status=record) as a, claim_gpus(second) as b:
        assert (list(first.trainer.devices), a.labels) == ([0], ["3"])  # cuda:0 of the job is GPU 3
        assert (list(second.trainer.devices), b.labels) == ([1], ["6"])
        assert statuses == [{"state": "running", "device": "cuda:0"}]
        with pytest.raises(TimeoutError):  # a third job would wait: both GPUs are taken
            SlotPool(tmp_path / "sweep" / gpu_placement.SLOTS_FOLDER, ["3", "6"]).claim(timeout_s=0.05, poll_s=0.01)
    with claim_gpus(third):  # both are free again; this process's last job ran on cuda:1
        assert list(third.trainer.devices) == [1]


def test_a_failed_job_frees_its_gpu_for_the_next(in_a_multirun, compose_config, tmp_path):
    in_a_multirun(count=2)
    failing, other, next_job = (gpu_job(compose_config, tmp_path, f"job{i}") for i in range(3))
    with claim_gpus(other):
        assert list(other.trainer.devices) == [0]
        with pytest.raises(RuntimeError, match="out of memory"), claim_gpus(failing):
            assert list(failing.trainer.devices) == [1]
            raise RuntimeError("CUDA out of memory")
        with claim_gpus(next_job):
            assert list(next_job.trainer.devices) == [1]


def test_jobs_per_gpu_packs_jobs_on_one_gpu(in_a_multirun, compose_config, tmp_path):
    in_a_multirun(count=1, n_jobs=3)
    jobs = [gpu_job(compose_config, tmp_path, f"job{i}", "jobs_per_gpu=3") for i in range(3)]
    with claim_gpus(jobs[0]), claim_gpus(jobs[1]), claim_gpus(jobs[2]):
        assert [list(job.trainer.devices) for job in jobs] == [[0], [0], [0]]


def test_ddp_job_takes_the_gpus_it_asks_for(in_a_multirun, compose_config, tmp_path):
    in_a_multirun(count=4)
    ddp = gpu_job(compose_config, tmp_path, "ddp", "trainer=ddp", "trainer.devices=2")
    everything = gpu_job(compose_config, tmp_path, "all", "trainer=ddp")  # devices: auto
    also_all = gpu_job(compose_config, tmp_path, "minus1", "trainer=ddp", "trainer.devices=-1")
    with claim_gpus(ddp):
        assert list(ddp.trainer.devices) == [0, 1]
    with claim_gpus(everything):
        assert list(everything.trainer.devices) == [0, 1, 2, 3]
    with claim_gpus(also_all):
        assert list(also_all.trainer.devices) == [0, 1, 2, 3]


def test_which_jobs_are_placed(in_a_multirun, compose_config, tmp_path, monkeypatch):
    in_a_multirun(count=2)
    assert placement_wanted(gpu_job(compose_config, tmp_path, "a")) is None
    assert placement_wanted(compose_config([])) == "not a GPU run"
    assert "names its GPUs" in placement_wanted(gpu_job(compose_config, tmp_path, "b", "trainer.devices=[1]"))
    assert placement_wanted(gpu_job(compose_config, tmp_path, "c", "sweep.gpu_placement=false"))
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    assert "SLURM" in placement_wanted(gpu_job(compose_config, tmp_path, "d"))
    monkeypatch.delenv("SLURM_JOB_ID")
    monkeypatch.setattr(gpu_placement, "_hydra_launcher", lambda: (True, {"_target_": "x.submitit.SlurmLauncher"}))
    assert "submitit" in placement_wanted(gpu_job(compose_config, tmp_path, "e"))
    monkeypatch.setattr(gpu_placement, "_hydra_launcher", lambda: (False, None))
    assert placement_wanted(gpu_job(compose_config, tmp_path, "f")) == "a single run"


def test_a_job_already_completed_is_not_placed(in_a_multirun, compose_config, tmp_path):
    in_a_multirun(count=1)
    done = gpu_job(compose_config, tmp_path, "done")
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "results.json").write_text('{"status": "completed"}')
    with claim_gpus(done) as claim:
        assert claim is None and done.trainer.devices == 1  # train() skips it without touching a GPU


def test_results_json_device_text():
    assert describe_device("cpu") == "cpu"
    assert describe_device("cuda", [3], ["NVIDIA H200"]) == "cuda:3 (NVIDIA H200)"
    assert describe_device("cuda", [0, 1], ["NVIDIA H200"] * 2, world_size=2) == "cuda:0,1 (2 x NVIDIA H200)"
    assert describe_device("cuda", [0, 1], ["A"] * 2, world_size=4) == "cuda:0,1 (2 x A on 4 processes)"


def test_packing_bench_runs_the_grid_one_at_a_time_then_k_per_gpu(capsys):
    from ar_experiments.bench.grid_packing import main

    assert main(["--dry-run", "--gpus", "2", "--jobs-per-gpu", "3", "--overrides", "trainer.max_epochs=5"]) == 0
    one, packed = capsys.readouterr().out.splitlines()
    assert "experiment=grid trainer=gpu" in one and "hydra/launcher=basic" in one and one.endswith("max_epochs=5")
    assert "hydra/launcher=joblib hydra.launcher.n_jobs=6 jobs_per_gpu=3" in packed
