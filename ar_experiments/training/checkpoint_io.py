"""Checkpoints that are either complete or absent, whenever the process dies."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch
from fsspec.implementations.local import LocalFileSystem
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning_fabric.utilities.cloud_io import get_filesystem

from ..safety.atomic import atomic_open


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each local checkpoint through `atomic_open`: a torn `last.ckpt` would make a resumed run fail, and
    Lightning's TorchCheckpointIO (2.6) stages its temporary file in the system temp folder, so on another
    filesystem its final move is a copy that a kill can tear (nothing fsynced). Remote (fsspec URL) paths keep
    Lightning's behaviour.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None or not isinstance(get_filesystem(path), LocalFileSystem):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        try:
            with atomic_open(path, "wb") as handle:
                torch.save(checkpoint, handle)
        except (OSError, RuntimeError) as error:
            raise_if_disk_full(path, error)
            raise


# below this many bytes free after a failed write, the disk being full is the likely cause
FULL_DISK_BYTES = 256 * 2**20


def raise_if_disk_full(path, error: BaseException) -> None:
    """Raise a plain "disk full" error for a checkpoint write that failed on a (nearly) full disk: torch.save's
    own ("[enforce fail at inline_container.cc] unexpected pos ...") names neither the file nor the cause."""
    folder = Path(path).parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < FULL_DISK_BYTES:
        raise OSError(
            f"cannot write checkpoint {path}: the disk is full ({free / 2**20:.0f} MiB free in {folder}). "
            "Free some space (`make clean` removes outputs/ and multirun/; a SlowFast R50 checkpoint takes "
            "~400 MB) and run the same command again: finished runs are kept, and a sweep rerun with "
            "hydra.sweep.dir=<its folder> skips them and resumes the others from checkpoints/last.ckpt"
        ) from error
