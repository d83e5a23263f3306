"""What a multirun needs beyond one run: the Optuna study, failed-job handling, each job's CPU share.
May import safety/; nothing of data, models or training."""
