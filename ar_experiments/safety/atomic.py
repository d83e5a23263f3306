"""Write files so that a kill at any moment leaves the old file or the new one, never a torn one."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def _current_umask() -> int:
    mask = os.umask(0)  # (any value here is put back on the next line: umask(1) is an equivalent mutant)
    os.umask(mask)
    return mask


# mkstemp creates files readable by their owner only; a result file gets the usual permissions
FILE_MODE = 0o666 & ~_current_umask()


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """A handle on a temporary file beside `path` that replaces `path` when the block succeeds: in the same
    folder, so the final rename never crosses filesystems (a cross-device move is a copy, which can be torn)."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files; mode must be 'w' or 'wb', not {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as handle:  # (atomic_open's default mode: an equivalent mutant)
        handle.write(text)


def read_json(path: str | os.PathLike) -> dict | None:
    """A JSON file's content; None when it is not there, not JSON (a hand-edited or foreign file), or a rename
    races the read."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def atomic_write_json(path: str | os.PathLike, payload) -> None:
    # sort_keys=False is json's default, kept for the reader (its mutants are equivalent)
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=False, default=str) + "\n")
