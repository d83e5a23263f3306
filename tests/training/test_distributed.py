"""Multi-device runs: who starts the ranks (train() itself, SLURM tasks, or nobody), and real 2-rank CPU runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ar_experiments.config.checks import ConfigError
from ar_experiments.training.distributed import ranks_to_start
from tests.conftest import REPO, run_train, tiny_overrides

FAST = ["model=x3d_xs", "frames=4", "logger=csv", "data.batch_size=2", "test.temporal_views=1"]


@pytest.fixture
def no_launcher(monkeypatch):
    """An environment where nobody (torchrun, SLURM) started this process."""
    launchers = ("LOCAL_RANK", "TORCHELASTIC_RUN_ID", "SLURM_NTASKS", "SLURM_NTASKS_PER_NODE", "SLURM_NNODES")
    for name in (*launchers, "SLURM_JOB_NAME"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    "overrides, ranks",
    [
        (["trainer.accelerator=cpu", "trainer.devices=2"], 2),  # strategy auto: Lightning would pick ddp
        (["trainer=ddp_cpu"], 2),
        (["trainer=ddp_cpu", "trainer.strategy=ddp_find_unused_parameters_true"], 2),
        (["trainer=ddp_cpu", "trainer.strategy=fsdp"], 2),
        (["trainer=ddp_cpu", "trainer.devices=1"], 0),
        ([], 0),
    ],
)
def test_train_starts_the_ranks_of_every_multi_device_strategy(compose_config, no_launcher, overrides, ranks):
    assert ranks_to_start(compose_config(overrides).trainer) == ranks


@pytest.mark.parametrize("strategy", ["ddp_spawn", "ddp_fork", "ddp_notebook_find_unused_parameters_false"])
def test_strategies_that_start_ranks_their_own_way_are_refused_naming_the_one_that_works(
    compose_config, no_launcher, strategy
):
    with pytest.raises(ConfigError) as refused:
        ranks_to_start(compose_config(["trainer=ddp_cpu", f"trainer.strategy={strategy}"]).trainer)
    assert str(refused.value).count("\n") == 0 and "use trainer.strategy=ddp" in str(refused.value)


def test_ranks_started_by_torchrun_or_srun_start_no_more(compose_config, no_launcher):
    cfg = compose_config(["trainer=ddp_cpu"])
    no_launcher.setenv("LOCAL_RANK", "0")
    assert ranks_to_start(cfg.trainer) == 0
    no_launcher.delenv("LOCAL_RANK")
    no_launcher.setenv("SLURM_NTASKS", "2")
    no_launcher.setenv("SLURM_NTASKS_PER_NODE", "2")
    assert ranks_to_start(cfg.trainer) == 0


def test_one_slurm_task_leaves_the_ranks_to_train(compose_config, no_launcher):
    """sbatch, salloc or a submitit job of one task: train() starts the ranks on the job's devices."""
    no_launcher.setenv("SLURM_NTASKS", "1")
    no_launcher.setenv("SLURM_JOB_NAME", "job")
    assert ranks_to_start(compose_config(["trainer=ddp_cpu"]).trainer) == 2


def test_srun_task_counts_lightning_cannot_use_are_refused_up_front(compose_config, no_launcher):
    cfg = compose_config(["trainer=ddp_cpu"])
    no_launcher.setenv("SLURM_NTASKS", "2")  # srun -n 2: no count per node
    with pytest.raises(ConfigError, match="use srun --ntasks-per-node=2"):
        ranks_to_start(cfg.trainer)
    no_launcher.setenv("SLURM_NTASKS", "4")
    no_launcher.setenv("SLURM_NTASKS_PER_NODE", "4")
    with pytest.raises(ConfigError, match="set trainer.devices=4"):
        ranks_to_start(cfg.trainer)


