"""GPU placement on a simulated machine (a fake device count and environment; no GPU needed): which GPU each
job gets, machine-wide slots shared by sweeps and single runs, SLURM allocations, waiting, memory between jobs."""

from __future__ import annotations

import contextlib
import copy
import functools
import gc
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from ar_experiments.sweeps import gpu_placement
from ar_experiments.sweeps.gpu_placement import claim_gpus, describe_device, placement_wanted, release_gpu_memory
from ar_experiments.sweeps.gpu_slots import SLOTS_DIR_ENV, Gpu, SlotPool, slots_folder, visible_gpus
from ar_experiments.sweeps.job_status import RUNNING, WAITING
from ar_experiments.training.run_record import peak_gpu_mb
from tests.conftest import REPO

UUID_A, UUID_B = "GPU-8f3a2c1e-0000-0000-0000-00000000000a", "GPU-8f3a2c1e-0000-0000-0000-00000000000b"


def labels(gpus: list[Gpu]) -> list[str]:
    return [gpu.label for gpu in gpus]


def test_visible_gpus_follow_cuda_visible_devices_then_the_slurm_allocation():
    assert labels(visible_gpus({}, count=4)) == ["0", "1", "2", "3"]  # unset: every GPU of the machine
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "5,2"}, count=2) == [Gpu(0, "5"), Gpu(1, "2")]  # CUDA's order
    assert labels(visible_gpus({"CUDA_VISIBLE_DEVICES": "1,-1,3"}, count=4)) == ["1"]  # CUDA stops at an invalid entry
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}, count=0) == []
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": f"{UUID_A},3"}, count=2) == [Gpu(0, UUID_A), Gpu(1, "3")]
    # an allocation whose CUDA_VISIBLE_DEVICES was not set: CUDA sees the whole node, the job only its GPUs
    assert visible_gpus({"SLURM_JOB_GPUS": "4,5"}, count=8) == [Gpu(4, "4"), Gpu(5, "5")]
    assert visible_gpus({"SLURM_STEP_GPUS": "6", "SLURM_JOB_GPUS": "4,5,6"}, count=8) == [Gpu(6, "6")]


def test_slots_are_per_user_on_local_disk_and_per_allocation_inside_slurm(tmp_path, monkeypatch):
    assert slots_folder({}) == Path(f"/tmp/ar-experiments-{os.getuid()}/gpu-slots")
    assert slots_folder({SLOTS_DIR_ENV: str(tmp_path)}) == tmp_path
    assert slots_folder({SLOTS_DIR_ENV: str(tmp_path), "SLURM_JOB_ID": "42"}) == tmp_path / "slurm-42"
    monkeypatch.setattr(os, "getuid", lambda: os.stat(tmp_path).st_uid + 1)  # the folder is another user's
    with pytest.raises(PermissionError, match=f"{tmp_path} belongs to another user; set {SLOTS_DIR_ENV}="):
        SlotPool(tmp_path, visible_gpus({}, count=1))


def test_one_job_per_gpu_then_wait_then_a_released_gpu_is_reused(tmp_path):
    pool = SlotPool(tmp_path, visible_gpus({}, count=4))
    claims = [pool.try_claim() for _ in range(4)]
    assert [claim.indices for claim in claims] == [[0], [1], [2], [3]]
    assert pool.try_claim() is None, "a fifth job waits: every GPU is taken"
    claims[2].release()  # job 2 ended (or failed)
    fifth = pool.try_claim()
    assert fifth.indices == [2]


def test_k_jobs_per_gpu_spread_over_the_gpus_before_they_pack(tmp_path):
    pool = SlotPool(tmp_path, visible_gpus({}, count=2), jobs_per_gpu=3)
    claims = [pool.try_claim() for _ in range(6)]
    assert [claim.indices[0] for claim in claims] == [0, 1, 0, 1, 0, 1]
    assert pool.try_claim() is None
    claims[3].release()
    assert pool.try_claim().indices == [1]


def test_a_process_prefers_the_gpu_it_used_before(tmp_path):
    pool = SlotPool(tmp_path, visible_gpus({}, count=3), jobs_per_gpu=2)
    claims = [pool.try_claim(prefer=2) for _ in range(3)]  # held: a claim dropped is a claim released
    assert [claim.indices for claim in claims] == [[2], [2], [0]], "its GPU full: the emptiest other one"


