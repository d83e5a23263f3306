"""One line, not one per poll, when a SLURM cluster keeps no job accounting (docs/clusters.md): submitit's
"Bypassing sacct error" warning is kept once, with what it means, and its repeats are dropped (submitit still
sees each job end through the job's result file). Installed on the `submitit` logger by conf/hydra/default.yaml.
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
