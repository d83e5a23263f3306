"""One live process per run folder and per sweep folder: a lock file naming its owner.

Two jobs writing one folder corrupt each other silently (docs/faults.md, "One process per run folder
and per sweep folder", says what is held when). The lock is safety/file_lock.py's: freed however its
owner exits, so a folder left by a dead job is taken over by the next one; the file is removed on a
clean release. Under DDP only the launching process (or global rank 0 of ranks started by SLURM or
torchrun) takes the lock; the ranks it starts write nothing that needs it.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from ..config.checks import ConfigError
from ..safety.file_lock import HeldLock, describe_owner, read_owner, try_lock

RUN_LOCK = ".run.lock"
SWEEP_LOCK = ".sweep.lock"


class FolderInUse(ConfigError):
    """The folder is held by another live process; the message names it."""


_HELD: dict[Path, HeldLock] = {}
"""Locks this process holds: taking one again (the Hydra callback, then train()) is re-entry, not a conflict."""


def acquire(folder: Path, name: str = RUN_LOCK, what: str = "run") -> HeldLock:
    """Take `folder`/`name` for this process (or return the lock it already holds); FolderInUse names a live owner."""
    path = (folder / name).resolve()
    if path in _HELD:
        return _HELD[path]
    folder.mkdir(parents=True, exist_ok=True)
    held = try_lock(path, wait_s=0.5)  # the owner may be just removing it on its way out
    if held is None:
        raise FolderInUse([_in_use_message(folder, what, read_owner(path))])
    _HELD[path] = held
    return held


def release(lock: HeldLock) -> None:
    """Free a folder's lock (the process's exit does too) and remove its file."""
    _HELD.pop(lock.path, None)
    lock.release(remove=True)


@atexit.register
def _release_all() -> None:
    """A run that ends by SystemExit (a config error) skips Hydra's end callbacks: free its folders here."""
    for lock in list(_HELD.values()):
        release(lock)


@contextmanager
def holding(folder: Path, name: str = RUN_LOCK, what: str = "run") -> Iterator[HeldLock | None]:
    """The folder's lock for the block (None in a DDP rank, which owns no folder); one this process already held
    before the block stays held after it."""
    if not owns_folders():
        yield None
        return
    held_before = (folder / name).resolve() in _HELD
    lock = acquire(folder, name, what)
    try:
        yield lock
    finally:
        if not held_before:
            release(lock)


def owns_folders() -> bool:
    """False in DDP ranks other than the launching process or global rank 0 (the ranks distributed.py starts
    never get here: they run the fit only, not train() or Hydra)."""
    # torchrun sets RANK; SLURM tasks of one job (srun --ntasks=N) carry SLURM_PROCID
    tasks = os.environ.get("SLURM_NTASKS", "1")
    rank = os.environ.get("RANK") or (os.environ.get("SLURM_PROCID") if tasks.isdigit() and int(tasks) > 1 else None)
    return not rank or not rank.isdigit() or int(rank) == 0


def _in_use_message(folder: Path, what: str, owner: dict[str, Any]) -> str:
    who = describe_owner(owner)
    setting = "hydra.sweep.dir" if what == "sweep" else "hydra.run.dir (hydra.sweep.dir for a sweep)"
    return (
        f"{folder} is in use by another {what}: {who}. Two processes writing one folder would corrupt its "
        f"metrics.csv and results.json; wait until it ends (re-running then resumes), or give this one "
        f"another folder ({setting}=...)"
    )


class FolderLockCallback(Callback):
    """Takes the run folder (a single run) or the sweep folder (a multirun) before Hydra writes anything
    there (`.hydra/*.yaml`, `multirun.yaml`), and frees it when the run or sweep ends."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._take(Path(config.hydra.run.dir), RUN_LOCK, "run")

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._free()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._take(Path(config.hydra.sweep.dir), SWEEP_LOCK, "sweep")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._free()

    def _take(self, folder: Path, name: str, what: str) -> None:
        if not owns_folders():
            return
        try:
            self.lock = acquire(folder, name, what)
        except FolderInUse as err:
            raise SystemExit(f"error: {err}") from None

    def __getstate__(self) -> dict:
        # the joblib launcher pickles Hydra's callbacks for its workers; the lock (a FileLock, with a thread
        # lock inside) stays with the process that holds the folder
        return {key: value for key, value in vars(self).items() if key != "lock"}

    def _free(self) -> None:
        lock = getattr(self, "lock", None)
        if lock is not None:
            release(lock)
            self.lock = None
