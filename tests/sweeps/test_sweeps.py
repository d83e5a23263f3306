"""Optuna searches, parallel and cluster launchers, CPU DDP, and sweeps that survive failed jobs."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tests.conftest import SMALLEST_RUN, compose, run_train, tiny_overrides


def shrunk(cache_dir: Path, *extra: str) -> list[str]:
    """tiny_overrides with one training batch, then `extra` (which replaces keys it repeats)."""
    replaced = {arg.split("=", 1)[0] for arg in extra}
    base = [*tiny_overrides(cache_dir), "trainer.limit_train_batches=1", *SMALLEST_RUN]
    return [arg for arg in base if arg.split("=", 1)[0] not in replaced] + list(extra)


def results(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


# --- training batches under DDP -----------------------------------------------------------------


@pytest.mark.parametrize("size,batch_size,world", [(45, 8, 2), (9, 4, 2), (17, 4, 4), (100, 8, 3), (5, 8, 2)])
def test_ddp_training_batches_visit_every_video_once_with_equal_batch_counts(size, batch_size, world):
    from ar_experiments.data.training_batches import TrainingBatchSampler

    for epoch in (0, 1):
        ranks = [TrainingBatchSampler(size, batch_size, rank, world, seed=0) for rank in range(world)]
        for sampler in ranks:
            sampler.set_epoch(epoch)
        batches = [list(sampler) for sampler in ranks]
        assert {len(rank_batches) for rank_batches in batches} == {len(ranks[0])}, "every rank runs as many batches"
        visited = [index for rank_batches in batches for batch in rank_batches for index, _ in batch]
        assert sorted(visited) == list(range(size)), "each video exactly once per epoch"
        sizes = [len(batch) for rank_batches in batches for batch in rank_batches]
        assert max(sizes) <= batch_size and max(sizes) - min(sizes) <= 1 and min(sizes) > 0
        assert {e for rank_batches in batches for batch in rank_batches for _, e in batch} == {epoch}


def test_ddp_training_order_changes_with_the_epoch():
    from ar_experiments.data.training_batches import TrainingBatchSampler

    sampler = TrainingBatchSampler(40, 4, 0, 2, seed=0)
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first


def test_ddp_training_set_smaller_than_the_ranks_names_the_fix():
    from ar_experiments.data.training_batches import TrainingBatchSampler

    with pytest.raises(ValueError, match="data.batch_size"):
        TrainingBatchSampler(3, 1, 0, 2, seed=0)


# --- who starts the DDP processes --------------------------------------------------------------


def test_train_starts_ddp_ranks_only_for_script_launched_ddp(compose_config, monkeypatch):
    from ar_experiments.training.distributed import ranks_to_start

    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.delenv("SLURM_NTASKS", raising=False)
    assert ranks_to_start(compose_config(["trainer=ddp_cpu"]).trainer) == 2
    assert ranks_to_start(compose_config([]).trainer) == 0
    assert ranks_to_start(compose_config(["trainer=ddp_cpu", "trainer.devices=1"]).trainer) == 0
    # a rank started by torchrun, SLURM or train() itself must not start more
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert ranks_to_start(compose_config(["trainer=ddp_cpu"]).trainer) == 0


# --- failures -----------------------------------------------------------------------------------


def _trainer_stub(any_rank_diverged=None):
    """A trainer whose ranks' decision is this rank's own, or `any_rank_diverged` when given."""
    decide = (
        (lambda decision, all: decision) if any_rank_diverged is None else (lambda decision, all: any_rank_diverged)
    )
    return SimpleNamespace(
        strategy=SimpleNamespace(reduce_boolean_decision=decide),
        current_epoch=2,
        global_step=7,
        optimizers=[SimpleNamespace(param_groups=[{"lr": 0.5}])],
    )


def test_nonfinite_training_loss_fails_the_run():
    from ar_experiments.training.callbacks import NonFiniteLossError, StopOnNonFiniteLoss

    callback = StopOnNonFiniteLoss()
    callback.on_train_batch_end(_trainer_stub(), None, {"loss": torch.tensor(1.5)}, None, 0)
    with pytest.raises(NonFiniteLossError, match="nan at step 7.*last finite loss was 1.5.*optimizer.lr"):
        callback.on_train_batch_end(_trainer_stub(), None, {"loss": torch.tensor(math.nan)}, None, 1)


def test_a_rank_with_a_finite_loss_stops_with_the_others():
    from ar_experiments.training.callbacks import NonFiniteLossError, StopOnNonFiniteLoss

    with pytest.raises(NonFiniteLossError, match="another rank"):
        StopOnNonFiniteLoss().on_train_batch_end(_trainer_stub(True), None, {"loss": torch.tensor(1.5)}, None, 0)


def _job_return(number: int, error: Exception | None):
    from hydra.core.utils import JobReturn, JobStatus
    from omegaconf import OmegaConf

    job = JobReturn(
        hydra_cfg=OmegaConf.create({"hydra": {"job": {"num": number}, "runtime": {"output_dir": f"sweep/{number}"}}})
    )
    job.status = JobStatus.FAILED if error else JobStatus.COMPLETED
    job.return_value = error if error else 0.5
    return job


class FakeLauncher:
    def __init__(self, errors):
        self.errors = errors

    def launch(self, job_overrides, initial_job_idx):
        return [
            _job_return(initial_job_idx + i, self.errors.get(initial_job_idx + i)) for i in range(len(job_overrides))
        ]


def test_failure_collector_lets_the_sweep_go_on_then_lists_every_failed_job():
    from ar_experiments.sweeps.failures import FailureCollector, SweepFailed

    collector = FailureCollector(FakeLauncher({0: ValueError("bad lr"), 2: RuntimeError("out of memory")}))
    completed = collector.launch([["a"], ["b"], ["c"]], initial_job_idx=0)
    assert [job.return_value for job in completed] == [0.5]
    with pytest.raises(SweepFailed) as failed:
        collector.raise_if_failed()
    message = str(failed.value)
    assert "2 of 3 jobs failed" in message
    assert (
        "job 0 (sweep/0): ValueError: bad lr" in message and "job 2 (sweep/2): RuntimeError: out of memory" in message
    )


def test_failure_collector_fail_fast_stops_at_the_first_failed_batch():
    from ar_experiments.sweeps.failures import FailureCollector, SweepFailed

    collector = FailureCollector(FakeLauncher({1: ValueError("bad lr")}), fail_fast=True)
    assert len(collector.launch([["a"]], initial_job_idx=0)) == 1
    with pytest.raises(SweepFailed, match="sweep.fail_fast=true stopped the sweep"):
        collector.launch([["b"]], initial_job_idx=1)


# --- Optuna search space ----------------------------------------------------------------------


def test_optuna_config_stores_the_study_in_its_sweep_folder():
    cfg = compose(["hparams_search=optuna"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper.direction == "maximize" and sweeper.study_name == "x3d_m-8f-split1"
    assert cfg.hydra.sweep.dir == "multirun/optuna/x3d_m-8f-split1"
    assert sweeper.storage == "sqlite:///multirun/optuna/x3d_m-8f-split1/optuna.db"
    assert sweeper.params.optimizer == "choice(adamw, sgd, asgd)"


def test_slurm_launcher_runs_one_task_per_gpu():
    cfg = compose(["hydra/launcher=slurm", "hydra.launcher.gpus_per_node=4"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.tasks_per_node == 4 and launcher.cpus_per_task == 8 and launcher.timeout_min == 720


def test_momentum_is_sampled_only_for_sgd_trials():
    import optuna
    from omegaconf import OmegaConf

    from ar_experiments.sweeps.optuna_study import suggest_conditional_params

    cfg = OmegaConf.create(
        {"conditional_params": {"optimizer": {"sgd": {"optimizer.momentum": "interval(0.8, 0.99)"}}}}
    )
    for optimizer in ("sgd", "adamw"):
        trial = optuna.create_study().ask()
        trial.suggest_categorical("optimizer", [optimizer])
        suggest_conditional_params(cfg, trial)
        if optimizer == "sgd":
            assert 0.8 <= trial.params["optimizer.momentum"] <= 0.99
        else:
            assert "optimizer.momentum" not in trial.params


def test_threads_per_job_splits_the_cores_among_parallel_jobs():
    from ar_experiments.sweeps.cpu_share import parallel_jobs

    assert parallel_jobs(2, cores=16) == 2
    assert parallel_jobs(-1, cores=16) == 16  # joblib: one job per core
    assert parallel_jobs(-2, cores=16) == 15


# --- real sweeps through the command line ------------------------------------------------------------


@pytest.mark.slow
def test_optuna_study_continues_when_the_same_command_runs_again(tiny_dataset, cache_dir, tmp_path):
    import optuna

    sweep = tmp_path / "search"
    command = ["-m", "hparams_search=optuna", f"hydra.sweep.dir={sweep}", *shrunk(cache_dir)]
    first = run_train([*command, "hydra.sweeper.n_trials=3"])
    assert first.returncode == 0, first.stderr[-3000:]
    again = run_train([*command, "hydra.sweeper.n_trials=5"])
    assert again.returncode == 0, again.stderr[-3000:]

    study = optuna.load_study(study_name="x3d_xs-4f-split1", storage=f"sqlite:///{sweep}/optuna.db")
    assert [trial.number for trial in study.trials] == [0, 1, 2, 3, 4]
    # a trial may diverge at a sampled lr and fail; none is left running or lost
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL)
    assert all(trial.state in finished for trial in study.trials)
    assert any(trial.state == optuna.trial.TrialState.COMPLETE for trial in study.trials)
    assert all(trial.params["optimizer"] in ("adamw", "sgd", "asgd") for trial in study.trials)
    for trial in study.trials:
        assert ("optimizer.momentum" in trial.params) == (trial.params["optimizer"] == "sgd")
        # job folders follow the trial numbers, so the second run added folders instead of overwriting
        job = Path(trial.user_attrs["job_dir"])
        assert job.name.startswith(f"{trial.number}-")
        record = results(job)
        if trial.state == optuna.trial.TrialState.COMPLETE:
            assert record["status"] == "completed" and record["best_val_acc"] == pytest.approx(trial.value)
        else:  # the failed trial's folder says why, and the study holds the same error
            assert record["status"] == "failed" and trial.user_attrs["error"]


@pytest.mark.slow
def test_optuna_trial_that_raises_is_a_failed_trial_with_its_error(tiny_dataset, cache_dir, tmp_path):
    import optuna

    sweep = tmp_path / "search"
    result = run_train(
        [
            "-m",
            "hparams_search=optuna",
            "optimizer=adamw",
            "optimizer.lr=choice(-1, 0.001)",
            "hydra.sweeper.n_trials=2",
            "hydra.sweeper.sampler.seed=1",
            f"hydra.sweep.dir={sweep}",
            *shrunk(cache_dir),
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]  # the search completed trials despite the failures
    study = optuna.load_study(study_name="x3d_xs-4f-split1", storage=f"sqlite:///{sweep}/optuna.db")
    states = {trial.params["optimizer.lr"]: trial for trial in study.trials}
    assert len(study.trials) == 2 and set(states) == {-1, 0.001}
    failed = states[-1]
    assert failed.state == optuna.trial.TrialState.FAIL
    assert failed.user_attrs["error"] == LR_ERROR
    assert results(Path(failed.user_attrs["job_dir"]))["status"] == "failed"
    assert states[0.001].state == optuna.trial.TrialState.COMPLETE


@pytest.mark.slow
def test_joblib_runs_jobs_in_parallel_with_a_share_of_the_cores_each(tiny_dataset, cache_dir, tmp_path):
    sweep = tmp_path / "sweep"
    result = run_train(
        [
            "-m",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "seed=0,1",
            f"hydra.sweep.dir={sweep}",
            *shrunk(cache_dir, "data.num_workers=4"),
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(sweep.glob("*-x3d_xs-4f-split1"))
    assert [results(job)["seed"] for job in jobs] == [0, 1]
    assert all(results(job)["status"] == "completed" for job in jobs)
    threads = max(1, (os.cpu_count() or 1) // 2)
    for job in jobs:
        expected = f"threads_per_job={threads}: {threads} PyTorch threads, data.num_workers={min(4, threads)}"
        assert expected in (job / "train.log").read_text()


@pytest.mark.slow
def test_submitit_local_launcher_runs_a_sweep(tiny_dataset, cache_dir, tmp_path):
    sweep = tmp_path / "sweep"
    result = run_train(
        ["-m", "hydra/launcher=submitit_local", "seed=0,1", f"hydra.sweep.dir={sweep}", *shrunk(cache_dir)]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(sweep.glob("*-x3d_xs-4f-split1"))
    assert [results(job)["seed"] for job in jobs] == [0, 1]
    assert all(results(job)["status"] == "completed" for job in jobs)


LR_ERROR = "ConfigError: optimizer.lr=-1: the learning rate must be a finite number > 0"


@pytest.mark.slow
def test_sweep_with_a_failing_job_runs_the_others_and_exits_non_zero(tiny_dataset, cache_dir, tmp_path):
    sweep = tmp_path / "sweep"
    result = run_train(["-m", "optimizer.lr=-1,0.001", f"hydra.sweep.dir={sweep}", *shrunk(cache_dir)])
    assert result.returncode != 0
    failed, completed = results(sweep / "0-x3d_xs-4f-split1"), results(sweep / "1-x3d_xs-4f-split1")
    assert failed["status"] == "failed" and failed["error"] == LR_ERROR
    assert completed["status"] == "completed" and completed["test_top1"] is not None
    assert "1 of 2 jobs failed" in result.stderr
    assert f"job 0 ({sweep / '0-x3d_xs-4f-split1'}): {LR_ERROR}" in result.stderr
    assert "Traceback" in (sweep / "0-x3d_xs-4f-split1" / "train.log").read_text()


@pytest.mark.slow
def test_fail_fast_stops_the_sweep_at_the_first_failed_job(tiny_dataset, cache_dir, tmp_path):
    sweep = tmp_path / "sweep"
    result = run_train(
        ["-m", "optimizer.lr=-1,0.001", "sweep.fail_fast=true", f"hydra.sweep.dir={sweep}", *shrunk(cache_dir)]
    )
    assert result.returncode != 0
    assert "sweep.fail_fast=true stopped the sweep" in result.stderr
    assert results(sweep / "0-x3d_xs-4f-split1")["status"] == "failed"
    assert not (sweep / "1-x3d_xs-4f-split1").exists()


@pytest.mark.slow
def test_cpu_ddp_trains_each_video_once_and_tests_like_one_process(tiny_dataset, cache_dir, tmp_path, compose_config):
    import pytorch_lightning as pl
    from hydra.utils import instantiate

    from ar_experiments.training.module import VideoClassifier

    sweep = tmp_path / "sweep"
    # whole epochs and test sets; a tiny lr keeps the checkpoint near its random init, whose predictions
    # differ between videos (a collapsed one-class model would score the same however the set was split)
    shared = shrunk(
        cache_dir,
        "trainer.limit_train_batches=1.0",
        "trainer.limit_val_batches=1.0",
        "trainer.limit_test_batches=1.0",
        "test.temporal_views=2",
        "optimizer.lr=1e-6",
    )
    # inside a multirun: the case where Lightning's own start of the ranks (re-running the command) breaks
    result = run_train(["-m", "trainer=ddp_cpu", f"hydra.sweep.dir={sweep}", *shared])
    assert result.returncode == 0, result.stderr[-3000:]
    run = sweep / "0-x3d_xs-4f-split1"
    record = results(run)
    assert record["status"] == "completed" and record["world_size"] == 2

    datamodule = instantiate(compose_config(shared).data)
    datamodule.setup()
    with (run / "csv" / "metrics.csv").open() as table:
        clips = [float(row["train/clips"]) for row in csv.DictReader(table) if row.get("train/clips")]
    assert clips == [len(datamodule.train_set)], "one epoch across both ranks visits each training video once"

    single = pl.Trainer(
        accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    module = VideoClassifier.load_from_checkpoint(record["best_checkpoint"])
    metrics = single.test(module, datamodule=datamodule, verbose=False)[0]
    assert record["test_top1"] == pytest.approx(metrics["test/top1"])
    assert record["test_top1_multiview"] == pytest.approx(metrics["test/top1_multiview"])
    assert record["test_mean_class_acc"] == pytest.approx(metrics["test/mean_class_acc"])
    # rank 0 alone wrote the run's files
    assert len(list((run / "checkpoints").glob("best-*.ckpt"))) == 1
