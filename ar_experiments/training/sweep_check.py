"""A sweep's jobs whose multi-device combination cannot work, refused before the first job starts.

Each job refuses such a combination itself, in one line (distributed.py's `ranks_to_start`: a strategy that
starts its ranks its own way, `srun -n` without a count per node, tasks per node other than the devices).
In a multirun that is one failed job after another, between jobs that ran for hours, or after a SLURM
queue; the grid sweeper (hydra_plugins/ar_experiments_sweepers/all_jobs.py) asks this module about every
job's composed config first, and the command stops with the refusal, starting none.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from unittest import mock

from omegaconf import DictConfig

from ..config.checks import ConfigError
from .distributed import ranks_to_start

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


def refuse_impossible_jobs(jobs: Sequence[tuple[Sequence[str], DictConfig]]) -> None:
    """A ConfigError when a job cannot run; `jobs`: each job's overrides and composed config. Each refusal is one
    line, once, naming the jobs it stops by number and by the overrides that set them apart."""
    shared = set.intersection(*(set(overrides) for overrides, _ in jobs)) if jobs else set()
    stopped: dict[str, list[str]] = {}
    for number, (overrides, job) in enumerate(jobs):
        if (line := refusal(job)) is not None:
            own = [override for override in overrides if override not in shared]
            stopped.setdefault(line, []).append(f"{number} ({' '.join(own)})" if own else str(number))
    if stopped:
        raise ConfigError(
            [
                f"{line} [job {', '.join(names)} of {len(jobs)}; no job of the sweep was started]"
                for line, names in stopped.items()
            ]
        )
