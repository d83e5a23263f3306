"""hydra/launcher=slurm: hydra-submitit-launcher's SLURM launcher, whose polls leave the console alone.

Everything is the library's; only sacct's own error lines (a cluster without job accounting writes one at each
poll) go to the sweep folder's sacct.log (ar_experiments/sweeps/sacct_errors.py).
"""

from pathlib import Path

from hydra_plugins.hydra_submitit_launcher import submitit_launcher


class SlurmLauncher(submitit_launcher.SlurmLauncher):
    def launch(self, job_overrides, initial_job_idx):
        from ar_experiments.sweeps.sacct_errors import send_sacct_errors_to  # submitit: imported only now

        send_sacct_errors_to(Path(str(self.config.hydra.sweep.dir)))
        return super().launch(job_overrides, initial_job_idx)
