"""Generate the embedded synthetic dataset: real XVID AVI files in the UCF101 layout.

Every class is a motion that one frame cannot reveal (an object moving right vs
left, growing vs shrinking, ...). Position, speed, size, colour, background and
noise vary per clip; the clips of one group share a background style, as the
clips of one UCF101 group share an actor and a scene.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MOTIONS = {
    "MoveRight": (1.0, 0.0, 0.0, 0.0),
    "MoveLeft": (-1.0, 0.0, 0.0, 0.0),
    "MoveUp": (0.0, -1.0, 0.0, 0.0),
    "MoveDown": (0.0, 1.0, 0.0, 0.0),
    "Grow": (0.0, 0.0, 1.0, 0.0),
    "Shrink": (0.0, 0.0, -1.0, 0.0),
    "RotateClockwise": (0.0, 0.0, 0.0, 1.0),
    "RotateCounterClockwise": (0.0, 0.0, 0.0, -1.0),
}
"""Class name -> (dx, dy, growth, rotation) direction of the motion."""

GROUPS_PER_CLASS = 25
SPLIT_COUNT = 3
TEST_GROUPS_PER_SPLIT = 7  # UCF101 tests on 7 of the 25 groups per class
GENERATOR_VERSION = 1  # bump when render_clip changes, so caches regenerate


@dataclass(frozen=True)
class SyntheticSpec:
    """Everything that decides the generated files; its hash names the cache folder."""

    classes: tuple[str, ...] = tuple(MOTIONS)
    clips_per_group: tuple[int, int] = (3, 4)
    width: int = 64
    height: int = 48
    fps: int = 25
    seconds: tuple[float, float] = (3.0, 4.0)
    noise: float = 6.0
    clutter: float = 12.0  # amplitude of the background texture
    scenes: int = 8  # backgrounds shared across classes; each group films one
    pattern: float = 2.0  # checker squares per object half-size (0: plain objects)
    object_size: tuple[float, float] = (0.14, 0.22)  # half-size, as a fraction of the height
    travel: tuple[float, float] = (0.4, 0.6)  # distance moved over a clip, as a fraction of the frame
    seed: int = 0

    @classmethod
    def from_config(cls, values: Mapping) -> SyntheticSpec:
        """Build from the `data.synthetic` config, naming any unknown key or class."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown data.synthetic key(s) {unknown}; valid keys: {sorted(known)}")
        plain = {k: tuple(v) if isinstance(v, Sequence) and not isinstance(v, str) else v for k, v in values.items()}
        bad = [c for c in plain.get("classes", ()) if c not in MOTIONS]
        if bad:
            raise ValueError(f"data.synthetic.classes: unknown motion(s) {bad}; choose from {list(MOTIONS)}")
        return cls(**plain)

    def key(self) -> str:
        payload = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha1(f"v{GENERATOR_VERSION}:{payload}".encode()).hexdigest()[:10]


def _scene(rng: np.random.Generator, spec: SyntheticSpec) -> dict:
    """A background: colour, gradient and texture (a 'scene')."""
    h, w = spec.height, spec.width
    base = rng.uniform(20, 200, size=3)
    gradient = rng.uniform(-60, 60, size=3)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    ramp = (np.cos(angle) * xx / w + np.sin(angle) * yy / h)[..., None]
    stripes = spec.clutter * np.sin(xx / rng.uniform(3, 9) + yy / rng.uniform(3, 9))[..., None]
    background = base + gradient * ramp + stripes
    return {"background": background.astype(np.float32)}


