"""One run: the LightningModule, callbacks, loggers, resume, interruption, DDP start, the run folder's
lock and the writer of the run record (results.json). May import data/, models/, evaluation/, config/, sweeps/,
safety/ and record/ (the record's keys)."""
