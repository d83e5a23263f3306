"""How a built network runs, not what it computes: torch.compile and the float32 precision of its math.

The settings are the model config keys `compile`, `compile_mode`, `compile_cache_dir` and `fp32_precision`,
explained in conf/model/*.yaml. VideoClassifier applies them when a trainer sets it up; the bench's plain
loop applies them the same way. Building a network (`build_model`) never compiles.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
FP32_PRECISIONS = {  # model.fp32_precision -> (cuDNN convolutions, matrix multiplies)
    "default": ("tf32", "ieee"),
    "tf32": ("tf32", "tf32"),
    "ieee": ("ieee", "ieee"),
}


@dataclass(frozen=True)
class RunOptions:
    compile: bool = False
    compile_mode: str = "default"
    compile_cache_dir: str | None = None
    fp32_precision: str = "default"

    @classmethod
    def from_model_config(cls, model: Mapping[str, Any]) -> RunOptions:
        """The options of a model config (missing keys: the defaults, as in checkpoints made before they existed)."""
        options = cls(
            compile=bool(model.get("compile") or False),
            compile_mode=str(model.get("compile_mode") or "default"),
            compile_cache_dir=model.get("compile_cache_dir"),
            fp32_precision=str(model.get("fp32_precision") or "default"),
        )
        if options.compile_mode not in COMPILE_MODES:
            raise ValueError(f"model.compile_mode={options.compile_mode!r}; choose one of {', '.join(COMPILE_MODES)}")
        if options.fp32_precision not in FP32_PRECISIONS:
            raise ValueError(
                f"model.fp32_precision={options.fp32_precision!r}; choose one of {', '.join(FP32_PRECISIONS)}"
            )
        return options


def set_fp32_precision(precision: str) -> None:
    """Float32 precision of cuDNN convolutions and matrix multiplies for this process (see FP32_PRECISIONS)."""
    conv, matmul = FP32_PRECISIONS[precision]
    # matrix multiplies through the one call that sets every backend alike: torch (and Lightning, which
    # reads it) refuses torch.get_float32_matmul_precision() once backends were set apart
    torch.set_float32_matmul_precision("high" if matmul == "tf32" else "highest")
    # RNNs follow convolutions: torch refuses to read its legacy cudnn.allow_tf32 while the two differ
    torch.backends.cudnn.conv.fp32_precision = torch.backends.cudnn.rnn.fp32_precision = conv


def prepare_to_run(net: nn.Module, model: Mapping[str, Any]) -> RunOptions:
    """Apply a model config's run options to `net`, compiling it once however often this is called.

    Compiling is in place (nn.Module.compile: same parameters, same state-dict keys) and happens at the
    first call, for each new input shape or train/eval mode; the on-disk cache in `compile_cache_dir`
    makes the next process's compile a lookup.
    """
    options = RunOptions.from_model_config(model)
    set_fp32_precision(options.fp32_precision)
    if options.compile and getattr(net, "compiled_mode", None) is None:
        if options.compile_cache_dir:
            folder = Path(options.compile_cache_dir).expanduser()
            folder.mkdir(parents=True, exist_ok=True)
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)
        net.compile(mode=None if options.compile_mode == "default" else options.compile_mode)
        net.compiled_mode = options.compile_mode
    return options
