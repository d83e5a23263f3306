"""No credential in a file or folder name: job folders, run names, W&B names, Optuna studies.

Hydra makes the run, sweep and job folders before any code of the task runs, and their paths end up inside
checkpoints and W&B's files: the names built from `run_name` go through the resolver `${ar.safe_name:...}`,
and a run or sweep folder that would carry a credential stops the command (docs/security.md).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from .redaction import REDACTED, is_secret_name, redact_text

FOLDER_SAFE_REDACTED = "REDACTED"


def safe_name(value: Any) -> str:
    """`value` as text, with every credential (environment value or `name=value`) replaced by REDACTED."""
    return redact_text(str(value)).replace(REDACTED, FOLDER_SAFE_REDACTED)


def secret_variables_in(text: str) -> list[str]:
    """Names of the credential-like environment variables whose value appears in `text`."""
    return sorted(
        name
        for name, value in os.environ.items()
        if is_secret_name(name) and value and value in text and REDACTED in redact_text(value)
    )


def folder_problem(setting: str, folder: Any) -> str | None:
    """Why `folder` may not be made (None when it holds no credential)."""
    folder = str(folder)
    if redact_text(folder) == folder:
        return None
    carried = secret_variables_in(folder)
    what = f"the value of ${', $'.join(carried)}" if carried else "a credential (a secret-named name=value)"
    return (
        f"{setting} would put {what} into a folder name; a credential must not name a folder: "
        f"set {setting} (or what it is built from) without it"
    )


class SecretFoldersCallback(Callback):
    """Stops a run or sweep whose folder would carry a credential, before Hydra makes the folder."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check("hydra.run.dir", config.hydra.run.dir)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._check("hydra.sweep.dir", config.hydra.sweep.dir)

    @staticmethod
    def _check(setting: str, folder: Any) -> None:
        problem = folder_problem(setting, Path(str(folder)))
        if problem:
            raise SystemExit(f"error: {problem}")
