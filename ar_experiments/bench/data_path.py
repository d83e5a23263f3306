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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler

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


class RoundSampler(Sampler):
    """Items (video, draw) for `count` clips, the videos in turn; every item of every round draws its own clip."""

    def __init__(self, videos: int, count: int):
        self.videos, self.count, self.round = videos, count, 0

    def __iter__(self):
        first = self.round * self.count
        return ((number % self.videos, first + number) for number in range(self.count))

    def __len__(self) -> int:
        return self.count


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
    try:
        from pytorchvideo.data import LabeledVideoDataset, make_clip_sampler
    except ImportError as err:
        raise RuntimeError(f"pytorchvideo.data does not import here ({err}); the baseline needs it") from err
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

    def __len__(self) -> int:
        return len(self.videos)

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


class Timed(Dataset):
    """item -> (seconds the wrapped dataset took for it, shape of the clip it gave)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item):
        started = time.perf_counter()
        clip = self.dataset[item]
        return time.perf_counter() - started, _shape(clip)


class TimedIterable(IterableDataset):
    """(seconds, clip shape) for every sample of one pass over an iterable dataset."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __iter__(self):
        samples = iter(self.dataset)
        while True:
            started = time.perf_counter()
            try:
                sample = next(samples)
            except StopIteration:
                return
            yield time.perf_counter() - started, _shape(sample)


def _shape(clip) -> tuple | None:
    video = clip["video"] if isinstance(clip, dict) else clip
    return tuple(video.shape) if hasattr(video, "shape") else None


class ClipSource:
    """One path behind a one-worker DataLoader that stays up between rounds."""

    def __init__(self, name: str, dataset, sampler: RoundSampler | None, expected_shape: tuple | None):
        self.name, self.sampler, self.expected_shape = name, sampler, expected_shape
        self.loader = DataLoader(dataset, batch_size=None, sampler=sampler, num_workers=1, persistent_workers=True)

    def timed_round(self) -> tuple[int, float]:
        """(clips, seconds) of one round: every clip's time in the worker, summed."""
        if self.sampler is not None:
            self.sampler.round += 1
        durations = []
        for seconds, shape in self.loader:
            if self.expected_shape and tuple(shape) != self.expected_shape:
                raise RuntimeError(
                    f"the {self.name} path gave a clip of shape {tuple(shape)}, not {self.expected_shape}"
                )
            durations.append(seconds)
        return len(durations), sum(durations)


def measure_data_path(
    videos: list[Path], setting: ClipSetting, fps: int, repeats: int, clips: int
) -> dict[str, Pooled]:
    """Clips and seconds of each path over `repeats` rounds of `clips` clips, alternating so load hits all alike."""
    sources = [
        ClipSource(
            "project",
            Timed(project_dataset(videos, setting)),
            RoundSampler(len(videos), clips),
            setting.clip_shape,
        ),
        ClipSource(
            "pytorchvideo", TimedIterable(pytorchvideo_dataset(videos, setting, fps, clips)), None, setting.clip_shape
        ),
        ClipSource("decode_floor", Timed(DecodeFloor(videos, setting)), RoundSampler(len(videos), clips), None),
    ]
    for source in sources:  # warm-up: the worker starts, files reach the page cache
        source.timed_round()
    timings = {source.name: Pooled() for source in sources}
    for _ in range(repeats):
        for source in sources:
            timings[source.name].add(*source.timed_round())
    return timings
