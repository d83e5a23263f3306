"""The one lock helper (issue 25): filelock underneath, the owner named, and the path where a filesystem has no
flock (issue 26: no test walked it)."""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import subprocess
import sys
import threading

import pytest

from ar_experiments.safety.file_lock import describe_owner, process_alive, read_owner, try_lock
from ar_experiments.training.run_lock import FolderInUse, acquire


@pytest.fixture
def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture
def no_flock(monkeypatch):
    """A filesystem without flock (some parallel and FUSE filesystems): every flock call fails with ENOSYS."""

    def flock(fd, operation):
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(fcntl, "flock", flock)


def test_a_held_lock_names_its_owner_and_is_free_again_once_released(tmp_path):
    path = tmp_path / "a.lock"
    held = try_lock(path)
    assert try_lock(path) is None, "a second holder, even in this process, is refused"
    owner = read_owner(path)
    assert (owner["pid"], owner["host"]) == (os.getpid(), socket.gethostname())
    assert owner["command"].split()[0] == sys.argv[0], "the owner's command line is this process's"
    assert describe_owner(owner).startswith(f"pid {os.getpid()} on {socket.gethostname()} (since ")
    held.release(remove=True)
    assert not path.exists()
    try_lock(path).release()


def test_a_lock_removed_on_release_passes_to_the_process_waiting_for_it(tmp_path):
    path = tmp_path / "a.lock"
    first = try_lock(path)
    ending = threading.Timer(0.2, first.release, kwargs={"remove": True})
    ending.start()
    second = try_lock(path, wait_s=10)
    ending.join()  # the first holder's release is over
    assert second is not None and read_owner(path)["pid"] == os.getpid()
    assert try_lock(path) is None, "the file there is the one the second holder holds, not a removed one"


def test_without_flock_the_marker_decides_a_live_owner_keeps_it(tmp_path, no_flock):
    path = tmp_path / "a.lock"
    held = try_lock(path)
    assert held is not None and read_owner(path) == {"pid": os.getpid(), "host": socket.gethostname()}
    assert try_lock(path) is None, "the marker's owner runs: the lock stays its own"
    with pytest.raises(FolderInUse, match=rf"in use by another run: pid {os.getpid()} on {socket.gethostname()}"):
        acquire(tmp_path, "a.lock")  # the run lock's message names the owner from the marker
    held.release(remove=True)
    assert not path.exists()


def test_without_flock_a_dead_owners_marker_is_taken_over_another_hosts_never(tmp_path, no_flock, dead_pid):
    dead, remote = tmp_path / "dead.lock", tmp_path / "remote.lock"
    dead.write_text(f"{dead_pid}\n{socket.gethostname()}\n")  # a run killed outright leaves its marker
    remote.write_text(f"{os.getpid()}\nanother-host\n")  # that host's process cannot be checked from here
    held = try_lock(dead)
    assert held is not None and read_owner(dead)["pid"] == os.getpid()
    assert try_lock(remote) is None
    assert read_owner(remote) == {"pid": os.getpid(), "host": "another-host"}


def test_process_alive_checks_this_hosts_pids_and_trusts_other_hosts(dead_pid):
    host = socket.gethostname()
    assert process_alive(host, os.getpid())
    assert not process_alive(host, dead_pid)
    assert process_alive("another-host", dead_pid), "no host can tell whether another's process runs"
