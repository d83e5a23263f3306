"""One Optuna study, several searches at once: safe creation, and `n_trials` that holds (docs/sweeps.md).

Two processes opening a new SQLite study at the same moment both create its tables, and one dies
(`table studies already exists`): `open_study` serialises the opening with a lock file beside an SQLite
database and retries any storage's creation race. A trial is *surplus*, never run, when the trials numbered
below it that count already reach `n_trials`; as Optuna numbers trials atomically, whether trial k is
surplus depends only on trials numbered below it, so two searches agree whichever checks first.
"""

from __future__ import annotations

import os
import socket
import time
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import optuna

from ..safety.file_lock import process_alive, waiting_for

SQLITE_PREFIX = "sqlite:///"
SURPLUS = "surplus"
OWNER = "owner"
ATTEMPTS = 10
OWNERLESS_GRACE = timedelta(minutes=1)
"""A running trial not yet marked with its owner (between ask and launch) counts for this long."""


class StudyFull(Exception):
    """Every trial just asked is surplus: other searches brought the study to n_trials."""


@contextmanager
def _creation_lock(storage: Any):
    """Exclusive while opening an SQLite study (a no-op for other storages). filelock makes the lock file's
    folder, the database's, which SQLite does not make."""
    if not (isinstance(storage, str) and storage.startswith(SQLITE_PREFIX)):
        yield
        return
    with waiting_for(Path(storage[len(SQLITE_PREFIX) :] + ".lock")):
        yield


def open_study(study_name: str, storage: Any, directions: list, **options: Any) -> optuna.Study:
    """`optuna.create_study(..., load_if_exists=True)`, safe when several processes do it at once."""
    import sqlalchemy.exc

    for attempt in range(ATTEMPTS):
        try:
            with _creation_lock(storage):
                return optuna.create_study(
                    study_name=study_name, storage=storage, directions=directions, load_if_exists=True, **options
                )
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError):
            # another process is creating the same tables or study right now: it will be there in a moment
            if attempt == ATTEMPTS - 1:
                raise
            time.sleep(0.1 * (attempt + 1))
    raise AssertionError("unreachable")


def counts_toward_n_trials(trial: optuna.trial.FrozenTrial, now: datetime | None = None) -> bool:
    """Completed, failed or pruned (not surplus), or running in a live process."""
    if trial.user_attrs.get(SURPLUS):
        return False
    if trial.state.is_finished():
        return True
    if trial.state != optuna.trial.TrialState.RUNNING:
        return False
    owner = trial.user_attrs.get(OWNER)
    if owner is None:
        started = trial.datetime_start
        return started is None or (now or datetime.now()) - started < OWNERLESS_GRACE
    host, _, pid = owner.rpartition(":")  # "host:pid"
    return process_alive(host, int(pid) if pid.isdigit() else None)


def stored_trials(study: optuna.Study) -> int:
    """Trials of the stored study that count toward n_trials (finished ones, surplus excluded)."""
    return sum(trial.state.is_finished() and not trial.user_attrs.get(SURPLUS) for trial in study.trials)


def keep_within_n_trials(trials: list[optuna.trial.Trial], n_trials: int) -> list[optuna.trial.Trial]:
    """The trials just asked that fit in `n_trials`; the surplus ones are told as failed (never run); StudyFull
    when none fits."""
    if not trials:
        return trials
    for trial in trials:
        trial.set_user_attr(OWNER, f"{socket.gethostname()}:{os.getpid()}")
    study = trials[0].study
    counting = [t.number for t in study.get_trials(deepcopy=False) if counts_toward_n_trials(t)]
    ordered = sorted(trials, key=lambda t: t.number)
    kept = [trial for trial in ordered if sum(number < trial.number for number in counting) < n_trials]
    surplus = [trial for trial in ordered if trial not in kept]
    for trial in surplus:
        trial.set_user_attr(SURPLUS, f"hydra.sweeper.n_trials={n_trials} reached by other searches; never run")
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    if not kept:
        raise StudyFull(f"the study holds hydra.sweeper.n_trials={n_trials} trials (some run by other searches)")
    return kept
