"""Clips per second of three ways to load the same kind of random training clip.

- project: VideoClipDataset (seek, decode, scale while converting, crop, flip, normalise)
- pytorchvideo: its own path, LabeledVideoDataset with the PyAV decoder and the
  transform of its recipes (uniform temporal subsample, /255, normalise,
  short-side scale, random crop, flip), written with torch ops because
  `pytorchvideo.transforms` imports a module torchvision removed
  (`pytorchvideo.data` itself imports cleanly, so it runs unpatched)
- decode floor: PyAV decoding of exactly the frames a clip needs (seek to the
  keyframe before it, decode to its last frame) with no conversion at all

Each path runs in one DataLoader worker, as training runs it (one torch
thread; the project decodes unthreaded there), and times every clip there: only
the timings cross to the main process, since handing a clip over costs every
path the same (the training figures include it). All three sample `frames`
frames every `stride` frames at a random start.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from ..data.clips import sample_clip_indices
from ..data.dataset import VideoClipDataset
from ..data.splits import VideoRecord
from ..data.transforms import KINETICS_MEAN, KINETICS_STD, ClipTransform
from .figures import Pooled


@dataclass(frozen=True)
class ClipSetting:
    crop_size: int
    short_side: int
    frames: int = 16
    stride: int = 5

    @property
    def label(self) -> str:
        return f"crop {self.crop_size}"

    @property
    def clip_shape(self) -> tuple[int, int, int, int]:
        return (3, self.frames, self.crop_size, self.crop_size)


def project_dataset(videos: list[Path], setting: ClipSetting) -> VideoClipDataset:
    records = [VideoRecord(path.name, 0, f"bench_g{i:02d}") for i, path in enumerate(videos)]
    return VideoClipDataset(
        records,
        videos[0].parent,
        setting.frames,
        setting.stride,
        ClipTransform(setting.crop_size, "random", flip=True),
        short_side=setting.short_side,
        sampling="random",
        on_bad_video="error",
    )


class PytorchvideoStyleTransform:
    """pytorchvideo's training recipe on a {'video': (C, T, H, W) float 0..255} sample."""

    def __init__(self, setting: ClipSetting):
        self.setting = setting
        self.mean = torch.tensor(KINETICS_MEAN).view(-1, 1, 1, 1)
        self.std = torch.tensor(KINETICS_STD).view(-1, 1, 1, 1)

    def __call__(self, sample: dict) -> dict:
        video = sample["video"]
        count = video.shape[1]
        # UniformTemporalSubsample
        index = torch.linspace(0, count - 1, self.setting.frames).clamp(0, count - 1).long()
        video = torch.index_select(video, 1, index)
        # Div255 + Normalize
        video = (video / 255.0 - self.mean) / self.std
        # ShortSideScale
        _, _, height, width = video.shape
        size = self.setting.short_side
        new_size = (size, int(width * size / height)) if height < width else (int(height * size / width), size)
        video = torch.nn.functional.interpolate(video, size=new_size, mode="bilinear", align_corners=False)
        # RandomCrop + RandomHorizontalFlip
        crop = self.setting.crop_size
        top = int(torch.randint(0, video.shape[2] - crop + 1, (1,)))
        left = int(torch.randint(0, video.shape[3] - crop + 1, (1,)))
        video = video[:, :, top : top + crop, left : left + crop]
        if torch.rand(1) < 0.5:
            video = video.flip(-1)
        sample["video"] = video
        return sample


def pytorchvideo_dataset(videos: list[Path], setting: ClipSetting, fps: int, count: int):
    """LabeledVideoDataset visiting the videos in turn, one random clip per visit, `count` visits per pass."""
    from pytorchvideo.data import LabeledVideoDataset, make_clip_sampler

    return LabeledVideoDataset(
        [(str(videos[number % len(videos)]), {"label": 0}) for number in range(count)],
        make_clip_sampler("random", setting.frames * setting.stride / fps),
        video_sampler=torch.utils.data.SequentialSampler,
        transform=PytorchvideoStyleTransform(setting),
        decode_audio=False,
        decoder="pyav",
    )


class DecodeFloor(Dataset):
    """Item (video, draw) -> frames decoded from the keyframe before a random clip to its last frame."""

    def __init__(self, videos: list[Path], setting: ClipSetting):
        self.videos, self.setting = videos, setting

    def __getitem__(self, item: tuple[int, int]) -> int:
        import av

        video, draw = item
        rng = np.random.default_rng((video, draw))
        with av.open(str(self.videos[video])) as container:
            stream = container.streams.video[0]
            stream.thread_type = "NONE"  # as the project decodes in a worker
            indices = sample_clip_indices(stream.frames, self.setting.frames, self.setting.stride, "random", rng)
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
    """(seconds, clip shape) of every clip of one round, timed where the clips are made (the loader's worker).

    `clips(round)` gives a round's clips one at a time; each pass over the loader is the next round, so a
    map-style path draws new clips every round (its items are (video, draw)), as the iterable one does.
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
            yield time.perf_counter() - started, tuple(video.shape) if hasattr(video, "shape") else None


def _items(dataset: Dataset, videos: int, count: int) -> Callable[[int], Iterator]:
    """A map-style path's round: `count` items (video, draw), the videos in turn, every draw a new clip."""
    return lambda round: (dataset[(number % videos, round * count + number)] for number in range(count))


def _timed_round(name: str, loader: DataLoader, expected_shape: tuple | None) -> tuple[int, float]:
    """(clips, seconds) of one round: every clip's time in the worker, summed."""
    durations = []
    for seconds, shape in loader:
        if expected_shape and tuple(shape) != expected_shape:
            raise RuntimeError(f"the {name} path gave a clip of shape {tuple(shape)}, not {expected_shape}")
        durations.append(seconds)
    return len(durations), sum(durations)


def measure_data_path(
    videos: list[Path], setting: ClipSetting, fps: int, repeats: int, clips: int
) -> dict[str, Pooled]:
    """Clips and seconds of each path over `repeats` rounds of `clips` clips, alternating so load hits all alike.

    Each path is one DataLoader worker that stays up between rounds.
    """
    pytorchvideo = pytorchvideo_dataset(videos, setting, fps, clips)
    paths = {
        "project": (_items(project_dataset(videos, setting), len(videos), clips), setting.clip_shape),
        "pytorchvideo": (lambda round: iter(pytorchvideo), setting.clip_shape),
        "decode_floor": (_items(DecodeFloor(videos, setting), len(videos), clips), None),
    }
    loaders = {
        name: (DataLoader(TimedPath(path), batch_size=None, num_workers=1, persistent_workers=True), shape)
        for name, (path, shape) in paths.items()
    }
    for name, (loader, shape) in loaders.items():  # warm-up: the worker starts, files reach the page cache
        _timed_round(name, loader, shape)
    timings = {name: Pooled() for name in loaders}
    for _ in range(repeats):
        for name, (loader, shape) in loaders.items():
            timings[name].add(*_timed_round(name, loader, shape))
    return timings