def test_ddp_jobs_take_whole_gpus_all_at_once_or_none(tmp_path):
    pool = SlotPool(tmp_path, visible_gpus({}, count=4), jobs_per_gpu=2)
    small = pool.try_claim()
    assert small.indices == [0]
    ddp = pool.try_claim(2, whole=True)
    assert ddp.indices == [1, 2] and len(ddp.locks) == 4, "every slot of two GPUs"
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
                from ar_experiments.sweeps.gpu_slots import SlotPool, visible_gpus
                claim = SlotPool({str(tmp_path)!r}, visible_gpus({{}}, count=1)).try_claim()
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
        pool = SlotPool(tmp_path, visible_gpus({}, count=1))
        assert pool.try_claim() is None
    finally:
        holder.kill()
        holder.wait()
    assert pool.try_claim().indices == [0]


def test_waiting_job_says_so_and_gets_the_next_free_slot(tmp_path):
    pool = SlotPool(tmp_path, visible_gpus({}, count=1))
    first = pool.try_claim()
    told = []

    def free_it():
        told.append("waiting")
        first.release()

    assert pool.claim(on_wait=free_it, poll_s=0.01).indices == [0]
    assert told == ["waiting"]


# --- the job's side: which jobs are placed, and on what --------------------------------------------


@pytest.fixture
def machine(monkeypatch, tmp_path):
    """machine(count, ...) -> a simulated machine whose CUDA sees `count` GPUs, running a joblib multirun of
    `n_jobs` at once (or a single run: multirun=False); its GPU slots in tmp_path/slots."""
    import torch

    def setup(count: int, n_jobs: int = 2, launcher: str = "hydra_plugins.hydra_joblib_launcher.JoblibLauncher",
              multirun: bool = True, **env: str):  # fmt: skip
        hydra = {"n_jobs": n_jobs, "_target_": launcher} if multirun else {"_target_": "basic"}
        monkeypatch.setattr(gpu_placement, "hydra_launcher", lambda: hydra)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
        monkeypatch.setattr(gpu_placement, "_PREVIOUS_GPU", None)
        for name in ("LOCAL_RANK", "SUBMITIT_EXECUTOR", "CUDA_VISIBLE_DEVICES", *SLURM):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv(SLOTS_DIR_ENV, str(tmp_path / "slots"))
        # a job that would wait for ever fails the test instead (and a waiting one looks again soon)
        monkeypatch.setattr(SlotPool, "claim", functools.partialmethod(SlotPool.claim, timeout_s=5, poll_s=0.05))
        for name, value in env.items():
            monkeypatch.setenv(name, value)

    return setup


SLURM = ("SLURM_JOB_ID", "SLURM_JOB_GPUS", "SLURM_STEP_GPUS", "SLURM_STEP_NUM_TASKS")


COMPOSED: dict[tuple[str, ...], DictConfig] = {}
"""One composition per set of overrides (a second each on a busy machine): the jobs are its copies."""


def gpu_job(compose_config, tmp_path, name: str, *extra: str) -> DictConfig:
    if extra not in COMPOSED:
        COMPOSED[extra] = compose_config(["trainer=gpu", *extra])
    job = copy.deepcopy(COMPOSED[extra])
    job.paths.output_dir = str(tmp_path / name)
    return job


def jobs(compose_config, tmp_path, count: int, *extra: str) -> list:
    return [gpu_job(compose_config, tmp_path, f"job{i}", *extra) for i in range(count)]


def test_eight_gpus_one_job_each_and_a_ninth_waits(machine, compose_config, tmp_path):
    machine(count=8, n_jobs=8)
    with contextlib.ExitStack() as stack:
        devices = [stack.enter_context(claim_gpus(job)) for job in jobs(compose_config, tmp_path, 8)]
        assert devices == [[index] for index in range(8)]
        with pytest.raises(TimeoutError):
            SlotPool(slots_folder(), visible_gpus(count=8)).claim(timeout_s=0.05, poll_s=0.01)


def test_jobs_per_gpu_3_spreads_then_packs_three_jobs_on_each_gpu(machine, compose_config, tmp_path):
    machine(count=2, n_jobs=6)
    with contextlib.ExitStack() as stack:
        devices = []
        for job in jobs(compose_config, tmp_path, 6, "jobs_per_gpu=3"):
            gpu_placement._PREVIOUS_GPU = None  # each job in a worker of its own, as joblib runs six at once
            devices.append(stack.enter_context(claim_gpus(job)))
        assert devices == [[0], [1], [0], [1], [0], [1]]
        assert SlotPool(slots_folder(), visible_gpus(count=2), jobs_per_gpu=3).try_claim() is None