def test_several_nodes_are_run_by_slurm_tasks_on_as_many_nodes_or_refused_up_front(compose_config, no_launcher):
    """Ranks that train() would start cover one machine: a run on 2 nodes without SLURM tasks (or torchrun)
    would wait for the other node's ranks for 30 minutes."""
    two_nodes = compose_config(["trainer=ddp_cpu", "trainer.num_nodes=2", "trainer.devices=1"]).trainer
    with pytest.raises(ConfigError, match=r"start the ranks of every node with srun --nodes=2 --ntasks-per-node="):
        ranks_to_start(two_nodes)
    for name, value in {"SLURM_NTASKS": "2", "SLURM_NTASKS_PER_NODE": "1", "SLURM_JOB_NAME": "job"}.items():
        no_launcher.setenv(name, value)
    no_launcher.setenv("SLURM_NNODES", "2")  # srun --nodes=2 --ntasks-per-node=1
    assert ranks_to_start(two_nodes) == 0
    one_node = compose_config(["trainer=ddp_cpu", "trainer.devices=1"]).trainer
    with pytest.raises(ConfigError, match="SLURM runs the job's tasks on 2 nodes but trainer.num_nodes=1; set trai"):
        ranks_to_start(one_node)


@pytest.mark.slow
def test_a_multi_device_run_inside_a_multirun_trains_on_two_ranks_without_stride_warnings(
    tiny_dataset, cache_dir, tmp_path
):
    """The default strategy (auto) on 2 CPU devices inside -m, with channels-last-3d activations."""
    sweep = tmp_path / "sweep"
    args = ["-m", *tiny_overrides(cache_dir), *FAST, "trainer.limit_train_batches=1", "model.channels_last=true"]
    result = run_train([*args, "trainer.accelerator=cpu", "trainer.devices=2", f"hydra.sweep.dir={sweep}"])
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((sweep / "0-x3d_xs-4f-split1" / "results.json").read_text())
    assert record["status"] == "completed" and record["world_size"] == 2
    assert "Grad strides do not match bucket view strides" not in result.stderr


def test_fewer_validation_videos_than_ranks_is_refused_naming_the_fix(tiny_dataset, cache_dir, compose_config):
    from types import SimpleNamespace

    from hydra.utils import instantiate

    datamodule = instantiate(compose_config(tiny_overrides(cache_dir)).data)
    datamodule.setup()
    ranks = len(datamodule.val_set) + 1
    datamodule.trainer = SimpleNamespace(global_rank=ranks - 1, world_size=ranks)
    with pytest.raises(ValueError, match=f"{ranks - 1} validation videos cannot be shared by {ranks} DDP ranks"):
        datamodule.val_dataloader()
    with pytest.raises(ValueError, match="test videos"):
        datamodule.trainer = SimpleNamespace(global_rank=0, world_size=len(datamodule.test_set) + 1)
        datamodule.test_dataloader()


def test_resuming_mid_epoch_under_another_world_size_stops_naming_both_sizes():
    from ar_experiments.data.training_batches import TrainingBatchSampler

    saved = TrainingBatchSampler(64, 4, rank=0, world_size=4, seed=0)
    saved.batch_done(batches_in_epoch=len(saved))
    resumed = TrainingBatchSampler(64, 4, rank=0, world_size=2, seed=0)
    with pytest.raises(ValueError, match="with 4 DDP ranks and this run has 2; resume with .* = 4"):
        resumed.load_state_dict(saved.state_dict())
    same = TrainingBatchSampler(64, 4, rank=0, world_size=4, seed=0)
    same.load_state_dict(saved.state_dict())
    assert list(same) == list(saved), "the same world size continues with the same batches"
    saved.set_epoch(1)  # at an epoch's start the next epoch is cut for whatever world size resumes it
    resumed.load_state_dict(saved.state_dict())
    assert resumed.state_dict()["epoch"] == 1


@pytest.mark.parametrize("gpus, tasks", [(0, 1), (1, 1), (4, 4)])
def test_the_slurm_launcher_runs_one_task_per_gpu_and_one_on_a_cpu_partition(gpus, tasks):
    from hydra import compose, initialize_config_dir

    from tests.conftest import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            "train",
            overrides=["hydra/launcher=slurm", f"hydra.launcher.gpus_per_node={gpus}"],
            return_hydra_config=True,
        )
    assert cfg.hydra.launcher.tasks_per_node == tasks


