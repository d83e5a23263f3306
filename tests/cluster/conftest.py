"""A real one-node SLURM cluster on this machine, for the cluster tests (all marked slow).

Debian's `slurm-wlm` and `munge` packages (see .ci/run): `munged` with a fresh key, then `slurmctld` and
`slurmd` with a minimal slurm.conf (one node with this machine's CPUs and memory, one partition, no
accounting), everything in a temporary folder, run as root. The daemons are stopped when the session ends;
the last check fails if one of them is still running. Without the binaries, or not as root, the tests skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

DAEMONS = ("munged", "slurmctld", "slurmd")


@dataclass
class Cluster:
    """How to reach the test cluster: its clients need `env` (SLURM_CONF)."""

    conf: Path
    env: dict[str, str]

    def run(self, *command: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=timeout, check=True)

    def wait_for_job(self, job_id: str, timeout: float = 600) -> None:
        """Until the job (or job array) has left the queue."""
        deadline = time.monotonic() + timeout
        while self.run("squeue", "-h", "-j", job_id).stdout.strip():
            if time.monotonic() > deadline:
                raise TimeoutError(f"SLURM job {job_id} still queued or running after {timeout} s")
            time.sleep(1)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _slurm_conf(folder: Path, munge_socket: Path) -> str:
    node = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
    name = node.split()[0].split("=", 1)[1]
    return "\n".join(
        [
            "ClusterName=tests",
            f"SlurmctldHost={name}(127.0.0.1)",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={munge_socket}",
            "SlurmUser=root",
            "SlurmdUser=root",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            f"StateSaveLocation={folder / 'state'}",
            f"SlurmdSpoolDir={folder / 'spool'}",
            f"SlurmctldPidFile={folder / 'slurmctld.pid'}",
            f"SlurmdPidFile={folder / 'slurmd.pid'}",
            f"SlurmctldLogFile={folder / 'slurmctld.log'}",
            f"SlurmdLogFile={folder / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "SchedulerType=sched/backfill",
            "AccountingStorageType=accounting_storage/none",
            "JobAcctGatherType=jobacct_gather/none",
            "JobCompType=jobcomp/none",
            "MpiDefault=none",
            "ReturnToService=2",
            "KillWait=30",  # SIGTERM to SIGKILL at a time limit or scancel, as on most clusters
            "SlurmdTimeout=60",
            f"{node} NodeAddr=127.0.0.1 State=UNKNOWN",
            f"PartitionName=tests Nodes={name} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO",
            "",
        ]
    )


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in reversed(processes):
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _running(pid_files: list[Path]) -> list[str]:
    alive = []
    for path in pid_files:
        if path.is_file():
            try:
                os.kill(int(path.read_text().split()[0]), 0)
                alive.append(path.stem)
            except (ProcessLookupError, ValueError):
                pass
    return alive


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory) -> Cluster:
    missing = [name for name in (*DAEMONS, "sbatch", "srun", "scancel") if shutil.which(name) is None]
    if missing:
        pytest.skip(f"no SLURM here ({', '.join(missing)} not found): apt-get install slurm-wlm munge")
    if os.geteuid() != 0:
        pytest.skip("the test cluster's daemons run as root (as in CI); run the cluster tests as root")
    folder = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool"):
        (folder / sub).mkdir()
    key, munge_socket = folder / "munge.key", folder / "munge.socket"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    conf = folder / "slurm.conf"
    conf.write_text(_slurm_conf(folder, munge_socket))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    common = {"env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    processes: list[subprocess.Popen] = []
    try:
        munge = [f"--socket={munge_socket}", f"--key-file={key}", f"--pid-file={folder / 'munged.pid'}"]
        munge += [f"--log-file={folder / 'munged.log'}", f"--seed-file={folder / 'munged.seed'}"]
        processes.append(subprocess.Popen(["munged", "--foreground", "--force", *munge], **common))
        while not munge_socket.exists():
            if processes[0].poll() is not None:
                pytest.fail(f"munged did not start: {(folder / 'munged.log').read_text()[-2000:]}")
            time.sleep(0.1)
        processes.append(subprocess.Popen(["slurmctld", "-D", "-i", "-f", str(conf)], **common))
        processes.append(subprocess.Popen(["slurmd", "-D", "-f", str(conf)], **common))
        cluster = Cluster(conf, env)
        deadline = time.monotonic() + 60
        while "idle" not in subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True).stdout:
            if time.monotonic() > deadline or any(process.poll() is not None for process in processes):
                logs = "".join(path.read_text()[-1500:] for path in folder.glob("slurm*.log"))
                pytest.fail(f"the test cluster did not come up in 60 s:\n{logs}")
            time.sleep(0.5)
        yield cluster
    finally:
        subprocess.run(["scancel", "--full", "--signal=KILL", "--user=root"], env=env, capture_output=True)
        _stop(processes)
    alive = _running([folder / f"{name}.pid" for name in DAEMONS])
    assert not alive, f"{', '.join(alive)} still running after the tests"
