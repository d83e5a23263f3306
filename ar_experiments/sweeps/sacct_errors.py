"""sacct's own error lines go to the sweep folder's sacct.log, not to the sweep's console (docs/clusters.md).

On a cluster without job accounting every poll's sacct call fails and prints "Slurm accounting storage is
disabled". Only stderr is redirected: sacct's exit status and its table reach submitit as before. Imported
by the SLURM launcher when it launches (hydra_plugins/ar_experiments_sweepers/submitit_slurm.py), so no other
command pays for importing submitit.
"""

from __future__ import annotations

from pathlib import Path

from submitit.slurm.slurm import SlurmInfoWatcher, SlurmJob

SACCT_LOG = "sacct.log"  # in the sweep folder


class SacctErrorsToFile(SlurmInfoWatcher):
    """submitit's SLURM job watcher, whose sacct calls append their stderr to `log_file`."""

    def __init__(self, log_file: Path, delay_s: int):
        super().__init__(delay_s=delay_s)
        self.log_file = log_file

    def _make_command(self) -> list[str] | None:
        command = super()._make_command()
        if command is None:
            return None
        # `exec` leaves sacct's exit status to submitit, which reads a failure as "no accounting"
        return ["sh", "-c", 'exec "$@" 2>>"$0"', str(self.log_file), *command]


def send_sacct_errors_to(sweep_dir: Path) -> Path:
    """From now on the SLURM jobs' sacct errors go to `sweep_dir`/sacct.log; returns that file."""
    log_file = sweep_dir / SACCT_LOG
    if isinstance(SlurmJob.watcher, SacctErrorsToFile):  # a later batch of the same sweep
        SlurmJob.watcher.log_file = log_file
    else:
        SlurmJob.watcher = SacctErrorsToFile(log_file, SlurmJob.watcher._delay_s)
    return log_file
