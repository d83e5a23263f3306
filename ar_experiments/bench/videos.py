"""Videos shaped like UCF101's: 320x240, 25 fps, about 7 s, MPEG-4 Part 2 (XVID) in AVI.

Content is a textured background with a moving block and sensor noise, so the
encoder spends its bits as on real footage (a flat frame would decode far faster
than UCF101 does). The synthetic dataset's encoder writes them (a keyframe every
12 frames, ffmpeg's default group of pictures).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.synthetic import write_avi


@dataclass(frozen=True)
class VideoShape:
    width: int = 320
    height: int = 240
    fps: int = 25
    seconds: float = 7.0
    bit_rate: int = 500_000  # UCF101 averages about 0.5 Mbit/s


QUICK_SHAPE = VideoShape(width=160, height=120, seconds=3.0, bit_rate=150_000)


def _frames(shape: VideoShape, rng: np.random.Generator):
    """Frames one at a time: background drifts, a block crosses the frame, noise on top."""
    h, w = shape.height, shape.width
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(40, 200, size=3).astype(np.float32)
    texture = 30 * np.sin(xx / rng.uniform(4, 12) + yy / rng.uniform(4, 12))
    count = int(round(shape.seconds * shape.fps))
    size = h // 4
    for t in range(count):
        frame = base + (texture + 20 * np.sin((xx + 2 * t) / 17.0))[..., None]
        x = int((w - size) * t / max(count - 1, 1))
        y = int((h - size) * (0.5 + 0.3 * np.sin(t / 9.0)))
        frame[y : y + size, x : x + size] = (230, 60, 40)
        frame += rng.normal(0, 4, size=frame.shape).astype(np.float32)
        yield np.clip(frame, 0, 255).astype(np.uint8)


def write_videos(folder: Path, count: int, shape: VideoShape) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"v_Bench_g01_c{i + 1:02d}.avi" for i in range(count)]
    for seed, path in enumerate(paths):
        write_avi(path, np.stack(list(_frames(shape, np.random.default_rng(seed)))), shape.fps, shape.bit_rate)
    return paths


def ucf101_layout(root: Path, videos: list[Path]) -> Path:
    """A UCF101-layout folder whose entries are hard links to `videos` (copies where links fail).

    20 classes of 25 groups: groups 1-7 are the test list (one clip each: 140 videos), the other 18
    the train list (5 clips each, as UCF101's groups hold 4 to 7), of which the datamodule validates on 3.
    """
    classes, groups, train_clips_per_group = 20, 25, 5
    names = [f"Bench{chr(ord('A') + k)}" for k in range(classes)]
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True, exist_ok=True)
    train, test = [], []
    for label, name in enumerate(names):
        (root / "UCF-101" / name).mkdir(parents=True, exist_ok=True)
        for group in range(1, groups + 1):
            clips = 1 if group <= 7 else train_clips_per_group
            for clip in range(1, clips + 1):
                rel = f"{name}/v_{name}_g{group:02d}_c{clip:02d}.avi"
                source = videos[(label * groups + group + clip) % len(videos)]
                target = root / "UCF-101" / rel
                if not target.exists():
                    try:
                        os.link(source, target)
                    except OSError:
                        shutil.copyfile(source, target)
                (test if group <= 7 else train).append((rel, label))
    (lists / "classInd.txt").write_text("".join(f"{i + 1} {n}\n" for i, n in enumerate(names)))
    for split in (1, 2, 3):
        (lists / f"trainlist0{split}.txt").write_text("".join(f"{rel} {label + 1}\n" for rel, label in train))
        (lists / f"testlist0{split}.txt").write_text("".join(f"{rel}\n" for rel, _ in test))
    return root
