"""A real two-node SLURM cluster on this machine, for the cluster tests (all marked slow).

Debian's `slurm-wlm` and `munge` packages (see .ci/run): `munged` with a fresh key, then `slurmctld` and one
`slurmd` per node (`slurmd -N <node>`, each on a port of its own) with a minimal slurm.conf: two nodes, one
partition over both, no accounting, everything in a temporary folder, run as root. The two nodes are two names
of this machine that resolve here (`localhost` and its host name, both at 127.0.0.1), so that a job of several
nodes finds its first node's address the way it does on a real cluster (Lightning resolves the first name of
SLURM_NODELIST). Each node declares all of the machine's CPUs and memory: the nodes overlap on one machine, so
a two-node job gets twice the cores there are, which the tests' tiny runs do not notice.
The daemons are stopped when the session ends; the last check fails if one of them is still running.
Without the binaries, or not as root, the tests skip.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

DAEMONS = ("munged", "slurmctld", "slurmd")
# the first job's id, drawn per cluster: Lightning takes a job's DDP port from its id (15000 + its last 4
# digits), so clusters of tests running at the same time (pytest-xdist, other checkouts) would share ports
FIRST_JOB_IDS = (1000, 9000)


@dataclass
class Cluster:
    """How to reach the test cluster: its clients need `env` (SLURM_CONF); `nodes`: its nodes' names."""

    conf: Path
    env: dict[str, str]
    nodes: list[str]

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


def node_names() -> list[str]:
    """Two names of this machine that resolve to it; the host name first (slurmctld's)."""
    names = list(dict.fromkeys([socket.gethostname(), "localhost", socket.getfqdn()]))
    return [name for name in names if _resolves(name)][:2]


def _resolves(name: str) -> bool:
    try:
        return bool(socket.gethostbyname(name))
    except OSError:
        return False


def _slurm_conf(folder: Path, munge_socket: Path, nodes: list[str]) -> str:
    # "NodeName=<host> CPUs=... RealMemory=...": this machine's CPUs and memory, declared by every node
    hardware = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
    hardware = hardware.split(maxsplit=1)[1]
    return "\n".join(
        [
            "ClusterName=tests",
            f"SlurmctldHost={socket.gethostname()}(127.0.0.1)",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={munge_socket}",
            "SlurmUser=root",
            "SlurmdUser=root",
            f"SlurmctldPort={_free_port()}",
            f"FirstJobId={random.randint(*FIRST_JOB_IDS)}",
            f"StateSaveLocation={folder / 'state'}",
            f"SlurmdSpoolDir={folder / 'spool' / '%n'}",
            f"SlurmctldPidFile={folder / 'slurmctld.pid'}",
            f"SlurmdPidFile={folder / 'slurmd-%n.pid'}",
            f"SlurmctldLogFile={folder / 'slurmctld.log'}",
            f"SlurmdLogFile={folder / 'slurmd-%n.log'}",
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
            *(f"NodeName={node} {hardware} NodeAddr=127.0.0.1 Port={_free_port()} State=UNKNOWN" for node in nodes),
            f"PartitionName=tests Nodes={','.join(nodes)} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO",
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
    nodes = node_names()
    if len(nodes) < 2:
        pytest.skip(f"the two-node test cluster needs two names of this machine that resolve here; found {nodes}")
    folder = tmp_path_factory.mktemp("slurm")
    (folder / "state").mkdir()
    for node in nodes:
        (folder / "spool" / node).mkdir(parents=True)
    key, munge_socket = folder / "munge.key", folder / "munge.socket"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    conf = folder / "slurm.conf"
    conf.write_text(_slurm_conf(folder, munge_socket, nodes))
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
        for node in nodes:
            processes.append(subprocess.Popen(["slurmd", "-D", "-N", node, "-f", str(conf)], **common))
        cluster = Cluster(conf, env, nodes)
        deadline = time.monotonic() + 60
        while cluster.run("sinfo", "-h", "-N", "-o", "%T").stdout.split() != ["idle"] * len(nodes):
            if time.monotonic() > deadline or any(process.poll() is not None for process in processes):
                logs = "".join(path.read_text()[-1500:] for path in folder.glob("slurm*.log"))
                pytest.fail(f"the test cluster did not come up in 60 s:\n{logs}")
            time.sleep(0.5)
        yield cluster
    finally:
        subprocess.run(["scancel", "--full", "--signal=KILL", "--user=root"], env=env, capture_output=True)
        _stop(processes)
    alive = _running([folder / "munged.pid", folder / "slurmctld.pid", *folder.glob("slurmd-*.pid")])
    assert not alive, f"{', '.join(alive)} still running after the tests"
