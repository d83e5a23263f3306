"""A sweep's jobs whose multi-device combination cannot work, refused before the first job starts.

Each job refuses such a combination itself, in one line (distributed.py's `ranks_to_start`: a strategy that
starts its ranks its own way, `srun -n` without a count per node, tasks per node other than the devices).
In a multirun that is one failed job after another, between jobs that ran for hours, or after a SLURM
queue; the grid sweeper (hydra_plugins/ar_experiments_sweepers/all_jobs.py) asks this module about every
job's composed config first, and the command stops with the refusal, starting none. The Optuna sweeper
(optuna_study.py there) asks about the configurations its search space can produce, before it opens its study:
choices and short int ranges are enumerated; a float interval is checked at one value (a learning rate or a
weight decay never decides a multi-device combination), and past CHECKED_AT_MOST configurations the rest is
left to each trial's own check, which the console says.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import warnings
from collections.abc import Sequence
from typing import Any
from unittest import mock

from omegaconf import DictConfig

from ..config.checks import ConfigError
from .distributed import ranks_to_start

log = logging.getLogger(__name__)

# An Optuna search space is checked before its first trial (refuse_impossible_trials) at this many configurations
# at most (composing one took 260-360 ms on a busy 2-core CPU: under a minute for all), and an int range at every
# value up to WHOLE_INT_RANGE values
CHECKED_AT_MOST = 128
WHOLE_INT_RANGE = 16

# hydra/launcher=slurm's (conf/hydra/launcher/slurm.yaml) and hydra-submitit-launcher's own submitit_slurm
SLURM_LAUNCHERS = (
    "hydra_plugins.ar_experiments_sweepers.submitit_slurm.SlurmLauncher",
    "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
)
# what a process inherits from the launcher that started it; a SLURM job gets its own
STARTED_BY = ("SLURM_", "LOCAL_RANK", "TORCHELASTIC_")


def job_environment(job: DictConfig) -> dict[str, str]:
    """The environment the job will check itself in: this process's, or, for a job that the submitit launcher
    (hydra/launcher=slurm) sends to SLURM, the one SLURM gives each of its tasks (`nodes` x `tasks_per_node`)."""
    launcher = job.hydra.launcher
    if launcher.get("_target_") not in SLURM_LAUNCHERS:
        return dict(os.environ)
    tasks, nodes = int(launcher.tasks_per_node), int(launcher.nodes)
    own = {name: value for name, value in os.environ.items() if not name.startswith(STARTED_BY)}
    return {
        **own,
        "SLURM_NTASKS": str(tasks * nodes),
        "SLURM_NTASKS_PER_NODE": str(tasks),
        "SLURM_NNODES": str(nodes),
        "SLURM_JOB_NAME": "sweep-job",  # Lightning takes a job named bash or interactive for a shell, not a task
    }


def refusal(job: DictConfig) -> str | None:
    """The one-line refusal of the job's multi-device combination, or None when it can run."""
    # Lightning reads the SLURM and torchrun variables from os.environ itself: the job's, for the time of the check
    with mock.patch.dict(os.environ, job_environment(job), clear=True):
        try:
            ranks_to_start(job.trainer)
        except ConfigError as err:
            return str(err)
    return None


def _refused(configs: Sequence[DictConfig]) -> dict[str, list[int]]:
    """Each refusal line, once, with the numbers of the configs it stops."""
    stopped: dict[str, list[int]] = {}
    for number, config in enumerate(configs):
        if (line := refusal(config)) is not None:
            stopped.setdefault(line, []).append(number)
    return stopped


def refuse_impossible_jobs(jobs: Sequence[tuple[Sequence[str], DictConfig]]) -> None:
    """A ConfigError when a job cannot run; `jobs`: each job's overrides and composed config. Each refusal is one
    line, once, naming the jobs it stops by number and by the overrides that set them apart."""
    shared = set.intersection(*(set(overrides) for overrides, _ in jobs)) if jobs else set()

    def named(number: int) -> str:
        own = [override for override in jobs[number][0] if override not in shared]
        return f"{number} ({' '.join(own)})" if own else str(number)

    stopped = _refused([job for _, job in jobs])
    if stopped:
        raise ConfigError(
            [
                f"{line} [job {', '.join(map(named, numbers))} of {len(jobs)}; no job of the sweep was started]"
                for line, numbers in stopped.items()
            ]
        )


