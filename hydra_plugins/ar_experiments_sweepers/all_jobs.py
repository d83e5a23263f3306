"""A grid sweeper whose sweeps survive failed jobs.

It subclasses Hydra's BasicSweeper, which lives in `hydra._internal` (Hydra 1.3 has no public grid
sweeper to extend), and keeps only what no public option does: BasicSweeper reads every job's
`return_value` after each batch, so the first failed job ends the sweep; here the launcher is wrapped
(sweeps/failures.py) so every job runs and the failures are listed at the end, and the sweep writes
its progress lines and progress.json. Every job's config is composed before the first job starts (not
batch by batch), and a job whose multi-device combination cannot work stops the command there
(training/sweep_check.py). A signal to a joblib sweep ends it without leaving its workers behind
(worker_exit.py). Parsing the grid, batching (`max_batch_size`) and launching stay BasicSweeper's.
"""

from dataclasses import dataclass
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper, BasicSweeperConf
from hydra.core.config_store import ConfigStore
from omegaconf import II

from ar_experiments.sweeps.failures import FailureCollector
from ar_experiments.sweeps.progress import watch_sweep
from ar_experiments.sweeps.time_left import job_kind

from .worker_exit import ending_with_the_sweep, exit_at_once_on_stop_signals


class AllJobsSweeper(BasicSweeper):
    """Hydra's BasicSweeper; a failed job is reported at the end instead of ending the sweep.

    fail_fast=True runs one job per batch and stops at the first failure, as
    Hydra's own sweeper does with max_batch_size=1.
    """

    def __init__(self, max_batch_size: int | None = None, params: dict | None = None, fail_fast: bool = False):
        super().__init__(max_batch_size=1 if fail_fast and max_batch_size is None else max_batch_size, params=params)
        self.fail_fast = fail_fast

    def setup(self, *, hydra_context, task_function, config) -> None:
        task_function = ending_with_the_sweep(task_function, config)
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self.launcher = FailureCollector(self.launcher, fail_fast=self.fail_fast)

    def sweep(self, arguments: list[str]) -> Any:
        from ar_experiments.config.checks import ConfigError  # here: Hydra imports this module for every command

        try:
            # progress lines and <sweep>/progress.json while the jobs run (ar_experiments/sweeps/progress.py)
            with watch_sweep(self.config) as self.progress, exit_at_once_on_stop_signals(self.config):
                returns = super().sweep(arguments)
                self.launcher.raise_if_failed()
        except ConfigError as err:  # a job that cannot run (get_job_batch): its line, as a single run says it
            raise SystemExit(f"error: {err}") from None
        return returns

    def get_job_batch(self):
        if self.batch_index == 0:  # the jobs are known now: every batch of the grid, and each one's kind
            from ar_experiments.training.sweep_check import refuse_impossible_jobs

            jobs = [overrides for batch in self.overrides for overrides in batch]
            # every job's config, composed before any starts (Hydra's validate_batch_is_legal did it per batch)
            composed = [self.hydra_context.config_loader.load_sweep_config(self.config, list(o)) for o in jobs]
            refuse_impossible_jobs(list(zip(jobs, composed)))
            default = (str(self.config.model.name), int(self.config.frames))
            self.progress.set_total(len(jobs), [job_kind(overrides, default) for overrides in jobs])
        return super().get_job_batch()

    def validate_batch_is_legal(self, batch) -> None:
        """Every job was composed before the first batch (get_job_batch): a job that does not compose stopped the
        sweep there."""


@dataclass
class AllJobsSweeperConf(BasicSweeperConf):
    _target_: str = "hydra_plugins.ar_experiments_sweepers.all_jobs.AllJobsSweeper"
    fail_fast: bool = II("sweep.fail_fast")  # the training config's switch (conf/train.yaml)


ConfigStore.instance().store(group="hydra/sweeper", name="all_jobs", node=AllJobsSweeperConf, provider="ar_experiments")
