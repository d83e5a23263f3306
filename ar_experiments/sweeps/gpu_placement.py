"""GPU placement: each GPU job claims a GPU slot of its own before CUDA starts, machine-wide.

What a user sees, and why a job is told its GPU as `trainer.devices=[i]` rather than by its own
CUDA_VISIBLE_DEVICES (a reused joblib worker could not move to another GPU), is in docs/sweeps.md,
"Every GPU of one machine (GPU placement)"; the slots and their lock files are gpu_slots.py's. This
module imports no torch at load time, so the placement logic is testable with a simulated list of GPUs.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ..safety.atomic import read_json
from .cpu_share import hydra_launcher, jobs_at_once
from .gpu_slots import SlotPool, slots_folder, visible_gpus
from .job_status import RUNNING, WAITING

log = logging.getLogger(__name__)
_PREVIOUS_GPU: int | None = None
"""The CUDA index of the GPU this process's last placed job ran on (CUDA may have a context there)."""

# --- the job's side ---------------------------------------------------------------------------


def placement_wanted(cfg: Any, env: Mapping[str, str] | None = None) -> str | None:
    """Why this job is not placed (None: it is). Cheap: reads the config and the environment only."""
    env = os.environ if env is None else env
    sweep = cfg.get("sweep") or {}
    if not sweep.get("gpu_placement", True):
        return "sweep.gpu_placement=false"
    trainer = cfg.get("trainer") or {}
    if str(trainer.get("accelerator", "cpu")) not in ("gpu", "cuda"):
        return "not a GPU run"
    devices = trainer.get("devices", "auto")
    if not re.fullmatch(r"auto|-1|\d+", str(devices).strip()):  # a number of GPUs, or all of them
        return f"trainer.devices={devices} names its GPUs"
    if "LOCAL_RANK" in env:
        return "a rank started by torchrun: its local rank names its GPU"
    if int(env.get("SLURM_STEP_NUM_TASKS") or 1) > 1:
        return "a task of a multi-task srun step: SLURM and Lightning give each rank its GPU"
    if "SUBMITIT_EXECUTOR" in env or "submitit" in str(hydra_launcher().get("_target_", "")):
        return "submitit gives each task its GPUs"
    return None


@contextlib.contextmanager
def claim_gpus(cfg: Any, status: Callable[..., None] | None = None) -> Iterator[list[int] | None]:
    """Around one GPU job: hold its GPU slot(s) and yield its devices (CUDA indices, for `trainer.devices`), None
    when not placed; `status` hears the job's state (waiting, running)."""
    global _PREVIOUS_GPU
    reason = placement_wanted(cfg)
    # a job whose folder holds a completed run is skipped by train(): it needs no GPU
    completed_before = (read_json(Path(str(cfg.paths.output_dir)) / "results.json") or {}).get("status") == "completed"
    if reason is not None or completed_before:
        yield None
        return
    import torch

    gpus = visible_gpus(count=torch.cuda.device_count())
    if not gpus:
        log.warning("trainer.accelerator=%s but no GPU is visible; the job is not placed", cfg.trainer.accelerator)
        yield None
        return
    jobs_per_gpu = int(cfg.get("jobs_per_gpu") or 1)
    pool = SlotPool(slots_folder(), gpus, jobs_per_gpu)
    devices = str(cfg.trainer.get("devices", "auto")).strip()
    needed = len(gpus) if devices in ("auto", "-1") else int(devices)
    whole = needed > 1 or "ddp" in str(cfg.trainer.get("strategy", "auto"))  # DDP jobs take whole GPUs
    at_once = jobs_at_once(hydra_launcher())
    if at_once is not None and at_once < pool.slots and not whole:
        log.warning(
            "%d jobs run at once but there are %d GPU slots (%d GPU(s) x jobs_per_gpu=%d): "
            "set hydra.launcher.n_jobs=%d to use them all",
            at_once, pool.slots, len(gpus), jobs_per_gpu, pool.slots,
        )  # fmt: skip

    def waiting() -> None:
        held_by = ", ".join(str(pid) for pid in pool.holders()) or "processes just ending"
        log.warning(
            "%s waits for a GPU: all %d slot(s) of GPU(s) %s are taken (jobs_per_gpu=%d, held by pid %s); "
            "it starts when one frees (slots in %s)",
            cfg.get("run_name", "this job"), pool.slots, ",".join(gpu.label for gpu in gpus), jobs_per_gpu, held_by,
            pool.folder,
        )  # fmt: skip
        if status is not None:
            status(state=WAITING)

    claim = pool.claim(needed, whole=whole, prefer=None if whole else _PREVIOUS_GPU, on_wait=waiting)
    try:
        if not whole:
            _PREVIOUS_GPU = claim.indices[0]
        text = ", ".join(
            f"cuda:{index} (CUDA_VISIBLE_DEVICES entry {label})" for index, label in zip(claim.indices, claim.labels)
        )
        log.info("GPU placement: this job runs on %s (jobs_per_gpu=%d)", text, jobs_per_gpu)
        if status is not None:
            status(state=RUNNING, device=", ".join(f"cuda:{index}" for index in claim.indices))
        yield list(claim.indices)
    finally:
        claim.release()


def release_gpu_memory() -> None:
    """After a job, in a process that runs the next (a reused joblib worker): collect the finished job's objects
    (trainer, module and loaders reference each other), hand the CUDA blocks they cached back to the driver
    (else the next job, perhaps packed beside others with jobs_per_gpu, starts with the last one's memory),
    and start the peak memory count (results.json's peak_gpu_mb) again."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()


# --- what results.json says -------------------------------------------------------------------


def describe_device(indices: list[int], names: list[str], world_size: int = 1) -> str:
    """`cuda:3 (NVIDIA H200)`, or for DDP `cuda:0,1 (2 x NVIDIA H200)` (`on N processes` across nodes); without
    the GPUs' names, `cuda:3`."""
    devices = f"cuda:{','.join(str(index) for index in indices)}"
    if not names:
        return devices
    distinct = sorted(set(names))
    model = distinct[0] if len(distinct) == 1 else " + ".join(names)
    if len(indices) == 1 and world_size <= 1:
        return f"{devices} ({model})"
    across = f" on {world_size} processes" if world_size > len(indices) else ""
    return f"{devices} ({len(indices)} x {model}{across})"


def trainer_device(trainer: Any) -> str:
    """What a Lightning trainer ran on, as results.json records it."""
    import torch

    root = trainer.strategy.root_device
    if root.type != "cuda":
        return root.type
    devices = getattr(trainer.strategy, "parallel_devices", None) or [root]
    indices = [device.index if device.index is not None else torch.cuda.current_device() for device in devices]
    names = [torch.cuda.get_device_name(index) for index in indices]
    return describe_device(indices, names, world_size=trainer.world_size)


def planned_device(cfg: Any) -> str | None:
    """The device of a job before it trains (for the results.json of a run that fails): "cpu", its GPUs, or None."""
    trainer = cfg.get("trainer") or {}
    accelerator = str(trainer.get("accelerator", "auto"))
    if accelerator == "cpu":
        return "cpu"
    devices = trainer.get("devices")
    if accelerator not in ("gpu", "cuda") or not hasattr(devices, "__len__") or isinstance(devices, str):
        return None
    try:
        import torch

        names = [torch.cuda.get_device_name(int(index)) for index in devices]
    except Exception:  # noqa: BLE001 - the names are a courtesy; no GPU here, or CUDA failed
        names = []
    return describe_device([int(index) for index in devices], names)
