"""hydra-optuna-sweeper, changed where a long search needs it (see docs/sweeps.md).

- `n_trials` is the size the stored study should reach: running the same command
  again continues the study (only the missing trials run), and job folders are
  numbered by trial, so a re-run in the same sweep folder adds folders instead
  of overwriting them.
- A failed trial (its job raised, or returned NaN) is told to Optuna as FAIL with
  the error and the job folder in the trial's user attributes; the search goes on
  unless `max_failure_rate` (0 with `sweep.fail_fast=true`) is exceeded.
- Parameters that exist for one choice only (`conditional_params`, `suggest_conditional_params`).
- An SQLite storage's folder is created before the study is opened (with its creation lock beside it).

It subclasses the plugin's `OptunaSweeperImpl` (in its private `_impl` module; the plugin's public
surface is its config) and keeps only what no option of the plugin does: the study size above, the
trials' job folders and errors, the list of failed jobs at the end, and progress lines. What the plugin
does publicly stays its own: opening the study with `load_if_exists`, the search space, telling Optuna
FAIL for a job that raised, and stopping past `max_failure_rate`.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import optuna
from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl, create_optuna_distribution_from_override
from omegaconf import DictConfig, OmegaConf

from .failures import FAIL_FAST, JobFailure, SweepFailed, failure_of, job_folder, job_number
from .optuna_concurrency import StudyFull, keep_within_n_trials, open_study, stored_trials

log = logging.getLogger(__name__)


def trial_failure(job_return: Any) -> JobFailure | None:
    """A job that raised, or whose objective is not a number, is a failed trial."""
    failure = failure_of(job_return)
    if failure is not None:
        return failure
    value = job_return.return_value
    if isinstance(value, float) and math.isnan(value):
        return JobFailure(job_number(job_return), job_folder(job_return), "the objective is NaN (no validation score)")
    return None


class ContinuingStudySweeper(OptunaSweeperImpl):
    def __init__(self, *args: Any, fail_fast: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if fail_fast:
            self.max_failure_rate = 0.0
        self.fail_fast = fail_fast
        self.asked: list[optuna.trial.Trial] = []
        self.failures: list[JobFailure] = []
        self.launched = 0

    def setup(self, *, hydra_context, task_function, config) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self.launcher = _TrialRecorder(self.launcher, self)

    def _configure_trials(self, trials, search_space_distributions, fixed_params):
        if self.storage is not None:  # other searches may share the study: run only what n_trials leaves
            trials = keep_within_n_trials(list(trials), self.study_size)
        self.asked = list(trials)  # the batch about to be launched, for _TrialRecorder
        return super()._configure_trials(trials, search_space_distributions, fixed_params)

    def sweep(self, arguments: list[str]) -> None:
        from .progress import watch_sweep

        if self.storage is not None:
            self._continue_stored_study()
        with watch_sweep(self.config, total=self.n_trials):  # progress lines and <sweep>/progress.json
            self._sweep(arguments)

    def _sweep(self, arguments: list[str]) -> None:
        try:
            super().sweep(arguments)
        except StudyFull as full:
            log.info("%s; this search stops", full)
        except Exception as err:
            if not self.failures:
                raise
            if self._completed_trials() == 0:
                raise SweepFailed(self.failures, self.launched, stopped_because="no completed trial") from err
            reason = FAIL_FAST if self.fail_fast else f"hydra.sweeper.max_failure_rate={self.max_failure_rate}"
            raise SweepFailed(self.failures, self.launched, stopped_because=reason) from err
        if self.failures:
            log.warning("%s", SweepFailed(self.failures, self.launched))

    def _continue_stored_study(self) -> None:
        if not self.study_name:
            raise ValueError(
                "hydra.sweeper.study_name is null with a storage set: a study can only be continued by its name; "
                "set hydra.sweeper.study_name=NAME"
            )
        study = self._study()
        finished = stored_trials(study)
        target = self.study_size = self.n_trials
        self.n_trials = max(0, target - finished)
        self.job_idx = len(study.trials)  # job folders continue the trial numbering
        log.info(
            "Study %s in %s holds %d finished trials; running %d more to reach hydra.sweeper.n_trials=%d",
            self.study_name,
            self.storage,
            finished,
            self.n_trials,
            target,
        )

    def _study(self) -> optuna.Study:
        return open_study(self.study_name, self.storage, self._get_directions())

    def _completed_trials(self) -> int:
        if self.storage is None:
            return 0
        return sum(trial.state == optuna.trial.TrialState.COMPLETE for trial in self._study().trials)


class _TrialRecorder:
    """Launcher in front of the real one: notes each trial's job folder, and the error of a failed one."""

    def __init__(self, launcher: Any, sweeper: ContinuingStudySweeper):
        self.launcher = launcher
        self.sweeper = sweeper

    def launch(self, job_overrides, initial_job_idx: int):
        returns = self.launcher.launch(job_overrides, initial_job_idx=initial_job_idx)
        self.sweeper.launched += len(returns)
        for trial, job_return in zip(self.sweeper.asked, returns):
            trial.set_user_attr("job_dir", job_folder(job_return))
            failure = trial_failure(job_return)
            if failure is not None:
                # user attributes can only be set while the trial runs: before the sweeper tells FAIL
                trial.set_user_attr("error", failure.error)
                self.sweeper.failures.append(failure)
                log.error("trial %d failed: %s", trial.number, failure)
        return returns


def suggest_conditional_params(cfg: DictConfig, trial: Any) -> None:
    """The sweeper's `custom_search_space`: sample the parameters that exist only for the values this trial
    chose (`conditional_params`: momentum for SGD alone; docs/sweeps.md)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    for choice_key, branches in (cfg.get("conditional_params") or {}).items():
        chosen = _chosen(cfg, trial, choice_key)
        for name, expression in (branches.get(chosen) or {}).items():
            override = parser.parse_override(f"{name}={expression}")
            trial._suggest(name, create_optuna_distribution_from_override(override))


def _chosen(cfg: DictConfig, trial: Any, key: str) -> str:
    """The trial's value of `key`: sampled, fixed on the command line, or the config's default choice."""
    if key in trial.params:
        return str(trial.params[key])
    if key in trial.user_attrs:  # the sweeper stores fixed values (e.g. optimizer=sgd) as user attributes
        return str(trial.user_attrs[key])
    default = OmegaConf.select(cfg, f"hydra.runtime.choices.{key}", default=None)
    return str(default if default is not None else OmegaConf.select(cfg, key, default=""))
