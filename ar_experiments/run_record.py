"""What a run leaves behind: results.json (the contract the report reads) and its provenance."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from .atomic import atomic_write_json

SECRET_KEY = re.compile(r"(key|token|password|passwd|secret|credential)", re.IGNORECASE)
REDACTED = "<redacted>"
PACKAGES = ("torch", "torchvision", "pytorch-lightning", "torchmetrics", "pytorchvideo", "hydra-core", "av", "wandb")


def redact_secrets(value: Any) -> Any:
    """A copy of a nested config with every value under a secret-looking key replaced."""
    if isinstance(value, dict):
        return {k: REDACTED if SECRET_KEY.search(str(k)) else redact_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_secrets(v) for v in value]
    return value


def git_state(folder: Path) -> dict[str, Any]:
    """The commit of the code that ran and whether the tree had uncommitted changes."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, timeout=10).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None, "git_dirty": None}
    return {"git_commit": commit or None, "git_dirty": dirty if commit else None}


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def peak_rss_mb() -> float | None:
    """This process's peak resident memory so far, in MiB (None where the OS does not say)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def clean_number(value: Any) -> Any:
    """Tensors and numpy scalars -> floats; NaN -> None so results.json stays valid JSON."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_results(run_dir: Path, record: dict[str, Any]) -> Path:
    """Write results.json atomically; it is written last, so its presence means the run ended."""
    path = Path(run_dir) / "results.json"
    atomic_write_json(path, {k: clean_number(v) for k, v in record.items()})
    return path
