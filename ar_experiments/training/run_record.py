"""What a run leaves behind: results.json (its keys: record/results.py, the contract the report reads) and its
provenance."""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from ..record.results import RunRecord
from ..safety.atomic import atomic_write_json, atomic_write_text
from ..safety.redaction import redact_secrets

PACKAGES = ("torch", "torchvision", "pytorch-lightning", "torchmetrics", "pytorchvideo", "hydra-core", "av", "wandb")


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
    """Installed versions of the packages a run depends on, and the CUDA and cuDNN that torch uses."""
    from .cudnn_check import runtime_versions

    versions = {name: metadata.version(name) for name in PACKAGES}  # every one a dependency in pyproject.toml
    runtime = runtime_versions()  # torch's own view: a CUDA build, its cuDNN (None on a CPU-only build)
    versions.update({key: runtime[key] for key in ("cuda", "cudnn") if runtime[key]})
    return versions


def peak_rss_mb() -> float | None:
    """This process's peak resident memory so far, in MiB (None where the OS does not say). On Linux from /proc
    (VmHWM, this program's own high-water mark): getrusage's ru_maxrss also counts the memory of the process
    that launched this one, from before its exec (a test runner's, a notebook's)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**10  # kB
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def peak_gpu_mb() -> float | None:
    """The most GPU memory this process's run held, in MiB (None when it used no GPU): the caching allocator's
    reserved peak on the run's device, what other jobs packed on that GPU (jobs_per_gpu) must leave room for,
    the CUDA context aside. The count starts again after each job of a reused worker (release_gpu_memory)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return None
    return torch.cuda.max_memory_reserved() / 2**20


def clean_number(value: Any) -> Any:
    """Tensors and numpy scalars -> floats; NaN -> None so results.json stays valid JSON."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_results(run_dir: Path, record: RunRecord) -> Path:
    """Write results.json atomically (secrets redacted, e.g. in an error message); it is written last,
    so its presence means the run ended."""
    path = Path(run_dir) / "results.json"
    atomic_write_json(path, redact_secrets({k: clean_number(v) for k, v in asdict(record).items()}))
    return path


SKIPPED_FILES = {"train": "skipped_videos.txt", "val": "skipped_val_videos.txt", "test": "skipped_test_videos.txt"}


def write_skipped_videos(run_dir: Path, videos: list[str], stage: str = "train") -> Path:
    """The unreadable videos of a stage, one per line: skipped_videos.txt (training: each was replaced by
    another of its split), skipped_val_videos.txt and skipped_test_videos.txt (left out of the metrics)."""
    path = Path(run_dir) / SKIPPED_FILES[stage]
    atomic_write_text(path, "".join(f"{video}\n" for video in videos))
    return path


def base_record(cfg: DictConfig) -> RunRecord:
    """What results.json says of a run from its config alone: the record's start, and all a failed run leaves."""
    return RunRecord(
        run_name=cfg.run_name,
        data=cfg.data.name,
        model=cfg.model.name,
        frames=cfg.data.frames,
        stride=cfg.data.stride,
        split=cfg.data.split,
        seed=cfg.seed,
        optimizer=cfg.optimizer._target_.rsplit(".", 1)[-1],
        lr=cfg.optimizer.lr,
        protocol=cfg.get("protocol", {}).get("name"),
        pretrained=cfg.model.get("pretrained"),
        **git_state(Path(cfg.paths.root_dir)),
        versions=package_versions(),
    )
