"""A job's share of the machine when its launcher runs several at once (sweeps/cpu_share.py), in-process."""

from __future__ import annotations

import os

from ar_experiments.sweeps import cpu_share


def test_jobs_run_at_once_split_the_cores_and_quiet_the_shared_console(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    for launcher, threads, alone in [
        ({"n_jobs": 4}, 4, False),  # joblib: 4 jobs share 16 cores and one console
        ({"n_jobs": -1}, 1, False),  # joblib: one job per core
        ({"n_jobs": 1}, 16, True),
        ({"cpus_per_task": 6, "tasks_per_node": 1}, 6, True),  # submitit: a task of its own
        ({}, None, True),  # Hydra's basic launcher, or no Hydra at all
    ]:
        monkeypatch.setattr(cpu_share, "hydra_launcher", lambda launcher=launcher: launcher)
        assert cpu_share.threads_per_job() == threads, launcher
        assert cpu_share.progress_bar() is alone, launcher
        assert cpu_share.console_log_level() == ("INFO" if alone else "WARNING"), launcher
