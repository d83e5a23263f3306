"""Generate the embedded synthetic dataset: real XVID AVI files in the UCF101 layout.

Every class is a motion of the whole scene that one frame cannot reveal: the
camera's view of a random texture moves right or left, up or down (or
diagonally), or turns. The texture, its place and angle in the first frame, the speed and the
noise vary per clip; the clips of one group share a colour palette, as the
clips of one UCF101 group share an actor and a scene.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
from filelock import FileLock

log = logging.getLogger(__name__)

MOTIONS = {
    "MoveRight": ("shift", (1.0, 0.0)),
    "MoveLeft": ("shift", (-1.0, 0.0)),
    "MoveUp": ("shift", (0.0, -1.0)),
    "MoveDown": ("shift", (0.0, 1.0)),
    "MoveUpRight": ("shift", (math.sqrt(0.5), -math.sqrt(0.5))),
    "MoveUpLeft": ("shift", (-math.sqrt(0.5), -math.sqrt(0.5))),
    "MoveDownRight": ("shift", (math.sqrt(0.5), math.sqrt(0.5))),
    "MoveDownLeft": ("shift", (-math.sqrt(0.5), math.sqrt(0.5))),
    "RotateClockwise": ("turn", 1.0),
    "RotateCounterClockwise": ("turn", -1.0),
}
"""Class name -> how the whole scene moves: shifted (x, y direction) or turned (clockwise +1).

No zooms: a zoom changes the texture's grain from frame to frame, so its first or last frame
would tell in from out."""

GROUPS_PER_CLASS = 25
SPLIT_COUNT = 3
TEST_GROUPS_PER_SPLIT = 7  # UCF101 tests on 7 of the 25 groups per class
GENERATOR_VERSION = 4  # bump when render_clip changes, so caches regenerate


@dataclass(frozen=True)
class SyntheticSpec:
    """Everything that decides the generated files; its hash names the cache folder."""

    classes: tuple[str, ...] = tuple(MOTIONS)
    clips_per_group: tuple[int, int] = (3, 4)
    width: int = 64
    height: int = 48
    fps: int = 25
    seconds: tuple[float, float] = (3.0, 4.0)
    noise: float = 4.0  # per-pixel noise of every frame (grey levels, standard deviation)
    scenes: int = 8  # colour palettes shared across classes; each group films one
    grain: tuple[float, float] = (1.5, 2.5)  # size of the texture's blobs (pixels: its smoothing's sigma)
    edges: float = 0.0  # 0: smooth blobs; > 0: patches with sharp borders (the steepness of a tanh)
    contrast: float = 45.0  # grey levels, standard deviation of the texture
    speed: tuple[float, float] = (0.25, 0.45)  # pixels per frame (turns: at half the height from the centre)
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
    """A palette (a 'scene'): a base colour and the two colours its texture mixes in."""
    base = rng.uniform(70, 185, size=3)
    mix = rng.normal(0, 1, size=(2, 3))
    mix *= spec.contrast / np.linalg.norm(mix, axis=1, keepdims=True) * math.sqrt(3)
    return {"base": base.astype(np.float32), "mix": mix.astype(np.float32)}


def texture_size(spec: SyntheticSpec) -> int:
    """Pixels a side of the periodic scene texture: a power of two, twice the frame's longer side, so a
    frame never shows the same place twice (64x48 frames: 128)."""
    return 1 << math.ceil(math.log2(2 * max(spec.width, spec.height)))


def _field(rng: np.random.Generator, smoothing: np.ndarray, edges: float) -> np.ndarray:
    """A periodic, isotropic random field of unit variance: white noise through the `smoothing` filter
    (its spectrum), as smooth blobs or, with `edges`, patches with sharp borders."""
    field = np.fft.ifft2(np.fft.fft2(rng.normal(size=smoothing.shape)) * smoothing).real
    field = (field - field.mean()) / field.std()
    if edges:
        field = np.tanh(edges * field)
        field /= field.std()
    return field


def _texture(style: dict, rng: np.random.Generator, spec: SyntheticSpec) -> np.ndarray:
    """A periodic, isotropic random texture (S, S, 3): its statistics are the same at every place and angle."""
    size, sigma = texture_size(spec), rng.uniform(*spec.grain)
    f = np.fft.fftfreq(size)
    smoothing = np.exp(-2 * (math.pi * sigma) ** 2 * (f[:, None] ** 2 + f[None, :] ** 2))  # a Gaussian blur
    stacked = np.stack([_field(rng, smoothing, spec.edges) for _ in range(2)], -1)  # (S, S, 2)
    return (style["base"] + stacked @ style["mix"]).astype(np.float32)


def _sample(texture: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples of the periodic `texture` (S, S, C), S a power of two, at float coordinates, wrapping around."""
    size = texture.shape[0]
    flat = texture.reshape(size * size, -1)
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    mask = size - 1  # & wraps negative coordinates too
    x0, y0 = x0.astype(np.int32) & mask, y0.astype(np.int32) & mask
    x1, y1 = (x0 + 1) & mask, (y0 + 1) & mask
    y0, y1 = y0 * size, y1 * size
    top = flat[y0 + x0] * (1 - fx) + flat[y0 + x1] * fx
    bottom = flat[y1 + x0] * (1 - fx) + flat[y1 + x1] * fx
    return top * (1 - fy) + bottom * fy


