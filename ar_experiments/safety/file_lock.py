"""Lock files, on filelock: one helper for the run and sweep folder locks, the GPU slots and an Optuna study's creation.

A lock is filelock's `FileLock`: an `flock`, which the kernel releases however its owner ends, or, where the
filesystem has no `flock` (ENOSYS), filelock's `SoftFileLock` marker (pid, host, process start time), taken
over when its owner on this host is gone, never when on another host (docs/faults.md). Over filelock this
adds what the messages need: the owner's record (pid, host, start time, command line) written into a held
lock file and read back to name the owner, and `process_alive`, the one check of a recorded host and pid.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import filelock

from .redaction import redact_text


def process_alive(host: str | None, pid: Any) -> bool:
    """Whether the process `pid` on `host` may still run: another host's cannot be checked from here (yes)."""
    if host != socket.gethostname() or not isinstance(pid, int):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, under another user
        return True
    return True


class HeldLock:
    """A lock file this process holds; `release()` (or the process's end) frees it."""

    def __init__(self, path: Path, lock: filelock.BaseFileLock):
        self.path, self.lock = path, lock

    def release(self, remove: bool = False) -> None:
        """Free the lock; `remove`: delete the file too (while still held, so nobody else's file goes)."""
        if not self.lock.is_locked:
            return
        if remove and not _soft(self.lock):  # a soft marker is removed by its own release
            self.path.unlink(missing_ok=True)  # a waiter holding the old file finds it unlinked and retries
        self.lock.release()


def try_lock(path: Path, wait_s: float = 0.0) -> HeldLock | None:
    """Take `path` and write who holds it into it, or None when another live process holds it. `wait_s`: how
    long to keep trying; a lock removed on release needs a moment (a process that opened the file just before
    its owner removed it finds it gone and opens the new one)."""
    lock = filelock.FileLock(str(path), timeout=wait_s, poll_interval=0.05, thread_local=False)
    try:
        lock.acquire()
    except filelock.Timeout:
        return None
    _write_owner(lock)
    return HeldLock(path, lock)


@contextmanager
def waiting_for(path: Path) -> Iterator[HeldLock]:
    """Hold `path` for the block, waiting as long as another process holds it (a short critical section)."""
    lock = filelock.FileLock(str(path), timeout=-1, poll_interval=0.05, thread_local=False)
    with lock:
        yield HeldLock(path, lock)


def read_owner(path: Path) -> dict[str, Any]:
    """Who holds `path` as its owner recorded it ({} when unknown: no record, or one being written)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    try:
        owner = json.loads(text)
    except ValueError:  # a soft marker: "pid\nhost\n[start token]\n"
        lines = text.splitlines()
        return {"pid": int(lines[0]), "host": lines[1]} if len(lines) >= 2 and lines[0].isdigit() else {}
    return owner if isinstance(owner, dict) else {}


def describe_owner(owner: dict[str, Any]) -> str:
    """`pid 123 on host (since 2026-12-06 23:00:00: python -m ...)`, as far as the record says."""
    if not owner:
        return "another process that is just taking it"
    since = f" (since {owner['since']}: {owner.get('command')})" if "since" in owner else ""
    return f"pid {owner.get('pid')} on {owner.get('host')}{since}"


def _soft(lock: filelock.BaseFileLock) -> bool:
    """Whether filelock fell back to a soft marker for this lock (its `pid` is readable only then)."""
    try:
        lock.pid  # noqa: B018 - the property raises AttributeError on a native flock
    except AttributeError:
        return False
    return True


def _write_owner(lock: filelock.BaseFileLock) -> None:
    """The owner's record in the held file; a soft marker already records pid and host, which it needs as is."""
    if _soft(lock):
        return
    owner = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": redact_text(" ".join(sys.argv)[:300]),
    }
    # another descriptor of the same file: flock belongs to the lock's own open file, which this leaves alone
    handle = os.open(lock.lock_file, os.O_WRONLY)
    try:
        os.ftruncate(handle, 0)
        os.pwrite(handle, json.dumps(owner).encode(), 0)
        os.fsync(handle)
    finally:
        os.close(handle)
