"""Keep credentials out of everything a run writes (what counts as secret, and where: docs/security.md), and out of
every file or folder name: Hydra makes the run, sweep and job folders before any code of the task runs, and
their paths end up inside checkpoints and W&B's files, so names built from `run_name` go through the resolver
`${ar.safe_name:...}`, and a run or sweep folder that would carry a credential stops the command.

Credentials are never taken from the config: W&B reads its key from the environment or `wandb login`.
"""

from __future__ import annotations

import logging
import math
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .atomic import atomic_write_text

REDACTED = "<redacted>"
SECRET_WORD = re.compile(r"api_?key|access_?key|private_?key|secret|token|passw(?:or)?d|credential", re.IGNORECASE)
# an environment value shorter than this is too likely to occur by chance to be replaced everywhere
MIN_SECRET_LENGTH = 8
# one shorter, down to this, is replaced where it stands as a whole word (not inside a longer one)
MIN_SHORT_SECRET_LENGTH = 4
NOT_SECRETS = {"true", "false", "none", "null", "auto", "never", "always"}
# `name=value` and `name: value` in free text: overrides, log lines, printed dicts
ASSIGNMENT = re.compile(
    r"(?P<name>[+~]{0,2}[A-Za-z_][\w.\-]*)(?P<sep>['\"]?\s*[=:]\s*)(?P<value>'[^']*'|\"[^\"]*\"|[^\s,'\"\]\})]+)"
)


def is_secret_name(name: str) -> bool:
    """True for `WANDB_API_KEY`, `+logger.wandb.api_key`, `token`, `db.password`, `key`, `ssh_key`, ..."""
    for part in name.strip("+~'\" ").split("."):  # (stripping X too changes no real name: equivalent mutant)
        part = part.lower().replace("-", "_")
        if SECRET_WORD.search(part) or part == "key" or part.endswith("_key"):
            return True
    return False


def secret_environment_values(shortest: int = MIN_SECRET_LENGTH, below: float = math.inf) -> list[str]:
    """Values of environment variables named like credentials, `shortest` to `below` characters long, longest
    first."""
    values = {
        v
        for k, v in os.environ.items()
        if is_secret_name(k)
        and shortest <= len(v) < below
        and v.lower() not in NOT_SECRETS  # a flag such as WANDB_DISABLE_TOKEN=true would redact every `true`
    }
    return sorted(values, key=len, reverse=True)


def redact_text(text: str) -> str:
    """`text` with environment secrets and the values of secret-named assignments replaced; other assignments'
    values are searched too: `+cmd="--token=abc"` and `+misc='password=x'` hide one."""
    for value in secret_environment_values():
        text = text.replace(value, REDACTED)
    for value in secret_environment_values(MIN_SHORT_SECRET_LENGTH, below=MIN_SECRET_LENGTH):
        text = re.sub(rf"(?<![\w]){re.escape(value)}(?![\w])", REDACTED, text)

    return _redact_assignments(text)


def _redact_assignments(text: str) -> str:
    """Secret-named assignments' values replaced; other values are searched in turn (inside quotes too)."""
    pieces, position = [], 0
    while match := ASSIGNMENT.search(text, position):
        name, sep, value = match["name"], match["sep"], match["value"]
        pieces.append(text[position : match.start()])
        if is_secret_name(name):
            pieces.append(f"{name}{sep}{REDACTED}")
            position = match.end()
        # (a quoted value is at least its two quotes, and an unquoted one scanned again redacts the same: the
        # mutants of this test are equivalent)
        elif value[:1] in "'\"" and len(value) > 1:
            pieces.append(f"{name}{sep}{value[0]}{_redact_assignments(value[1:-1])}{value[-1]}")
            position = match.end()
        else:  # the value may hold assignments of its own: `+x=[password=...]`, `a: {token: ...}`
            pieces.append(f"{name}{sep}")
            position = match.start("value")
    pieces.append(text[position:])
    return "".join(pieces)


def redact_secrets(value: Any) -> Any:
    """A copy of a nested config with every value under a secret-looking key replaced, strings cleaned too."""
    if isinstance(value, dict):
        return {
            k: REDACTED if is_secret_name(str(k)) and v is not None else redact_secrets(v) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return type(value)(redact_secrets(v) for v in value)
    if isinstance(value, str):
        return redact_text(value)
    return value


def _redacting(factory: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is the handler's to report, as usual
            return record
        cleaned = redact_text(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return record

    make_record.redacts = True  # type: ignore[attr-defined]
    return make_record


def redact_log_records() -> None:
    """Redact every log record as it is created, whatever logger and handler it goes to (at creation because
    Hydra's launchers reconfigure the handlers right before they log each job's overrides)."""
    factory = logging.getLogRecordFactory()
    if not getattr(factory, "redacts", False):  # (a default of None is as false: an equivalent mutant)
        logging.setLogRecordFactory(_redacting(factory))


@contextmanager
def redacted_argv() -> Iterator[None]:
    """sys.argv with secrets redacted inside the block: W&B records the command line in its run metadata."""
    original = sys.argv
    sys.argv = [redact_text(arg) for arg in original]
    try:
        yield
    finally:
        sys.argv = original


def redact_yaml_file(path: Path) -> bool:
    """Rewrite a YAML file Hydra saved, secrets redacted; True if it had any."""
    if not path.is_file():
        return False
    content = OmegaConf.to_container(OmegaConf.load(path), resolve=False)  # (the default: an equivalent mutant)
    cleaned = redact_secrets(content)
    if cleaned == content:
        return False
    try:
        text = OmegaConf.to_yaml(OmegaConf.create(cleaned))
    except OmegaConfBaseException:  # a redacted value broke an interpolation's syntax: plain YAML keeps the record
        text = yaml.safe_dump(cleaned, sort_keys=False)  # (sort_keys=None is as false: an equivalent mutant)
    atomic_write_text(path, text)
    return True


class RedactSecretsCallback(Callback):
    """Hydra writes .hydra/{config,hydra,overrides}.yaml and multirun.yaml before any of our code runs;
    this rewrites them redacted as each job starts, and redacts every log record from the start."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        redact_log_records()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        redact_log_records()  # the launcher logs every job's overrides

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        redact_log_records()  # again: a launcher may run the job in a fresh process
        hydra = config.hydra
        if hydra.output_subdir is not None:
            saved = Path(hydra.runtime.output_dir) / hydra.output_subdir
            for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
                redact_yaml_file(saved / name)
        if hydra.mode == RunMode.MULTIRUN:
            self._redact_sweep_folder(config)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._redact_sweep_folder(config)

    @staticmethod
    def _redact_sweep_folder(config: DictConfig) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        for path in sweep_dir.glob("*.yaml"):  # multirun.yaml, and a sweeper's results
            redact_yaml_file(path)


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
