"""GPU slots of one sweep folder: which GPUs a job may use, and a lock file per slot that frees itself
when its process ends (see gpu_placement.py)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SLOTS_FOLDER = ".gpu_slots"
MUTEX_FILE = "placement.lock"
POLL_S = 1.0


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


def machine_gpu_count() -> int:
    """GPUs of this machine without importing torch or starting CUDA: /dev/nvidiaN device nodes."""
    nodes = [path for path in Path("/dev").glob("nvidia*") if re.fullmatch(r"nvidia\d+", path.name)]
    if nodes:
        return len(nodes)
    proc = Path("/proc/driver/nvidia/gpus")
    return len(list(proc.iterdir())) if proc.is_dir() else 0


def visible_gpus(env: dict[str, str] | None = None, count: int | Callable[[], int] | None = None) -> list[str]:
    """Labels of the GPUs a job may use, in CUDA's order: the CUDA_VISIBLE_DEVICES entries, else "0".."n-1".

    `count`: how many GPUs CUDA sees (torch.cuda.device_count() in a job; a number in tests);
    the list is cut to it, as CUDA drops entries that name no GPU.
    """
    env = os.environ if env is None else env
    entries = parse_visible_devices(env.get("CUDA_VISIBLE_DEVICES"))
    seen = count() if callable(count) else count
    if entries is None:
        return [str(index) for index in range(seen if seen is not None else machine_gpu_count())]
    return entries if seen is None else entries[:seen]


def _slot_name(label: str, slot: int) -> str:
    return f"gpu-{re.sub(r'[^A-Za-z0-9_.-]', '_', label)}.slot{slot}.lock"


@dataclass
class Claim:
    """GPUs held by one job: `indices` into the visible list, the slot locks that hold them."""

    indices: list[int]
    labels: list[str]
    handles: list[Any] = field(default_factory=list, repr=False)

    def release(self) -> None:
        for handle in self.handles:
            with contextlib.suppress(OSError):
                fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()
        self.handles = []

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class SlotPool:
    """`jobs_per_gpu` slots per visible GPU, shared by every process through lock files in `folder`."""

    def __init__(self, folder: Path, gpus: list[str], jobs_per_gpu: int = 1):
        if jobs_per_gpu < 1:
            raise ValueError(f"jobs_per_gpu={jobs_per_gpu}: it must be 1 or more")
        self.folder = Path(folder)
        self.gpus = list(gpus)
        self.jobs_per_gpu = int(jobs_per_gpu)
        self.folder.mkdir(parents=True, exist_ok=True)

    @property
    def slots(self) -> int:
        return len(self.gpus) * self.jobs_per_gpu

    def _try_lock(self, gpu: int, slot: int):
        handle = open(self.folder / _slot_name(self.gpus[gpu], slot), "a+")  # noqa: SIM115 - held while the job runs
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            handle.close()
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return None
            raise
        return handle

    @contextlib.contextmanager
    def _mutex(self) -> Iterator[None]:
        """One process at a time looks at and takes slots, so a decision sees the others' claims."""
        with open(self.folder / MUTEX_FILE, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def try_claim(self, gpus_needed: int = 1, whole: bool = False, prefer: int | None = None) -> Claim | None:
        """Take slots now, or None: one slot of one GPU, or (`whole`, DDP) every slot of `gpus_needed` GPUs."""
        if gpus_needed < 1 or gpus_needed > len(self.gpus):
            raise ValueError(f"a job asks for {gpus_needed} GPU(s); {len(self.gpus)} are visible ({self.gpus})")
        with self._mutex():
            free: dict[int, list[Any]] = {}  # gpu -> handles of its free slots (held while deciding)
            for gpu in range(len(self.gpus)):
                free[gpu] = [h for slot in range(self.jobs_per_gpu) if (h := self._try_lock(gpu, slot)) is not None]
            if whole:
                chosen = [gpu for gpu in free if len(free[gpu]) == self.jobs_per_gpu][:gpus_needed]
                if len(chosen) < gpus_needed:
                    chosen = []
                keep = {gpu: free[gpu] for gpu in chosen}
            else:
                candidates = [gpu for gpu in free if free[gpu]]
                if prefer is not None and prefer in candidates:
                    chosen = [prefer]
                else:  # the emptiest GPU first: jobs spread before they pack
                    chosen = sorted(candidates, key=lambda gpu: (-len(free[gpu]), gpu))[:1]
                keep = {gpu: free[gpu][:1] for gpu in chosen}
            for gpu, handles in free.items():
                for handle in handles:
                    if handle not in keep.get(gpu, []):
                        fcntl.flock(handle, fcntl.LOCK_UN)
                        handle.close()
        if not chosen:
            return None
        return Claim(chosen, [self.gpus[gpu] for gpu in chosen], [h for gpu in chosen for h in keep[gpu]])

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
