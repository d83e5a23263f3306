"""Checkpoints that are either complete or absent, whenever the process dies."""

from __future__ import annotations

from typing import Any

import torch
from fsspec.implementations.local import LocalFileSystem
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning_fabric.utilities.cloud_io import get_filesystem

from ..safety.atomic import atomic_open


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file beside its target, fsyncs it, then renames it.

    Lightning's TorchCheckpointIO (2.6) writes through an fsspec transaction
    whose temporary file sits in the system temp folder: when that is another
    filesystem the final move is a plain copy onto the target, which a kill
    can tear, and nothing is fsynced. A torn `last.ckpt` would make a
    resumed run fail, so local checkpoints go through `atomic_open`;
    remote (fsspec URL) paths keep Lightning's behaviour.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None or not isinstance(get_filesystem(path), LocalFileSystem):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        with atomic_open(path, "wb") as handle:
            torch.save(checkpoint, handle)