def _object_mask(shape: str, cx: float, cy: float, size: float, angle: float, h: int, w: int):
    """Pixels covered by the object, and each pixel's coordinates in the object's frame."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = xx - cx, yy - cy
    # rotate coordinates into the object's frame
    c, s = math.cos(angle), math.sin(angle)
    u, v = c * dx + s * dy, -s * dx + c * dy
    if shape == "bar":
        mask = (np.abs(u) <= size) & (np.abs(v) <= size * 0.35)
    elif shape == "triangle":
        mask = (v <= size * 0.6) & (v >= -size) & (np.abs(u) <= (v + size) * 0.55)
    else:
        mask = (np.abs(u) <= size * 0.8) & (np.abs(v) <= size * 0.5)  # rectangle
    return mask, u / size, v / size


def render_clip(motion: str, style: dict, rng: np.random.Generator, spec: SyntheticSpec) -> np.ndarray:
    """Frames (T, H, W, 3) uint8 of one clip of the given motion class."""
    h, w = spec.height, spec.width
    n_frames = int(round(rng.uniform(*spec.seconds) * spec.fps))
    dx, dy, growth, spin = MOTIONS[motion]
    shape = ["rectangle", "bar", "triangle"][rng.integers(3)]
    colour = rng.uniform(0, 255, size=3)
    # keep the object visible against the background
    if np.abs(colour - style["background"].mean((0, 1))).max() < 90:
        colour = 255.0 - colour
    size0 = rng.uniform(*spec.object_size) * h
    travel = rng.uniform(*spec.travel)
    steps = np.linspace(-0.5, 0.5, n_frames)
    cx0 = w / 2 + rng.uniform(-0.1, 0.1) * w
    cy0 = h / 2 + rng.uniform(-0.1, 0.1) * h
    angle0 = rng.uniform(0, 2 * math.pi)
    rate = rng.uniform(0.8, 1.2)
    jitter = rng.normal(0, 0.4, size=(n_frames, 2))
    frames = np.empty((n_frames, h, w, 3), dtype=np.uint8)
    for t, p in enumerate(steps):
        cx = cx0 + dx * travel * w * p * rate + jitter[t, 0]
        cy = cy0 + dy * travel * h * p * rate + jitter[t, 1]
        size = size0 * (1.0 + growth * 1.1 * p * rate)
        angle = angle0 + spin * math.pi * 0.9 * p * rate
        mask, u, v = _object_mask(shape, cx, cy, size, angle, h, w)
        # a checker pattern painted on the object moves, turns and scales with it
        checker = (np.floor(u[mask] * spec.pattern) + np.floor(v[mask] * spec.pattern)) % 2
        frame = style["background"].copy()
        frame[mask] = colour * (1.0 - 0.45 * checker[:, None])
        frame += rng.normal(0, spec.noise, size=frame.shape)
        frames[t] = np.clip(frame, 0, 255).astype(np.uint8)
    return frames


def write_avi(path: Path, frames: np.ndarray, fps: int) -> None:
    """Encode MPEG-4 Part 2 with the XVID tag, as UCF101's files are."""
    import av

    tmp = path.with_name(path.name + ".part")
    with av.open(str(tmp), mode="w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.codec_tag = "XVID"
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = 150_000
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    os.replace(tmp, path)


def _split_test_groups(rng: np.random.Generator) -> list[set[int]]:
    """Three different partitions: each split tests on its own 7 groups of 25."""
    order = rng.permutation(np.arange(1, GROUPS_PER_CLASS + 1))
    return [
        set(order[k * TEST_GROUPS_PER_SPLIT : (k + 1) * TEST_GROUPS_PER_SPLIT].tolist()) for k in range(SPLIT_COUNT)
    ]


def _write_split_files(root: Path, spec: SyntheticSpec, videos: list[tuple[str, int, str]], test_groups) -> None:
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True, exist_ok=True)
    crlf = "\r\n"
    (lists / "classInd.txt").write_bytes(
        crlf.join(f"{i + 1} {name}" for i, name in enumerate(spec.classes)).encode() + crlf.encode()
    )
    for k, groups in enumerate(test_groups, start=1):
        train = [f"{rel} {spec.classes.index(cls) + 1}" for cls, group, rel in videos if group not in groups]
        test = [rel for cls, group, rel in videos if group in groups]
        (lists / f"trainlist0{k}.txt").write_bytes((crlf.join(train) + crlf).encode())
        (lists / f"testlist0{k}.txt").write_bytes((crlf.join(test) + crlf).encode())


def generate(root: Path, spec: SyntheticSpec) -> None:
    """Write the whole dataset into `root` (UCF-101/ and ucfTrainTestlist/)."""
    rng = np.random.default_rng(spec.seed)
    videos = []
    # Scenes come from one palette shared by all classes: every group films one scene,
    # as a UCF101 group shares actor and scene, but the scene never tells the class.
    palette = [_scene(rng, spec) for _ in range(spec.scenes)]
    for cls in spec.classes:
        (root / "UCF-101" / cls).mkdir(parents=True, exist_ok=True)
        for group in range(1, GROUPS_PER_CLASS + 1):
            style = palette[(group - 1) % spec.scenes]
            for clip in range(1, int(rng.integers(spec.clips_per_group[0], spec.clips_per_group[1] + 1)) + 1):
                rel = f"{cls}/v_{cls}_g{group:02d}_c{clip:02d}.avi"
                write_avi(root / "UCF-101" / rel, render_clip(cls, style, rng, spec), spec.fps)
                videos.append((cls, group, rel))
    _write_split_files(root, spec, videos, _split_test_groups(rng))


def dataset_root(cache_dir: str | os.PathLike, spec: SyntheticSpec) -> Path:
    """Where the dataset of `spec` lives in the cache (named by the spec's hash)."""
    return Path(cache_dir).expanduser().resolve() / f"synthetic-{spec.key()}"


def ensure_synthetic_dataset(root: Path, spec: SyntheticSpec) -> Path:
    """Generate the dataset of `spec` into `root` unless it is already there.

    Generation happens in a temporary folder renamed into place, so an
    interrupted generation never leaves a half dataset that looks complete.
    """
    if (root / "spec.json").exists():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    # Parallel jobs of a sweep start together: one generates, the others wait for it.
    with open(root.with_name(root.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (root / "spec.json").exists():
            return root
        tmp = root.with_name(root.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        log.info("Generating the synthetic dataset into %s (once; later runs reuse it)", root)
        generate(tmp, spec)
        (tmp / "spec.json").write_text(json.dumps(asdict(spec), indent=2))
        try:
            os.replace(tmp, root)
        except OSError:  # a process without the lock (another file system) finished first
            shutil.rmtree(tmp, ignore_errors=True)
    return root
