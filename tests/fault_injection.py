"""Ways to break a copy of the tiny dataset, as real downloads and disks break."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

FAULTS = ("truncated", "short_stream", "zero_bytes", "not_a_video", "no_video_stream")


def copy_dataset(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def break_video(path: Path, fault: str) -> None:
    """Replace the video at `path` with a broken one of kind `fault` (one of FAULTS)."""
    data = path.read_bytes()
    if fault == "truncated":  # cut inside the header: cannot even be opened
        path.write_bytes(data[: len(data) // 20])
    elif fault == "short_stream":  # the header lists every frame, but half of them are gone
        path.write_bytes(data[: len(data) // 2])
    elif fault == "zero_bytes":
        path.write_bytes(b"")
    elif fault == "not_a_video":
        path.write_text("404: Not Found\n")
    elif fault == "no_video_stream":
        _write_audio_only_avi(path)
    else:
        raise ValueError(f"unknown fault {fault!r}; choose one of {FAULTS}")


def _write_audio_only_avi(path: Path) -> None:
    import av

    with av.open(str(path), "w", format="avi") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), dtype=np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)


def keep_train_lines(root: Path, per_class: int, split: int = 1) -> list[str]:
    """Shorten trainlist0{split}.txt to its first `per_class` videos of each class; returns the kept lines."""
    path = root / "ucfTrainTestlist" / f"trainlist0{split}.txt"
    kept, counts = [], {}
    for line in path.read_text().splitlines():
        label = line.split()[1]
        if counts.get(label, 0) < per_class:
            counts[label] = counts.get(label, 0) + 1
            kept.append(line)
    path.write_bytes("".join(f"{line}\r\n" for line in kept).encode())
    return kept
