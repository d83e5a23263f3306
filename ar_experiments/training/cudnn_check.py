"""Known-bad torch and cuDNN combinations for 3D convolutions in reduced precision.

Checked when a run starts (a logged warning) and by the bench (a line in its
output and in bench.json). Both problems concern bf16/fp16 3D convolutions,
so a float32 run is not warned about.

- pytorch/pytorch#163539: cuDNN 9.8 to 9.14 gives silently wrong bf16 conv3d
  results (reported with 9.10.2, the cuDNN that torch 2.8 ships). torch 2.9
  and later route these convolutions around cuDNN; earlier torch does not.
- pytorch/pytorch#166122: that detour (PR #163581) is a slow convolution, about
  4x slower and far hungrier for memory. torch 2.9.0 takes it for every cuDNN
  from 9.8 on; from 2.9.1 (PR #166480) only for cuDNN 9.8 to 9.14, so cuDNN
  9.15 or later is fast again.
"""

from __future__ import annotations

import logging
import re

log = logging.getLogger(__name__)

REDUCED_PRECISION = ("bf16", "16")  # Lightning precision strings that run convolutions in bf16/fp16


def parse_version(text: str) -> tuple[int, int, int]:
    """'2.9.1+cu128' -> (2, 9, 1); '2.11.0a0+gitabc' -> (2, 11, 0); '9.10' -> (9, 10, 0)."""
    match = re.match(r"\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?", str(text))
    if not match:
        raise ValueError(f"not a version number: {text!r}")
    major, minor, patch = (int(part) if part else 0 for part in match.groups())
    return major, minor, patch


def cudnn_version(number: int | None) -> tuple[int, int, int] | None:
    """torch.backends.cudnn.version()'s integer as (major, minor, patch): 91002 -> (9, 10, 2), 8902 -> (8, 9, 2).

    cuDNN 9 encodes major*10000 + minor*100 + patch; cuDNN 8 and earlier major*1000 + minor*100 + patch.
    """
    if number is None:
        return None
    if number >= 90000:
        return number // 10000, number // 100 % 100, number % 100
    return number // 1000, number // 100 % 10, number % 100


def version_text(version: tuple[int, ...] | None) -> str | None:
    return ".".join(str(part) for part in version) if version is not None else None


def known_problems(torch_version: str, cudnn: tuple[int, int, int] | None, precision: str | None) -> list[str]:
    """One message per known problem of this torch and cuDNN for 3D convolutions at `precision`.

    `cudnn` is None when no cuDNN is in use (a CPU build, no GPU); `precision` is
    Lightning's trainer.precision (None: unknown, checked as if reduced).
    """
    if cudnn is None or (precision is not None and not str(precision).startswith(REDUCED_PRECISION)):
        return []
    torch_v = parse_version(torch_version)
    problems = []
    broken_cudnn = (9, 8) <= cudnn[:2] < (9, 15)
    if broken_cudnn and torch_v[:2] < (2, 9):
        problems.append(
            f"cuDNN {version_text(cudnn)} with torch {torch_version}: bf16/fp16 3D convolutions can give silently "
            "wrong results (pytorch/pytorch#163539, cuDNN 9.8-9.14); train with trainer.precision=32-true or use "
            "torch 2.9.1 or later with cuDNN 9.15 or later"
        )
    slow_path = broken_cudnn or (torch_v == (2, 9, 0) and cudnn[:2] >= (9, 8))
    if torch_v[:2] >= (2, 9) and slow_path:
        problems.append(
            f"cuDNN {version_text(cudnn)} with torch {torch_version}: bf16/fp16 3D convolutions bypass cuDNN and run "
            "about 4x slower, with more memory (pytorch/pytorch#166122); install cuDNN 9.15 or later "
            "(the nvidia-cudnn wheel beside torch 2.9.1 or later) or compare trainer.precision=32-true"
        )
    return problems


def runtime_versions() -> dict[str, str | None]:
    """torch, the CUDA it was built with and the cuDNN it loads (None where there is none)."""
    import torch

    number = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {"torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": version_text(cudnn_version(number))}


def runtime_problems(precision: str | None, accelerator: str | None = "auto") -> list[str]:
    """known_problems of this process's torch and cuDNN, for a run on `accelerator` (trainer.accelerator).

    None unless the run trains on a CUDA GPU: cuDNN is not used otherwise.
    """
    import torch

    if str(accelerator) not in ("gpu", "cuda", "auto") or not torch.cuda.is_available():
        return []
    versions = runtime_versions()
    cudnn = parse_version(versions["cudnn"]) if versions["cudnn"] else None
    return known_problems(versions["torch"], cudnn, precision)


def warn_known_problems(precision: str | None, accelerator: str | None = "auto") -> list[str]:
    """Log a warning per known problem of this run's torch, cuDNN and precision; returns the messages."""
    problems = runtime_problems(precision, accelerator)
    for problem in problems:
        log.warning(problem)
    return problems
