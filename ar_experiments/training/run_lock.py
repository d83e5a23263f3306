"""One live process per run folder and per sweep folder: a lock file naming its owner.

Two jobs writing one folder corrupt each other silently: rows vanish from
`csv/metrics.csv`, a second job "resumes" from a `last.ckpt` the first is still
writing, both `results.json` say completed. So `train()` holds
`<run folder>/.run.lock` from before it reads the folder (resume planning)
until it has written its last file, and a multirun holds
`<sweep folder>/.sweep.lock` from before Hydra writes `multirun.yaml` until
the sweep ends. A second process for a held folder stops at once, naming the
owner (pid, host, start time, command line).

The lock is an advisory `flock` on the file, which the kernel releases when
its owner exits however it exits (an exception, SIGTERM, SIGKILL, a crash), so a
folder left by a dead job is taken over by the next one without anyone
deleting anything. The file holds the owner's pid and host for the message;
it is removed on a clean release. Where the filesystem offers no `flock`, the
pid and host decide: a lock whose owner on this host is gone is taken over, one
from another host is never. Under DDP only the launching process (or global
rank 0 of ranks started by SLURM or torchrun) takes the lock; the ranks it
starts write nothing that needs it.
"""

from __future__ import annotations

import atexit
import errno
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from ..config.checks import ConfigError

RUN_LOCK = ".run.lock"
SWEEP_LOCK = ".sweep.lock"


class FolderInUse(ConfigError):
    """The folder is held by another live process; the message names it."""


class FolderLock:
    """A held lock on `path`; `release()` (or the process's exit) frees it."""

    def __init__(self, path: Path, handle: int):
        self.path, self.handle = path, handle

    def release(self) -> None:
        if self.handle < 0:
            return
        _HELD.pop(self.path, None)
        try:
            if _same_file(self.handle, self.path):
                self.path.unlink()  # while still locked: a waiter that opened it sees it replaced and retries
        finally:
            os.close(self.handle)
            self.handle = -1


_HELD: dict[Path, FolderLock] = {}
"""Locks this process holds: taking one again (the Hydra callback, then train()) is re-entry, not a conflict."""


def acquire(folder: Path, name: str = RUN_LOCK, what: str = "run") -> FolderLock:
    """Take `folder`/`name` for this process (or return the lock it already holds); FolderInUse names a live owner."""
    path = (folder / name).resolve()
    if path in _HELD:
        return _HELD[path]
    folder.mkdir(parents=True, exist_ok=True)
    for _ in range(100):  # the file may be replaced between open and lock: then try again
        handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            locked = _flock(handle)
            if locked is None:  # no flock on this filesystem: the recorded pid decides
                locked = not _owner_alive(_read_owner(path))
            if not locked:
                raise FolderInUse([_in_use_message(folder, what, _read_owner(path))])
            if not _same_file(handle, path):
                os.close(handle)
                continue
            _write_owner(handle)
        except BaseException:
            os.close(handle)
            raise
        lock = _HELD[path] = FolderLock(path, handle)
        return lock
    raise FolderInUse([f"{folder}: its lock file {path} keeps being replaced; is another job starting there?"])


@atexit.register
def _release_all() -> None:
    """A run that ends by SystemExit (a config error) skips Hydra's end callbacks: free its folders here."""
    for lock in list(_HELD.values()):
        lock.release()


@contextmanager
def holding(folder: Path, name: str = RUN_LOCK, what: str = "run") -> Iterator[FolderLock | None]:
    """The folder's lock for the block; None in a process that does not own folders (a DDP rank).

    A lock this process already held before the block stays held after it."""
    if not owns_folders():
        yield None
        return
    held_before = (folder / name).resolve() in _HELD
    lock = acquire(folder, name, what)
    try:
        yield lock
    finally:
        if not held_before:
            lock.release()


def owns_folders() -> bool:
    """False in DDP ranks other than the launching process or global rank 0 (the ranks distributed.py starts
    never get here: they run the fit only, not train() or Hydra)."""
    # torchrun sets RANK; SLURM tasks of one job (srun --ntasks=N) carry SLURM_PROCID
    tasks = os.environ.get("SLURM_NTASKS", "1")
    rank = os.environ.get("RANK") or (os.environ.get("SLURM_PROCID") if tasks.isdigit() and int(tasks) > 1 else None)
    return not rank or not rank.isdigit() or int(rank) == 0


def _flock(handle: int) -> bool | None:
    """True: locked; False: held by another; None: the filesystem has no flock."""
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        if err.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
            return None
        raise
    return True


def _same_file(handle: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(handle), os.stat(path))
    except FileNotFoundError:
        return False


def _write_owner(handle: int) -> None:
    owner = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": " ".join(sys.argv)[:300],
    }
    from ..safety.redaction import redact_text

    owner["command"] = redact_text(owner["command"])
    os.ftruncate(handle, 0)
    os.pwrite(handle, json.dumps(owner).encode(), 0)
    os.fsync(handle)


def _read_owner(path: Path) -> dict[str, Any]:
    try:
        owner = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


def _owner_alive(owner: dict[str, Any]) -> bool:
    """Whether the recorded owner may still run: unknown, on another host, or a live pid here."""
    pid, host = owner.get("pid"), owner.get("host")
    if not isinstance(pid, int) or host != socket.gethostname():
        return bool(owner)  # another host's process cannot be checked from here: assume it runs
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _in_use_message(folder: Path, what: str, owner: dict[str, Any]) -> str:
    if owner:
        who = f"pid {owner.get('pid')} on {owner.get('host')} (since {owner.get('since')}: {owner.get('command')})"
    else:
        who = "another process that is just taking it"
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

    def _free(self) -> None:
        lock = getattr(self, "lock", None)
        if lock is not None:
            lock.release()
            self.lock = None