def values_to_check(distribution: Any) -> list | None:
    """The values at which one parameter of an Optuna search space is checked: every choice; every value of an int
    range of at most WHOLE_INT_RANGE values, the two ends of a longer one; None for a float interval, checked at the
    one value the check's own sampler draws (no float decides how many devices a run takes)."""
    from optuna.distributions import CategoricalDistribution, IntLogUniformDistribution, IntUniformDistribution

    if isinstance(distribution, CategoricalDistribution):
        return list(distribution.choices)
    if isinstance(distribution, (IntUniformDistribution, IntLogUniformDistribution)):
        values = range(distribution.low, distribution.high + 1, distribution.step)
        return list(values) if len(values) <= WHOLE_INT_RANGE else [values[0], values[-1]]
    return None


def search_space_trials(sweeper: Any, arguments: list[str]) -> tuple[list[tuple[dict, Sequence[str]]], int]:
    """The trials an Optuna search (hydra-optuna-sweeper's sweeper, set up) can launch, each with the values of its
    checked parameters and the overrides the sweeper's own `_configure_trials` writes for it (fixed values and the
    custom search space's parameters included); and how many configurations the checked parameters make. At most
    CHECKED_AT_MOST are listed: the first in the order of the parameters, the last varying fastest (the command
    line's come last). They are asked of an in-memory study of their own: the search's study is not opened."""
    import optuna
    from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl, create_params_from_overrides

    sweeper._process_searchspace_config()  # the start of the plugin's sweep(), which the search then runs
    space, fixed = create_params_from_overrides([*sweeper._parse_sweeper_params_config(), *arguments])
    space = {
        name: d for name, d in {**(sweeper.search_space_distributions or {}), **space}.items() if name not in fixed
    }
    checked = {name: values for name, d in space.items() if (values := values_to_check(d)) is not None}
    combinations = itertools.islice(itertools.product(*checked.values()), CHECKED_AT_MOST)
    points = [dict(zip(checked, combination)) for combination in combinations]
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not "A new study created in memory"
    try:
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    finally:
        optuna.logging.set_verbosity(verbosity)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # enqueue_trial, in Optuna 2
        for point in points:
            study.enqueue_trial(point)
    overrides = OptunaSweeperImpl._configure_trials(sweeper, [study.ask() for _ in points], space, fixed)
    return list(zip(points, overrides)), math.prod(map(len, checked.values()))


def refuse_impossible_trials(sweeper: Any, arguments: list[str]) -> None:
    """A ConfigError when a configuration of an Optuna search space cannot run, found before its study is opened:
    each refusal one line, once, naming the parameter values of the configurations it stops."""
    trials, total = search_space_trials(sweeper, arguments)
    if total > len(trials):
        log.warning(
            "%d of the search space's %d configurations were checked before the first trial (the last parameter "
            "varying fastest); a trial with another one checks itself when it starts",
            len(trials),
            total,
        )
    load = sweeper.hydra_context.config_loader.load_sweep_config
    stopped = _refused([load(sweeper.config, list(overrides)) for _, overrides in trials])
    varying = {name for name in trials[0][0] if len({str(point[name]) for point, _ in trials}) > 1} if trials else set()
    if stopped:
        raise ConfigError(
            [
                f"{line} [{_where([trials[n][0] for n in numbers], len(trials), varying)}; no trial was started]"
                for line, numbers in stopped.items()
            ]
        )


def _where(refused: list[dict], checked: int, varying: set[str]) -> str:
    """The search-space values that the refused configurations share, among those that vary."""
    if len(refused) == checked:
        return f"all {checked} configurations of the search space checked"
    shared = [f"{n}={v}" for n, v in refused[0].items() if n in varying and all(p[n] == v for p in refused)]
    example = [f"{n}={v}" for n, v in refused[0].items() if n in varying]
    named = " ".join(shared) if shared else "e.g. " + " ".join(example)
    return f"{named}: {len(refused)} of the search space's {checked} configurations checked"