def test_the_devices_are_returned_not_written_into_the_config(machine, compose_config, tmp_path):
    machine(count=2)
    job = gpu_job(compose_config, tmp_path, "job")
    with claim_gpus(job) as devices:
        assert devices == [0] and job.trainer.devices == 1, "the caller passes the devices on"


def test_jobs_get_their_own_gpu_among_those_cuda_visible_devices_allows(machine, compose_config, tmp_path):
    machine(count=2, CUDA_VISIBLE_DEVICES="3,6")  # the machine has more; this sweep may use two
    first, second, third = jobs(compose_config, tmp_path, 3)
    statuses = []
    record = lambda **fields: statuses.append(fields)  # noqa: E731
    with claim_gpus(first, status=record) as a, claim_gpus(second) as b:
        assert (a, b) == ([0], [1])  # cuda:0 of the job is GPU 3, cuda:1 is GPU 6
        assert statuses == [{"state": RUNNING, "device": "cuda:0"}]
    with claim_gpus(third) as c:  # both are free again; this process's last job ran on cuda:1
        assert c == [1]


def test_two_sweeps_at_once_share_the_machines_gpus(machine, compose_config, tmp_path):
    """Another sweep's job (another process of this user) holds GPU 0: this sweep's jobs get GPU 1, then wait."""
    machine(count=2)
    other_sweep = subprocess.Popen(
        [sys.executable, "-c", HOLD_FIRST_FREE_GPU, "2"], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True, env=os.environ,
    )  # fmt: skip
    try:
        assert other_sweep.stdout.readline().strip() == "[0]"
        first, second = jobs(compose_config, tmp_path, 2)
        with claim_gpus(first) as devices:
            assert devices == [1]
            with pytest.raises(TimeoutError):
                SlotPool(slots_folder(), visible_gpus(count=2)).claim(timeout_s=0.05, poll_s=0.01)
    finally:
        other_sweep.kill()
        other_sweep.wait()


HOLD_FIRST_FREE_GPU = textwrap.dedent(
    """
    import sys
    from ar_experiments.sweeps.gpu_slots import SlotPool, slots_folder, visible_gpus
    claim = SlotPool(slots_folder(), visible_gpus(count=int(sys.argv[1]))).try_claim()
    print(claim.indices, flush=True)
    sys.stdin.read()
    """
)


def test_a_single_gpu_run_takes_a_slot_too(machine, compose_config, tmp_path):
    machine(count=2, multirun=False)
    sweep_job, single_run = jobs(compose_config, tmp_path, 2)
    with claim_gpus(sweep_job) as a, claim_gpus(single_run) as b:
        assert (a, b) == ([0], [1])


def test_the_same_gpu_named_by_uuid_or_index_elsewhere_is_one_gpu(machine, compose_config, tmp_path, monkeypatch):
    """Slots are named by what CUDA_VISIBLE_DEVICES says, so processes that see the GPUs differently share them."""
    machine(count=2, CUDA_VISIBLE_DEVICES=f"{UUID_A},{UUID_B}")
    first, second = jobs(compose_config, tmp_path, 2)
    with claim_gpus(first) as devices:
        assert devices == [0]
        import torch

        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", UUID_A)  # a run started with only the first GPU
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
        assert SlotPool(slots_folder(), visible_gpus(count=1)).try_claim() is None, "its GPU is taken"
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", f"{UUID_B},{UUID_A}")  # both, in the other order
        monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
        with claim_gpus(second) as other:
            assert other == [0], "cuda:0 of this process is UUID_B, the free one"


def test_ddp_jobs_take_2_of_4_gpus_each(machine, compose_config, tmp_path):
    machine(count=4)
    first, second, third = jobs(compose_config, tmp_path, 3, "trainer=ddp", "trainer.devices=2")
    with claim_gpus(first) as a, claim_gpus(second) as b:
        assert (a, b) == ([0, 1], [2, 3])
        with pytest.raises(TimeoutError):  # a third waits for two whole GPUs
            SlotPool(slots_folder(), visible_gpus(count=4)).claim(2, whole=True, timeout_s=0.05, poll_s=0.01)