def _ranks_of(launcher: int) -> list[int]:
    """The DDP ranks torch spawned for `launcher` (its children running multiprocessing's spawn_main)."""
    found = []
    for task in Path(f"/proc/{launcher}/task").iterdir():
        for child in (task / "children").read_text().split():
            if "spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes().decode(errors="replace"):
                found.append(int(child))
    return found


def _alive(pid: int) -> bool:
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="ranks die with their launcher through Linux's prctl")
def test_ranks_die_with_their_launcher_when_it_is_killed(tiny_dataset, cache_dir, tmp_path):
    """SIGKILL releases the launcher's run lock and GPU slots at once; its ranks must not go on writing."""
    args = [*tiny_overrides(cache_dir), *FAST, "trainer=ddp_cpu", "trainer.max_epochs=50", f"hydra.run.dir={tmp_path}"]
    launcher = subprocess.Popen(
        [sys.executable, "-m", "ar_experiments.train", *args],
        cwd=REPO,
        env={**os.environ, "WANDB_MODE": "disabled"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while len(ranks := _ranks_of(launcher.pid)) < 2 or not (tmp_path / "csv").exists():
            assert launcher.poll() is None and time.monotonic() < deadline, "the ranks did not start training"
            time.sleep(0.5)
        launcher.kill()
        launcher.wait()
        deadline = time.monotonic() + 20
        while any(_alive(pid) for pid in ranks) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(pid) for pid in ranks), "a DDP rank outlived its killed launcher"
        # torch's own parent-death signal (SIGINT) would let them finish the batch, save and write the record
        assert not (tmp_path / "results.json").exists(), "a rank wrote the run's record after its launcher died"
    finally:
        launcher.kill()


@pytest.mark.parametrize("name", ["x3d_xs", "slowfast"])
def test_channels_last_gradients_have_their_parameters_strides(name):
    """What DDP compares after each backward pass: a mismatch warns "Grad strides do not match bucket view
    strides" and costs a copy of the gradient every step."""
    import torch

    from ar_experiments.models.builders import build_model

    net = build_model(name, num_classes=3, frames=8, crop_size=64, channels_last=True)
    net(torch.randn(1, 3, 8, 64, 64)).sum().backward()
    mismatched = [n for n, p in net.named_parameters() if p.grad is not None and p.grad.stride() != p.stride()]
    assert not mismatched


def test_a_cluster_without_accounting_gets_one_sacct_warning_not_one_per_poll(tmp_path, caplog):
    import logging.config

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from tests.conftest import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("train", overrides=["hydra/launcher=slurm"], return_hydra_config=True)
    logging.config.dictConfig(OmegaConf.to_container(cfg.hydra.hydra_logging))  # as Hydra does at the start
    submitit = logging.getLogger("submitit")
    submitit.addHandler(caplog.handler)
    try:
        for call in range(1, 6):
            submitit.warning(f"Call #{call} - Bypassing sacct error Command 'sacct' failed, status may be inaccurate.")
        submitit.warning("something else")
    finally:
        submitit.removeHandler(caplog.handler)
        submitit.filters.clear()
    lines = [record.getMessage() for record in caplog.records if record.name == "submitit"]
    assert len(lines) == 2 and "no job accounting" in lines[0] and lines[1] == "something else"


def test_the_sweep_folder_lock_callback_pickles_while_held(tmp_path, no_launcher):
    """joblib and submitit pickle the launcher with Hydra's callbacks; the held lock stays here."""
    import pickle

    from omegaconf import OmegaConf

    from ar_experiments.training.run_lock import FolderLockCallback

    callback = FolderLockCallback()
    callback.on_multirun_start(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    try:
        assert callback.lock is not None
        assert not hasattr(pickle.loads(pickle.dumps(callback)), "lock")
    finally:
        callback.on_multirun_end(None)
