"""The `optuna_study` sweeper: hydra-optuna-sweeper that continues its stored study, and that first checks the
configurations its search space can produce (training/sweep_check.py): one that cannot run stops the command
before the study is opened and before any trial starts, as the grid sweeper (all_jobs.py) does for its jobs."""

from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper
from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf
from omegaconf import II

from .worker_exit import ending_with_the_sweep, exit_at_once_on_stop_signals


class OptunaStudySweeper(Sweeper):
    """Thin plugin front; the work is in ar_experiments.sweeps.optuna_study (imported only when a search runs,
    so optuna's import cost is not paid by every command)."""

    def __init__(self, **settings: Any):
        from ar_experiments.sweeps.optuna_study import ContinuingStudySweeper

        self.sweeper = ContinuingStudySweeper(**settings)

    def setup(self, *, hydra_context, task_function, config) -> None:
        task_function = ending_with_the_sweep(task_function, config)  # a joblib sweep's workers (worker_exit.py)
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> None:
        from ar_experiments.config.checks import ConfigError
        from ar_experiments.training.sweep_check import refuse_impossible_trials

        try:
            refuse_impossible_trials(self.sweeper, arguments)
        except ConfigError as err:  # its line, as a single run says it
            raise SystemExit(f"error: {err}") from None
        with exit_at_once_on_stop_signals(self.sweeper.config):
            return self.sweeper.sweep(arguments)


@dataclass
class OptunaStudySweeperConf(OptunaSweeperConf):
    _target_: str = "hydra_plugins.ar_experiments_sweepers.optuna_study.OptunaStudySweeper"
    fail_fast: bool = II("sweep.fail_fast")  # the training config's switch (conf/train.yaml)


ConfigStore.instance().store(
    group="hydra/sweeper", name="optuna_study", node=OptunaStudySweeperConf, provider="ar_experiments"
)
