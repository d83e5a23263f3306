"""A checkpoint that cannot be written on a full disk says so, and leaves no partial file."""

from __future__ import annotations

import shutil
from collections import namedtuple

import pytest
import torch

from ar_experiments.training import checkpoint_io
from ar_experiments.training.checkpoint_io import AtomicCheckpointIO

Usage = namedtuple("Usage", "total used free")


def _torch_save_failing_as_on_a_full_disk(obj, handle):
    handle.write(b"partial")
    raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 212158144 vs 212158032")


def test_a_checkpoint_write_on_a_full_disk_names_the_file_and_the_cause(tmp_path, monkeypatch):
    target = tmp_path / "checkpoints" / "last.ckpt"
    target.parent.mkdir()
    target.write_bytes(b"the previous checkpoint")
    monkeypatch.setattr(torch, "save", _torch_save_failing_as_on_a_full_disk)
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: Usage(100 * 2**30, 100 * 2**30, 29 * 2**20))
    with pytest.raises(
        OSError, match=r"cannot write checkpoint .*last\.ckpt: the disk is full \(29 MiB free"
    ) as caught:
        AtomicCheckpointIO().save_checkpoint({"state": 1}, target)
    assert "make clean" in str(caught.value) and "hydra.sweep.dir" in str(caught.value)
    assert target.read_bytes() == b"the previous checkpoint", "the last good checkpoint is kept"
    assert sorted(p.name for p in target.parent.iterdir()) == ["last.ckpt"], "no temporary file is left behind"


def test_other_write_errors_are_raised_as_they_are(tmp_path, monkeypatch):
    monkeypatch.setattr(torch, "save", _torch_save_failing_as_on_a_full_disk)
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: Usage(100 * 2**30, 10 * 2**30, 90 * 2**30))
    with pytest.raises(RuntimeError, match="unexpected pos"):
        AtomicCheckpointIO().save_checkpoint({"state": 1}, tmp_path / "last.ckpt")
    assert checkpoint_io.FULL_DISK_BYTES < 90 * 2**30