def render_clip(motion: str, style: dict, rng: np.random.Generator, spec: SyntheticSpec) -> np.ndarray:
    """Frames (T, H, W, 3) uint8 of one clip: the camera's view of a textured scene that moves as `motion` says.

    The texture is periodic and isotropic, and the view starts at a uniformly random place and
    angle, so every single frame is a sample of the same random scene whatever the class: only
    how frames follow one another tells the motion (`tests/data/test_synthetic_motion.py`).
    """
    h, w = spec.height, spec.width
    n_frames = int(round(rng.uniform(*spec.seconds) * spec.fps))
    kind, direction = MOTIONS[motion]
    speed = float(rng.uniform(*spec.speed))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = (w - 1) / 2 + float(rng.uniform(-0.1, 0.1)) * w, (h - 1) / 2 + float(rng.uniform(-0.1, 0.1)) * h
    dx, dy = xx - cx, yy - cy
    texture = _texture(style, rng, spec)
    # where each pixel's content was at the first frame, in screen coordinates (all frames at once);
    # the first frame's view of the texture starts at a random place, turned by a random angle
    origin = [float(o) for o in rng.uniform(0, texture_size(spec), size=2)]
    angle0 = float(rng.uniform(0, 2 * math.pi))
    c0, s0 = math.cos(angle0), math.sin(angle0)
    t = np.arange(n_frames, dtype=np.float32)[:, None, None]
    if kind == "shift":
        u, v = dx - speed * t * direction[0], dy - speed * t * direction[1]
    else:
        back = -direction * speed / (h / 2) * t
        u, v = np.cos(back) * dx - np.sin(back) * dy, np.sin(back) * dx + np.cos(back) * dy
    frames = _sample(texture, origin[0] + c0 * u - s0 * v, origin[1] + s0 * u + c0 * v)
    frames += spec.noise * rng.standard_normal((n_frames, h, w, 3), dtype=np.float32)
    return np.clip(frames, 0, 255).astype(np.uint8)


def write_avi(path: Path, frames: np.ndarray, fps: int, bit_rate: int = 150_000) -> None:
    """Encode MPEG-4 Part 2 with the XVID tag, as UCF101's files are (ffmpeg's default: a keyframe every 12 frames)."""
    import av

    tmp = path.with_name(path.name + ".part")
    with av.open(str(tmp), mode="w", format="avi") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.codec_tag = "XVID"
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = bit_rate
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


def _write_clip(root: Path, rel: str, motion: str, style: dict, seed: tuple[int, ...], spec: SyntheticSpec) -> None:
    write_avi(root / "UCF-101" / rel, render_clip(motion, style, np.random.default_rng(seed), spec), spec.fps)


def generate(root: Path, spec: SyntheticSpec) -> None:
    """Write the whole dataset into `root` (UCF-101/ and ucfTrainTestlist/).

    Every clip draws from its own seed (the spec's seed, class, group and clip number), so the
    files are the same however many threads render and encode them (one per core).
    """
    rng = np.random.default_rng(spec.seed)
    videos, work = [], []
    # Scenes come from one palette shared by all classes: every group films one scene,
    # as a UCF101 group shares actor and scene, but the scene never tells the class.
    palette = [_scene(rng, spec) for _ in range(spec.scenes)]
    for k, cls in enumerate(spec.classes):
        (root / "UCF-101" / cls).mkdir(parents=True, exist_ok=True)
        for group in range(1, GROUPS_PER_CLASS + 1):
            style = palette[(group - 1) % spec.scenes]
            for clip in range(1, int(rng.integers(spec.clips_per_group[0], spec.clips_per_group[1] + 1)) + 1):
                rel = f"{cls}/v_{cls}_g{group:02d}_c{clip:02d}.avi"
                work.append((root, rel, cls, style, (spec.seed, k, group, clip), spec))
                videos.append((cls, group, rel))
    # threads, not processes: NumPy and the encoder release the GIL for most of the work, and a
    # sweep's job (a joblib worker process) could not start processes of its own
    with ThreadPoolExecutor(len(os.sched_getaffinity(0))) as pool:
        list(pool.map(lambda args: _write_clip(*args), work))
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
    with FileLock(root.with_name(root.name + ".lock")):
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
