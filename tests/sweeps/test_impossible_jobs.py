"""A multirun holding a job whose multi-device combination cannot work is refused once, before any job starts
(ar_experiments/training/sweep_check.py, called by the grid sweeper), and an Optuna search whose space holds one
before its study is opened."""

from __future__ import annotations

import sys

import pytest

from ar_experiments.config.checks import ConfigError
from ar_experiments.training.sweep_check import refuse_impossible_jobs
from tests.conftest import CONF_DIR, SMALLEST_RUN, compose, tiny_overrides


@pytest.fixture
def no_launcher(monkeypatch):
    """An environment where nobody (torchrun, SLURM) started this process."""
    launchers = ("LOCAL_RANK", "TORCHELASTIC_RUN_ID", "SLURM_NTASKS", "SLURM_NTASKS_PER_NODE", "SLURM_NNODES")
    for name in (*launchers, "SLURM_JOB_NAME"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_a_sweep_with_one_job_that_cannot_run_prints_its_refusal_and_starts_no_job(
    no_launcher, tiny_dataset, cache_dir, tmp_path
):
    """The whole command, in this process: Hydra parses the sweep, the sweeper composes every job and refuses.
    (Should the refusal fail, the jobs that can run train on the tiny data, briefly.)"""
    from hydra.core.global_hydra import GlobalHydra

    from ar_experiments.train import main

    sweep = tmp_path / "sweep"
    grid = ["trainer=ddp_cpu", "trainer.strategy=ddp,ddp_spawn", "model=x3d_xs,slowfast", "logger=csv"]
    grid += [*tiny_overrides(cache_dir), "frames=4", "trainer.limit_train_batches=1"]
    # the config folder named, as `python -m ar_experiments.train` finds it from the file it runs
    no_launcher.setattr(sys, "argv", ["train", "--config-path", CONF_DIR, "-m", *grid, f"hydra.sweep.dir={sweep}"])
    try:
        with pytest.raises(SystemExit) as refused:
            main()
    finally:
        GlobalHydra.instance().clear()
    message = str(refused.value.code)
    assert message.count("\n") == 0, message
    assert message.startswith("error: trainer.strategy='ddp_spawn' with 2 devices")
    assert "use trainer.strategy=ddp" in message
    assert "[job 2 (trainer.strategy=ddp_spawn model=x3d_xs), 3 (trainer.strategy=ddp_spawn model=slowfast) of 4;" in (
        message
    )
    assert not [path.name for path in sweep.iterdir() if path.name[0].isdigit()], "a job folder was made"


def job(*overrides: str) -> tuple[list[str], object]:
    return list(overrides), compose(list(overrides), return_hydra_config=True)


def test_srun_tasks_without_a_count_per_node_refuse_every_local_job_at_once(no_launcher):
    no_launcher.setenv("SLURM_NTASKS", "2")  # the sweep itself started by srun -n 2
    no_launcher.setenv("SLURM_JOB_NAME", "job")
    with pytest.raises(ConfigError) as refused:
        refuse_impossible_jobs([job("trainer=ddp_cpu", "model=x3d_xs"), job("trainer=ddp_cpu", "model=slowfast")])
    assert len(refused.value.problems) == 1 and "use srun --ntasks-per-node=2" in refused.value.problems[0]
    assert "[job 0 (model=x3d_xs), 1 (model=slowfast) of 2;" in str(refused.value)


def test_a_job_sent_to_slurm_is_checked_in_the_environment_slurm_gives_its_tasks(no_launcher):
    slurm = ["hydra/launcher=slurm", "hydra.launcher.gpus_per_node=0", "trainer=ddp_cpu"]
    no_launcher.setenv("SLURM_NTASKS", "2")  # the sweep's own allocation is not the jobs'
    no_launcher.setenv("SLURM_JOB_NAME", "job")
    refuse_impossible_jobs([job(*slurm)])  # one task per job: train() starts the 2 ranks itself
    with pytest.raises(ConfigError, match="SLURM starts 2 tasks per node but trainer.devices asks for 4 devices"):
        refuse_impossible_jobs([job(*slurm, "hydra.launcher.tasks_per_node=2", "trainer.devices=4")])
    refuse_impossible_jobs([job(*slurm, "hydra.launcher.tasks_per_node=2", "trainer.devices=2")])


def test_a_job_of_several_slurm_nodes_is_checked_with_the_node_count_slurm_gives_it(no_launcher):
    slurm = ["hydra/launcher=slurm", "hydra.launcher.gpus_per_node=0", "trainer=ddp_cpu", "trainer.devices=1"]
    refuse_impossible_jobs([job(*slurm, "hydra.launcher.nodes=2", "trainer.num_nodes=2")])
    with pytest.raises(ConfigError, match="SLURM runs the job's tasks on 2 nodes but trainer.num_nodes=1; set trai"):
        refuse_impossible_jobs([job(*slurm, "hydra.launcher.nodes=2")])
    with pytest.raises(ConfigError, match="trainer.num_nodes=2, but no one started this process as one rank of"):
        refuse_impossible_jobs([job(*slurm, "trainer.num_nodes=2")])


def run_search(monkeypatch, tmp_path, cache_dir, *search: str) -> SystemExit:
    """`python -m ar_experiments.train -m hparams_search=optuna SEARCH` in this process, expected to stop."""
    from hydra.core.global_hydra import GlobalHydra

    from ar_experiments.train import main

    command = ["hparams_search=optuna", *tiny_overrides(cache_dir), *SMALLEST_RUN, "trainer.limit_train_batches=1"]
    command += [*search, f"hydra.sweep.dir={tmp_path / 'search'}"]
    monkeypatch.setattr(sys, "argv", ["train", "--config-path", CONF_DIR, "-m", *command])
    try:
        with pytest.raises(SystemExit) as stopped:
            main()
    finally:
        GlobalHydra.instance().clear()
    return stopped.value


def test_an_optuna_search_whose_space_holds_a_config_that_cannot_run_is_refused_before_its_study_opens(
    no_launcher, tiny_dataset, cache_dir, tmp_path
):
    """The search space's choices are enumerated and composed before the first trial; the floats (lr, weight
    decay) are checked at one value. (Should the refusal fail, a trial trains on the tiny data, briefly.)"""
    search = ["trainer.accelerator=cpu", "trainer.strategy=ddp_spawn", "trainer.devices=choice(1,2)"]
    message = str(run_search(no_launcher, tmp_path, cache_dir, *search, "hydra.sweeper.n_trials=1").code)
    assert message.count("\n") == 0, message
    assert message.startswith("error: trainer.strategy='ddp_spawn' with 2 devices")
    # optimizer: choice(adamw, sgd, asgd) (conf/hparams_search/optuna.yaml) x trainer.devices: 3 of 6 refused
    assert message.endswith(
        "[trainer.devices=2: 3 of the search space's 6 configurations checked; no trial was started]"
    )
    made = [path.name for path in (tmp_path / "search").iterdir()]
    assert made == [".sweep.lock"], "the study or a trial folder was made"  # the sweep folder's lock only


def test_an_optuna_search_space_too_large_to_compose_whole_is_checked_in_part_and_says_so(
    no_launcher, tiny_dataset, cache_dir, tmp_path, capsys, monkeypatch
):
    from ar_experiments.training import sweep_check

    monkeypatch.setattr(sweep_check, "CHECKED_AT_MOST", 4)
    search = ["trainer.accelerator=cpu", "trainer.devices=range(1,4)", "trainer.strategy=choice(ddp,ddp_spawn)"]
    message = str(run_search(no_launcher, tmp_path, cache_dir, *search).code)
    # 3 (optimizer) x 4 (devices: the plugin's Optuna range includes its end) x 2 (strategy) configurations; the
    # first 4: adamw with devices 1 and 2
    console = "".join(capsys.readouterr())  # Hydra's console log
    assert "4 of the search space's 24 configurations were checked before the first trial" in console
    assert message == (
        "error: trainer.strategy='ddp_spawn' with 2 devices: this project starts the DDP processes itself (so that "
        "they work inside sweeps); use trainer.strategy=ddp (trainer=ddp, or trainer=ddp_cpu on CPU) "
        "[trainer.devices=2 trainer.strategy=ddp_spawn: 1 of the search space's 4 configurations checked; "
        "no trial was started]"
    )


def test_int_ranges_are_checked_at_every_value_when_short_at_their_ends_when_long_and_floats_at_one_value():
    from optuna.distributions import CategoricalDistribution, IntUniformDistribution, LogUniformDistribution

    from ar_experiments.training.sweep_check import values_to_check

    assert values_to_check(CategoricalDistribution(["ddp", "ddp_spawn"])) == ["ddp", "ddp_spawn"]
    assert values_to_check(IntUniformDistribution(1, 7, step=2)) == [1, 3, 5, 7]
    assert values_to_check(IntUniformDistribution(1, 1000)) == [1, 1000]
    assert values_to_check(LogUniformDistribution(1e-4, 1e-1)) is None
