"""Checkpoints are read with torch's weights-only unpickler, never with plain pickle (docs/security.md).

A checkpoint is a pickle, whose ordinary loading can run any code its author put in it. The flag is passed
explicitly because TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD only overrides the default.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

CONVERT_HINT = (
    "If you trust where the file comes from, convert it once: load it with "
    "torch.load(path, weights_only=False) and save only its tensors, e.g. "
    "torch.save({'model_state': model.state_dict()}, 'converted.pyth') for weights, or "
    "{'state_dict': ckpt['state_dict'], 'hyper_parameters': ckpt['hyper_parameters']} for a Lightning checkpoint"
)


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint that only arbitrary unpickling could read; nothing in it was run."""


def _reason(error: Exception) -> str:
    """The one line of torch's message that says what the file needed."""
    text = str(error)
    match = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if match:
        return f"it refers to {match.group(1)}, which is not a tensor or plain container"
    match = re.search(r"WeightsUnpickler error:\s*(.+)", text)
    return match.group(1).strip() if match else text.splitlines()[0]


def unsafe_checkpoint_message(path: str | os.PathLike, error: Exception) -> str:
    return (
        f"refusing to load {path}: {_reason(error)}. Loading it would unpickle arbitrary objects, "
        f"which can run code from the file. {CONVERT_HINT}."
    )


@contextmanager
def explain_unsafe_checkpoint(path: str | os.PathLike | None) -> Iterator[None]:
    """Turn torch's weights-only refusal inside the block into an UnsafeCheckpointError naming `path`."""
    try:
        yield
    except pickle.UnpicklingError as err:
        raise UnsafeCheckpointError(unsafe_checkpoint_message(path, err)) from err


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    """A checkpoint's content, read with the weights-only unpickler."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    with explain_unsafe_checkpoint(path):
        return torch.load(path, map_location=map_location, weights_only=True)
