"""Clips per second of three ways to load the same kind of random training clip.

- project: VideoClipDataset (seek, decode, scale while converting, crop, flip, normalise)
- pytorchvideo: its own path, LabeledVideoDataset with the PyAV decoder and the
  transform of its recipes (uniform temporal subsample, /255, normalise,
  short-side scale, random crop, flip), written with torchvision's transforms
  because `pytorchvideo.transforms` imports a module torchvision removed
  (`pytorchvideo.data` itself imports cleanly, so it runs unpatched)
- decode floor: PyAV decoding of exactly the frames a clip needs (seek to the
  keyframe before it, decode to its last frame) with no conversion at all

Each path runs in one DataLoader worker, as training runs it (one torch
thread; the project decodes unthreaded there), and times every clip there: only
the timings cross to the main process, since handing a clip over costs every
path the same (the training figures include it). All three sample 16 frames
every 5 frames at a random start.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from ..data.clips import sample_clip_indices
from ..data.dataset import VideoClipDataset
from ..data.splits import VideoRecord
from ..data.transforms import KINETICS_MEAN, KINETICS_STD, ClipTransform
from .figures import Pooled

FRAMES, STRIDE = 16, 5


def project_dataset(videos: list[Path], crop: int, short_side: int) -> VideoClipDataset:
    records = [VideoRecord(path.name, 0, f"bench_g{i:02d}") for i, path in enumerate(videos)]
    transform = ClipTransform(crop, "random", flip=True)
    return VideoClipDataset(
        records,
        videos[0].parent,
        FRAMES,
        STRIDE,
        transform,
        short_side=short_side,
        sampling="random",
        on_bad_video="error",
    )


class PytorchvideoRecipe:
    """pytorchvideo's training recipe on a {'video': (C, T, H, W) float 0..255} sample."""

    def __init__(self, crop: int, short_side: int):
        from torchvision.transforms import v2

        self.mean = torch.tensor(KINETICS_MEAN).view(-1, 1, 1, 1)
        self.std = torch.tensor(KINETICS_STD).view(-1, 1, 1, 1)
        # pytorchvideo's ShortSideScale interpolates without antialiasing
        resize = v2.Resize(short_side, antialias=False)
        self.spatial = v2.Compose([resize, v2.RandomCrop(crop), v2.RandomHorizontalFlip()])

    def __call__(self, sample: dict) -> dict:
        video = sample["video"]
        video = video.index_select(1, torch.linspace(0, video.shape[1] - 1, FRAMES).long())
        sample["video"] = self.spatial((video / 255.0 - self.mean) / self.std)
        return sample


def pytorchvideo_dataset(videos: list[Path], crop: int, short_side: int, fps: int, count: int):
    """LabeledVideoDataset visiting the videos in turn, one random clip per visit, `count` visits per pass."""
    from pytorchvideo.data import LabeledVideoDataset, make_clip_sampler

    return LabeledVideoDataset(
        [(str(videos[number % len(videos)]), {"label": 0}) for number in range(count)],
        make_clip_sampler("random", FRAMES * STRIDE / fps),
        video_sampler=torch.utils.data.SequentialSampler,
        transform=PytorchvideoRecipe(crop, short_side),
        decode_audio=False,
        decoder="pyav",
    )


def decode_floor(video: Path, rng: np.random.Generator) -> int:
    """Frames decoded from the keyframe before a random clip to its last frame, nothing converted."""
    import av

    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "NONE"  # as the project decodes in a worker
        indices = sample_clip_indices(stream.frames, FRAMES, STRIDE, "random", rng)
        ticks_per_frame = 1 / float(stream.average_rate * stream.time_base)
        first, last = int(indices[0] * ticks_per_frame), int(indices[-1] * ticks_per_frame)
        container.seek(first, stream=stream, backward=True, any_frame=False)
        decoded = 0
        for frame in container.decode(stream):
            decoded += frame.pts >= first
            if frame.pts >= last:
                break
    if decoded != indices[-1] - indices[0] + 1:
        raise RuntimeError(f"the decode floor got {decoded} frames of a clip spanning {indices[0]}..{indices[-1]}")
    return decoded


class TimedPath(IterableDataset):
    """(seconds, clip shape) of each clip of a round, timed in the loader's worker, where the clip is made.

    Each pass over the loader is the next round: `clips(round)` gives that round's clips.
    """

    def __init__(self, clips: Callable[[int], Iterator]):
        self.clips, self.round = clips, 0

    def __iter__(self):
        self.round += 1  # the worker's copy: it persists between rounds
        clips = self.clips(self.round)
        while True:
            started = time.perf_counter()
            clip = next(clips, None)
            if clip is None:
                return
            video = clip["video"] if isinstance(clip, dict) else clip
            yield time.perf_counter() - started, tuple(getattr(video, "shape", ()))


def measure_data_path(
    videos: list[Path], crop: int, short_side: int, fps: int, repeats: int, clips: int
) -> dict[str, Pooled]:
    """Clips and seconds of each path over `repeats` rounds of `clips` clips, alternating so load hits all alike.

    Each path is one DataLoader worker that stays up between rounds. A round visits the videos in turn,
    every visit a new random clip.
    """
    project = project_dataset(videos, crop, short_side)
    pytorchvideo = pytorchvideo_dataset(videos, crop, short_side, fps, clips)
    clip_shape = (3, FRAMES, crop, crop)

    def draws(round: int) -> Iterator[tuple[int, int]]:  # (video, draw): the project's items, the floor's seeds
        return ((n % len(videos), round * clips + n) for n in range(clips))

    paths = {
        "project": (lambda round: (project[item] for item in draws(round)), clip_shape),
        "pytorchvideo": (lambda round: iter(pytorchvideo), clip_shape),
        "decode_floor": (
            lambda round: (decode_floor(videos[v], np.random.default_rng((v, d))) for v, d in draws(round)),
            (),
        ),
    }
    timings = {name: Pooled() for name in paths}
    loaders = {
        name: DataLoader(TimedPath(path), batch_size=None, num_workers=1, persistent_workers=True)
        for name, (path, _) in paths.items()
    }
    for round_number in range(repeats + 1):  # round 0 warms up: the worker starts, files reach the page cache
        for name, loader in loaders.items():
            durations = []
            for seconds, shape in loader:
                if tuple(shape) != paths[name][1]:
                    raise RuntimeError(f"the {name} path gave a clip of shape {tuple(shape)}, not {paths[name][1]}")
                durations.append(seconds)
            if round_number:
                timings[name].add(len(durations), sum(durations))
    return timings