def test_ddp_job_takes_the_gpus_it_asks_for(machine, compose_config, tmp_path):
    machine(count=4)
    everything = gpu_job(compose_config, tmp_path, "all", "trainer=ddp")  # devices: auto
    also_all = gpu_job(compose_config, tmp_path, "minus1", "trainer=ddp", "trainer.devices=-1")
    with claim_gpus(everything) as devices:
        assert devices == [0, 1, 2, 3]
    with claim_gpus(also_all) as devices:
        assert devices == [0, 1, 2, 3]


def test_a_joblib_sweep_inside_a_2_gpu_slurm_allocation_uses_both_gpus(machine, compose_config, tmp_path):
    """`salloc --gpus=2` (or sbatch): SLURM sets SLURM_JOB_ID and the allocation's GPUs; every job on cuda:0 before."""
    machine(count=2, SLURM_JOB_ID="42", SLURM_JOB_GPUS="4,5", CUDA_VISIBLE_DEVICES="0,1")
    first, second = jobs(compose_config, tmp_path, 2)
    with claim_gpus(first) as a, claim_gpus(second) as b:
        assert (a, b) == ([0], [1])
        assert sorted(path.name for path in (tmp_path / "slots" / "slurm-42").glob("gpu-*")) == [
            "gpu-0.slot0.lock", "gpu-1.slot0.lock"
        ], "the allocation's own slots: another allocation's GPUs on this node are numbered from 0 too"  # fmt: skip


def test_an_allocation_without_cuda_visible_devices_uses_its_slurm_gpus(machine, compose_config, tmp_path):
    machine(count=8, SLURM_JOB_ID="43", SLURM_JOB_GPUS="4,5")  # CUDA sees the whole node
    first, second = jobs(compose_config, tmp_path, 2)
    with claim_gpus(first) as a, claim_gpus(second) as b:
        assert (a, b) == ([4], [5])


def test_which_jobs_are_placed(machine, compose_config, tmp_path, monkeypatch):
    machine(count=2)
    assert placement_wanted(gpu_job(compose_config, tmp_path, "a")) is None
    assert placement_wanted(compose_config([])) == "not a GPU run"
    assert "names its GPUs" in placement_wanted(gpu_job(compose_config, tmp_path, "b", "trainer.devices=[1]"))
    assert placement_wanted(gpu_job(compose_config, tmp_path, "c", "sweep.gpu_placement=false"))
    assert placement_wanted(gpu_job(compose_config, tmp_path, "d"), {"SLURM_JOB_ID": "42"}) is None
    assert "srun" in placement_wanted(gpu_job(compose_config, tmp_path, "d"), {"SLURM_STEP_NUM_TASKS": "2"})
    assert "torchrun" in placement_wanted(gpu_job(compose_config, tmp_path, "d"), {"LOCAL_RANK": "1"})
    assert "submitit" in placement_wanted(gpu_job(compose_config, tmp_path, "d"), {"SUBMITIT_EXECUTOR": "slurm"})
    monkeypatch.setattr(gpu_placement, "hydra_launcher", lambda: {"_target_": "x.submitit.SlurmLauncher"})
    assert "submitit" in placement_wanted(gpu_job(compose_config, tmp_path, "e"))


def test_a_waiting_job_says_so_in_one_line_and_in_its_status(machine, compose_config, tmp_path, caplog):
    machine(count=1)
    other = SlotPool(slots_folder(), visible_gpus(count=1)).try_claim()  # another sweep's job holds the GPU
    statuses = []

    def status(**fields):
        statuses.append(fields)
        if fields["state"] == WAITING:
            other.release()  # ... and ends

    job = gpu_job(compose_config, tmp_path, "job")
    with caplog.at_level(logging.INFO, logger=gpu_placement.__name__), claim_gpus(job, status=status) as devices:
        assert devices == [0]
    waits = [record for record in caplog.records if "waits for a GPU" in record.getMessage()]
    assert len(waits) == 1 and waits[0].levelno == logging.WARNING
    assert waits[0].getMessage().startswith(f"{job.run_name} waits for a GPU: all 1 slot(s) of GPU(s) 0 are taken")
    assert f"held by pid {os.getpid()}" in waits[0].getMessage()
    assert statuses == [{"state": WAITING}, {"state": RUNNING, "device": "cuda:0"}]


