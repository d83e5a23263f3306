"""Checks of a training config before anything runs, and the resolvers the YAML files use.
May import data/ and models/ (their option tables) and sweeps/ (a job's CPU share); nothing of training."""
