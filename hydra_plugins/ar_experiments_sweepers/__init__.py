"""ar-experiments' Hydra sweepers (Hydra only loads sweeper plugins from the hydra_plugins package).

- `all_jobs` (the default of conf/hydra/default.yaml): Hydra's basic grid sweeper that
  runs every job even when some fail, then fails listing them; `sweep.fail_fast=true`
  stops at the first failure instead.
- `optuna_study` (used by conf/hparams_search/optuna.yaml): hydra-optuna-sweeper whose
  `n_trials` counts the whole stored study, so re-running a search continues it.
- `submitit_slurm.SlurmLauncher` (hydra/launcher=slurm): hydra-submitit-launcher's, with sacct's
  error lines in the sweep folder instead of on the console.
- `worker_exit`: both sweepers' joblib jobs end with the sweep's main process, so that a signal to
  the sweep interrupts them with their checkpoint and leaves no worker behind.
"""
