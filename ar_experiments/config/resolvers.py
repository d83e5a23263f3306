"""OmegaConf resolvers the configs use; registered when the package is imported."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf

from ..safety.redaction import safe_name
from ..sweeps.cpu_share import console_log_level, progress_bar, threads_per_job

REPO_DIR = Path(__file__).resolve().parents[2]  # a checkout of the project: conf/ beside ar_experiments/
CONF_DIR = REPO_DIR / "conf"


def project_root() -> str:
    """The repository folder (the one holding conf/), else the current folder."""
    return str(REPO_DIR if CONF_DIR.is_dir() else Path.cwd())


def stride_for(frames: int, strides) -> int:
    """The sampling stride for `frames` from the `clip.strides` table."""
    if frames in strides:
        return int(strides[frames])
    raise ValueError(
        f"frames={frames} has no sampling stride; choose one of {sorted(strides)} "
        f"or set data.stride=N (or add it to clip.strides)"
    )


def loader_workers(cap: int = 16) -> int:
    """DataLoader workers for this machine: one per usable core, less one for the training process (at least 1)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cap, cores - 1))


def tasks_per_node(gpus_per_node: int) -> int:
    """SLURM tasks per node for hydra/launcher=slurm: one per GPU (a DDP rank each), one on a CPU partition
    (gpus_per_node=0, where train() starts trainer=ddp_cpu's ranks itself; sbatch refuses 0 tasks)."""
    return max(1, int(gpus_per_node))


RESOLVERS = {
    "ar.project_root": project_root,
    "ar.stride": stride_for,
    "ar.threads_per_job": threads_per_job,
    "ar.loader_workers": loader_workers,
    "ar.progress_bar": progress_bar,
    "ar.console_log_level": console_log_level,
    "ar.safe_name": safe_name,
    "ar.tasks_per_node": tasks_per_node,
}


def register_resolvers() -> None:
    for name, function in RESOLVERS.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, function)
