"""Atomic writes: the text written, the file's permissions, nothing left behind."""

import json
import os
import stat
from pathlib import Path

import pytest

from ar_experiments.safety import atomic
from ar_experiments.safety.atomic import atomic_open, atomic_write_bytes, atomic_write_json


def test_json_is_written_indented_in_the_callers_order_with_paths_as_text(tmp_path):
    atomic_write_json(tmp_path / "results.json", {"status": "completed", "best_checkpoint": Path("ckpt/a.ckpt")})
    assert (tmp_path / "results.json").read_text() == (
        '{\n  "status": "completed",\n  "best_checkpoint": "ckpt/a.ckpt"\n}\n'
    )
    assert json.loads((tmp_path / "results.json").read_text())["status"] == "completed"


def test_files_get_the_usual_permissions_and_the_umask_is_left_as_it_was(tmp_path):
    before = os.umask(0o027)
    try:
        assert atomic._current_umask() == 0o027 and os.umask(0o027) == 0o027
    finally:
        os.umask(before)
    atomic_write_bytes(tmp_path / "a" / "b.bin", b"x")  # the folder is made too
    assert stat.S_IMODE((tmp_path / "a" / "b.bin").stat().st_mode) == atomic.FILE_MODE
    assert atomic.FILE_MODE == 0o666 & ~before and os.listdir(tmp_path / "a") == ["b.bin"]


def test_only_whole_file_modes_are_accepted(tmp_path):
    with pytest.raises(ValueError, match="^atomic_open writes whole files; mode must be 'w' or 'wb', not 'a'$"):
        with atomic_open(tmp_path / "log.txt", "a"):
            pass
    with atomic_open(tmp_path / "text.txt") as handle:
        handle.write("é")
    assert (tmp_path / "text.txt").read_bytes() == "é".encode()
