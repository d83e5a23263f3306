"""Several Optuna searches on one study (issue 18, item 6): safe creation, n_trials that holds."""

from __future__ import annotations

import multiprocessing
import socket
import subprocess
import sys
import time

import optuna
import pytest

from ar_experiments.sweeps.optuna_concurrency import (
    OWNER,
    SURPLUS,
    StudyFull,
    keep_within_n_trials,
    open_study,
    stored_trials,
)

SEARCHES = 3


def open_at(storage: str, start: float) -> str:
    while time.time() < start:  # all at once: the race is in creating the tables
        pass
    try:
        open_study("race", storage, ["maximize"])
    except Exception as err:  # noqa: BLE001 - the test reports whatever a search would have died of
        return f"{type(err).__name__}: {err}"
    return "ok"


@pytest.mark.slow  # spawns several Python processes that race to create one study
def test_searches_creating_one_new_study_at_once_all_open_it(tmp_path):
    """Unguarded, one of several often dies with `table studies already exists` or an alembic IntegrityError."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    with multiprocessing.get_context("spawn").Pool(SEARCHES) as pool:
        outcomes = pool.starmap(open_at, [(storage, time.time() + 2)] * SEARCHES)
    assert outcomes == ["ok"] * SEARCHES
    assert len(optuna.get_all_study_summaries(storage)) == 1


def test_a_study_opens_in_a_folder_not_made_yet(tmp_path):
    open_study("new", f"sqlite:///{tmp_path / 'optuna' / 'x3d_m-8f-split1' / 'optuna.db'}", ["maximize"])
    assert (tmp_path / "optuna" / "x3d_m-8f-split1" / "optuna.db").is_file()


@pytest.fixture
def dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_trials_past_n_trials_are_never_run_whoever_asked_first(tmp_path, dead_pid):
    study = open_study("shared", f"sqlite:///{tmp_path / 'optuna.db'}", ["maximize"])
    host = socket.gethostname()
    for value in (0.5, 0.6):
        study.tell(study.ask(), value)
    another_search = study.ask()  # running in a live process (this test's parent)
    another_search.set_user_attr(OWNER, f"{host}:{__import__('os').getppid()}")
    killed_search = study.ask()  # running when its search was killed: does not count
    killed_search.set_user_attr(OWNER, f"{host}:{dead_pid}")

    asked = [study.ask() for _ in range(3)]
    kept = keep_within_n_trials(asked, n_trials=4)
    assert [trial.number for trial in kept] == [4], "2 finished + 1 running elsewhere + this one = 4"
    surplus = [trial for trial in study.get_trials() if trial.user_attrs.get(SURPLUS)]
    assert [trial.number for trial in surplus] == [5, 6]
    assert {trial.state for trial in surplus} == {optuna.trial.TrialState.FAIL}
    study.tell(kept[0], 0.7)
    assert stored_trials(study) == 3, "surplus trials never count"
    with pytest.raises(StudyFull):
        keep_within_n_trials([study.ask()], n_trials=4)
