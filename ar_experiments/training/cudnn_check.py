"""Known-bad cuDNN versions for 3D convolutions in reduced precision (docs/benchmarks.md, "Known-bad torch and
cuDNN"): a logged warning when a run starts, a line in the bench's output and bench.json.

cuDNN 9.8 to 9.14 gives silently wrong bf16 conv3d results (pytorch/pytorch#163539), which the pinned torch
avoids by a slow convolution, about 4x slower and far hungrier for memory (pytorch/pytorch#166122).
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

REDUCED_PRECISION = ("bf16", "16")  # Lightning precision strings that run convolutions in bf16/fp16
SLOW_CUDNN = ((9, 8), (9, 15))  # [from, to): the cuDNN versions whose bf16/fp16 3D convolutions bypass cuDNN


def cudnn_version(number: int | None) -> tuple[int, int, int] | None:
    """torch.backends.cudnn.version()'s integer as (major, minor, patch): 91002 -> (9, 10, 2) (cuDNN 9's
    major*10000 + minor*100 + patch; the pinned torch loads no earlier cuDNN)."""
    if number is None:
        return None
    return number // 10000, number // 100 % 100, number % 100


def known_problems(cudnn: tuple[int, int, int] | None, precision: str | None) -> list[str]:
    """One message per known problem of this cuDNN (None: none in use) for 3D convolutions at `precision`
    (Lightning's trainer.precision; None: unknown, checked as if reduced)."""
    if cudnn is None or (precision is not None and not str(precision).startswith(REDUCED_PRECISION)):
        return []
    if not SLOW_CUDNN[0] <= cudnn[:2] < SLOW_CUDNN[1]:
        return []
    return [
        f"cuDNN {'.'.join(map(str, cudnn))}: bf16/fp16 3D convolutions bypass cuDNN and run about 4x slower, "
        "with more memory (pytorch/pytorch#166122); install cuDNN 9.15 or later (the nvidia-cudnn wheel) "
        "or compare trainer.precision=32-true"
    ]


def runtime_versions() -> dict[str, str | None]:
    """torch, the CUDA it was built with and the cuDNN it loads (None where there is none)."""
    import torch

    cudnn = cudnn_version(torch.backends.cudnn.version())
    return {"torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": ".".join(map(str, cudnn or ())) or None}


def runtime_problems(precision: str | None, accelerator: str | None = "auto") -> list[str]:
    """known_problems of the cuDNN this process loads, for a run on `accelerator`: none off a CUDA GPU."""
    import torch

    if str(accelerator) not in ("gpu", "cuda", "auto") or not torch.cuda.is_available():
        return []
    return known_problems(cudnn_version(torch.backends.cudnn.version()), precision)


def warn_known_problems(precision: str | None, accelerator: str | None = "auto") -> list[str]:
    """Log a warning per known problem of this run's cuDNN and precision; returns the messages."""
    problems = runtime_problems(precision, accelerator)
    for problem in problems:
        log.warning(problem)
    return problems
