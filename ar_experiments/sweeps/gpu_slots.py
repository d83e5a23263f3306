"""GPU slots of one machine (or one SLURM allocation): which GPUs a job may use, where their slots live, and a
lock file per slot that frees itself when its process ends (see gpu_placement.py)."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..safety.file_lock import HeldLock, read_owner, try_lock, waiting_for

SLOTS_DIR_ENV = "AR_GPU_SLOTS_DIR"
MUTEX_FILE = "placement.lock"
POLL_S = 1.0


def slots_folder(env: Mapping[str, str] | None = None) -> Path:
    """The slots every process of this user shares: AR_GPU_SLOTS_DIR, else /tmp/ar-experiments-<uid>/gpu-slots
    (local disk: a home folder on NFS would share one machine's slots with every other machine); inside a SLURM
    allocation a folder of its own, as each allocation on a node numbers its GPUs from 0."""
    env = os.environ if env is None else env
    root = Path(env.get(SLOTS_DIR_ENV) or f"/tmp/ar-experiments-{os.getuid()}/gpu-slots")
    return root / f"slurm-{env['SLURM_JOB_ID']}" if env.get("SLURM_JOB_ID") else root


def parse_visible_devices(value: str | None) -> list[str] | None:
    """CUDA_VISIBLE_DEVICES as CUDA reads it: None when unset (every GPU), else its entries up to the first
    invalid one ("" or "-1" hides every GPU). Entries are indices or GPU-/MIG- UUIDs."""
    if value is None:
        return None
    entries = []
    for entry in value.split(","):
        entry = entry.strip()
        if re.fullmatch(r"\d+", entry) or re.match(r"(GPU|MIG)-", entry):
            entries.append(entry)
        else:
            break  # CUDA ignores an invalid entry and everything after it
    return entries


@dataclass(frozen=True)
class Gpu:
    """A GPU a job may use: `index`, CUDA's number for it in this process (cuda:index); `label`, its name in the
    slot files (the CUDA_VISIBLE_DEVICES entry: a machine index or a UUID)."""

    index: int
    label: str


def visible_gpus(env: Mapping[str, str] | None = None, *, count: int) -> list[Gpu]:
    """The GPUs a job may use, in CUDA's order: CUDA_VISIBLE_DEVICES's entries when set (SLURM sets it for an
    allocation's GPUs); else, inside a SLURM allocation, SLURM_STEP_GPUS or SLURM_JOB_GPUS (machine indices,
    which CUDA then numbers alike); else every GPU of the machine. `count`: how many GPUs CUDA sees
    (torch.cuda.device_count(), which starts no CUDA context); the list is cut to it, as CUDA drops the rest."""
    env = os.environ if env is None else env
    entries = parse_visible_devices(env.get("CUDA_VISIBLE_DEVICES"))
    if entries is not None:
        return [Gpu(index, label) for index, label in enumerate(entries[:count])]
    allocated = env.get("SLURM_STEP_GPUS") or env.get("SLURM_JOB_GPUS")
    if allocated:
        labels = [label.strip() for label in allocated.split(",") if label.strip().isdigit()]
        return [Gpu(int(label), label) for label in labels if int(label) < count]
    return [Gpu(index, str(index)) for index in range(count)]


@dataclass
class Claim:
    """GPUs held by one job: their CUDA `indices` and slot `labels`, and the slot locks that hold them."""

    indices: list[int]
    labels: list[str]
    locks: list[HeldLock] = field(default_factory=list, repr=False)

    def release(self) -> None:
        for lock in self.locks:
            lock.release()
        self.locks = []


class SlotPool:
    """`jobs_per_gpu` slots per GPU, shared by every process through lock files in `folder`."""

    def __init__(self, folder: Path, gpus: list[Gpu], jobs_per_gpu: int = 1):
        if jobs_per_gpu < 1:
            raise ValueError(f"jobs_per_gpu={jobs_per_gpu}: it must be 1 or more")
        self.folder = Path(folder)
        self.gpus = list(gpus)
        self.jobs_per_gpu = int(jobs_per_gpu)
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.folder.stat().st_uid != os.getuid():  # another user's folder in /tmp: their claims, not ours
            raise PermissionError(
                f"the GPU slots folder {self.folder} belongs to another user; set {SLOTS_DIR_ENV}=<a folder of yours>"
            )

    @property
    def slots(self) -> int:
        return len(self.gpus) * self.jobs_per_gpu

    def _slot_path(self, gpu: int, slot: int) -> Path:
        return self.folder / f"gpu-{re.sub(r'[^A-Za-z0-9_.-]', '_', self.gpus[gpu].label)}.slot{slot}.lock"

    def holders(self) -> list[int]:
        """The pids holding this pool's slots now, as their lock files record them."""
        pids = {read_owner(self._slot_path(gpu, slot)).get("pid") for gpu in range(len(self.gpus))
                for slot in range(self.jobs_per_gpu)}  # fmt: skip
        return sorted(pid for pid in pids if isinstance(pid, int))

    def try_claim(self, gpus_needed: int = 1, whole: bool = False, prefer: int | None = None) -> Claim | None:
        """Take slots now, or None: one slot of one GPU (`prefer`: cuda:prefer if it has one free), or
        (`whole`, DDP) every slot of `gpus_needed` GPUs."""
        if gpus_needed < 1 or gpus_needed > len(self.gpus):
            raise ValueError(f"a job asks for {gpus_needed} GPU(s); {len(self.gpus)} are visible ({self.gpus})")
        with waiting_for(self.folder / MUTEX_FILE):  # one process decides at a time, seeing the others' claims
            free: dict[int, list[HeldLock]] = {}  # gpu -> its free slots, held while deciding
            for gpu in range(len(self.gpus)):
                slots = (try_lock(self._slot_path(gpu, slot)) for slot in range(self.jobs_per_gpu))
                free[gpu] = [lock for lock in slots if lock is not None]
            if whole:
                chosen = [gpu for gpu in free if len(free[gpu]) == self.jobs_per_gpu][:gpus_needed]
                if len(chosen) < gpus_needed:
                    chosen = []
                keep = {gpu: free[gpu] for gpu in chosen}
            else:
                candidates = [gpu for gpu in free if free[gpu]]
                preferred = [gpu for gpu in candidates if self.gpus[gpu].index == prefer]  # cuda:prefer
                if preferred:
                    chosen = preferred
                else:  # the emptiest GPU first: jobs spread before they pack
                    chosen = sorted(candidates, key=lambda gpu: (-len(free[gpu]), gpu))[:1]
                keep = {gpu: free[gpu][:1] for gpu in chosen}
            for gpu, locks in free.items():
                for lock in locks:
                    if lock not in keep.get(gpu, []):
                        lock.release()
        if not chosen:
            return None
        return Claim(
            [self.gpus[gpu].index for gpu in chosen],
            [self.gpus[gpu].label for gpu in chosen],
            [lock for gpu in chosen for lock in keep[gpu]],
        )

    def claim(
        self,
        gpus_needed: int = 1,
        whole: bool = False,
        prefer: int | None = None,
        poll_s: float = POLL_S,
        on_wait: Callable[[], None] | None = None,
        timeout_s: float | None = None,
    ) -> Claim:
        """Wait until the slots are free and take them (`on_wait` is called once, when the job has to wait)."""
        waited_since = None
        while True:
            claim = self.try_claim(gpus_needed, whole, prefer)
            if claim is not None:
                return claim
            if waited_since is None:
                waited_since = time.monotonic()
                if on_wait is not None:
                    on_wait()
            if timeout_s is not None and time.monotonic() - waited_since > timeout_s:
                raise TimeoutError(f"no free GPU slot for {timeout_s:.0f} s")
            time.sleep(poll_s)
