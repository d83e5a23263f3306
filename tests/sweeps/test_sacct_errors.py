"""sacct's error lines (a cluster without job accounting) go to the sweep folder's sacct.log, not to the console,
while submitit still gets sacct's exit status and table (a stand-in sacct on PATH plays the cluster)."""

from __future__ import annotations

import os

import pytest

NO_ACCOUNTING = "Slurm accounting storage is disabled"  # what sacct writes on the test cluster


@pytest.fixture
def sacct(tmp_path, monkeypatch):
    """sacct(script) puts a `sacct` running the shell `script` first on PATH."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")

    def install(script: str) -> None:
        (folder / "sacct").write_text(f"#!/bin/sh\n{script}\n")
        (folder / "sacct").chmod(0o755)

    return install


def test_sacct_errors_go_to_the_sweep_folder_not_the_console_and_its_states_still_reach_submitit(
    sacct, tmp_path, monkeypatch, capfd
):
    from submitit.slurm.slurm import SlurmJob

    from ar_experiments.sweeps.sacct_errors import send_sacct_errors_to

    monkeypatch.setattr(SlurmJob, "watcher", SlurmJob.watcher)  # the class-wide watcher comes back afterwards
    sacct(f"echo '{NO_ACCOUNTING}' >&2; exit 1")
    log_file = send_sacct_errors_to(tmp_path)
    watcher = SlurmJob.watcher
    watcher.register_job("42")
    for _ in range(3):  # three polls
        watcher.update()
    assert NO_ACCOUNTING not in capfd.readouterr().err
    assert log_file.read_text().splitlines() == [NO_ACCOUNTING] * 3
    assert watcher.get_state("42", mode="cache") == "UNKNOWN"  # submitit saw the failure: no state
    sacct("echo 'JobID|State|NodeList'; echo '42|COMPLETED|node1'")  # a cluster with accounting
    watcher.update()
    assert watcher.get_state("42", mode="cache") == "COMPLETED"
    assert send_sacct_errors_to(tmp_path / "next") == tmp_path / "next" / "sacct.log"
    assert SlurmJob.watcher is watcher, "a later batch keeps the watcher, with its jobs"
