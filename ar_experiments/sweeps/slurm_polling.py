"""One line, not one per poll, when a SLURM cluster keeps no job accounting.

The submitit launcher (hydra/launcher=slurm) asks `sacct` for its jobs' states at every poll; on a
cluster without accounting (no slurmdbd) each call fails, and submitit logs "Bypassing sacct error"
every time: hundreds of lines in a long sweep. It still sees each job end through the job's result
file, so the first warning is kept, with what it means, and the repeats are dropped. A cluster with
accounting shows none of them. Installed on the `submitit` logger by conf/hydra/default.yaml.
"""

from __future__ import annotations

import logging

SACCT_FAILED = "Bypassing sacct error"


class FirstSacctWarningOnly(logging.Filter):
    def __init__(self):
        super().__init__()
        self.seen = False

    def filter(self, record: logging.LogRecord) -> bool:
        if SACCT_FAILED not in record.getMessage():
            return True
        if self.seen:
            return False
        self.seen = True
        record.msg = (
            f"{record.getMessage()} (this cluster keeps no job accounting: job ends are read from their result "
            "files; further such warnings are hidden)"
        )
        record.args = ()
        return True