def test_a_failed_job_frees_its_gpu_for_the_next(machine, compose_config, tmp_path):
    machine(count=2)
    failing, other, next_job = jobs(compose_config, tmp_path, 3)
    with claim_gpus(other) as devices:
        assert devices == [0]
        with pytest.raises(RuntimeError, match="out of memory"), claim_gpus(failing) as devices:
            assert devices == [1]
            raise RuntimeError("CUDA out of memory")
        with claim_gpus(next_job) as devices:
            assert devices == [1]


def test_a_job_already_completed_is_not_placed(machine, compose_config, tmp_path):
    machine(count=1)
    done = gpu_job(compose_config, tmp_path, "done")
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "results.json").write_text('{"status": "completed"}')
    with claim_gpus(done) as devices:
        assert devices is None  # train() skips it without touching a GPU


@pytest.fixture
def simulated_cuda(monkeypatch):
    """CUDA started in this process (simulated): what the caching allocator is asked, in order."""
    import torch

    calls = []
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append("empty_cache"))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda *a: calls.append("reset_peak_memory_stats"))
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda *a: 1536 * 2**20)
    return calls


class FinishedJob:
    """A trainer and its module referencing each other: only the garbage collector frees their GPU tensors."""

    def __init__(self, calls: list[str]):
        self.cycle, self.calls = self, calls

    def __del__(self):
        self.calls.append("tensors freed")


def test_a_reused_worker_hands_the_last_jobs_gpu_memory_back(simulated_cuda):
    FinishedJob(simulated_cuda)
    gc.disable()  # as if the collector had not come by yet
    try:
        release_gpu_memory()
    finally:
        gc.enable()
    assert simulated_cuda == ["tensors freed", "empty_cache", "reset_peak_memory_stats"]


def test_results_json_peak_gpu_memory_is_the_runs_and_null_on_cpu(simulated_cuda, monkeypatch):
    assert peak_gpu_mb() == 1536.0
    import torch

    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    assert peak_gpu_mb() is None


def test_results_json_device_text():
    assert describe_device([3], []) == "cuda:3", "a failed run's GPU where CUDA could not name it"
    assert describe_device([3], ["NVIDIA H200"]) == "cuda:3 (NVIDIA H200)"
    assert describe_device([0, 1], ["NVIDIA H200"] * 2, world_size=2) == "cuda:0,1 (2 x NVIDIA H200)"
    assert describe_device([0, 1], ["A"] * 2, world_size=4) == "cuda:0,1 (2 x A on 4 processes)"


def test_packing_bench_runs_the_grid_one_at_a_time_then_k_per_gpu(capsys):
    from ar_experiments.bench.grid_packing import main

    assert main(["--dry-run", "--gpus", "2", "--jobs-per-gpu", "3", "--overrides", "trainer.max_epochs=5"]) == 0
    one, packed = capsys.readouterr().out.splitlines()
    assert "experiment=grid trainer=gpu" in one and "hydra/launcher=basic" in one and one.endswith("max_epochs=5")
    assert "hydra/launcher=joblib hydra.launcher.n_jobs=6 jobs_per_gpu=3" in packed


def test_the_command_trains_on_the_placed_gpu_and_frees_the_jobs_memory_after(machine, monkeypatch, tmp_path):
    """python -m ar_experiments.train trainer=gpu, in-process on the simulated machine: train() sees the devices."""
    import ar_experiments.train as command

    machine(count=2, multirun=False)
    other = SlotPool(slots_folder(), visible_gpus(count=2)).try_claim()  # another run holds GPU 0
    seen, released = [], []
    monkeypatch.setattr(command, "train", lambda cfg: seen.append(list(cfg.trainer.devices)) or 0.5)
    monkeypatch.setattr(gpu_placement, "release_gpu_memory", lambda: released.append(seen[:]))
    argv = ["train", f"--config-path={REPO / 'conf'}", "trainer=gpu", f"hydra.run.dir={tmp_path / 'run'}"]
    monkeypatch.setattr(sys, "argv", argv)
    handlers, level = logging.root.handlers[:], logging.root.level
    try:
        command.main()
    finally:  # no Hydra run or logging left behind for the tests after this one
        HydraConfig.instance().cfg = None
        for handler in set(logging.root.handlers) - set(handlers):
            handler.close()
        logging.root.handlers[:], logging.root.level = handlers, level
        other.release()
    assert seen == [[1]] and released == [[[1]]], "trained on cuda:1, then the memory was released"
