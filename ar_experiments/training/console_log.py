"""What the console leaves to train.log: the traceback of an error whose one line the command prints.

A config or split-file error names the key or file and the fix in one line (train.py prints it; in a
sweep, the job's progress line does). Its traceback is logged with `extra=FILE_ONLY`, and the console
handler's filter (conf/hydra/default.yaml) keeps it out, so it reaches train.log alone.
"""

from __future__ import annotations

import logging

from ..config.checks import ConfigError
from ..data.splits import DatasetIndexError

ONE_LINE_ERRORS = (ConfigError, DatasetIndexError)
FILE_ONLY = {"file_only": True}


class NotOnConsole(logging.Filter):
    """Drops the records logged with `extra=FILE_ONLY`."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "file_only", False)
