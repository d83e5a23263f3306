"""Map-style dataset: item i is one video; a clip is sampled inside __getitem__.

Training draws a new random clip of each video every epoch, from a generator
seeded by (seed, epoch, video index), so runs are reproducible whatever the
number of workers. The epoch reaches the workers through the sampler, which
yields (index, epoch) pairs: that also holds with persistent workers.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from .clips import sample_clip_indices
from .decode import VideoDecodeError, decode_clip
from .splits import VideoRecord
from .transforms import SPATIAL_VIEWS, ClipTransform

log = logging.getLogger(__name__)


class VideoClipDataset(Dataset):
    """Clips of videos listed in `records`, decoded from `videos_dir`.

    sampling='random' (training), 'center' (one central clip) or 'views':
    item = (video, temporal view) for multi-view testing, each item holding
    the `spatial_crops` crops stacked as (S, C, T, H, W).
    """

    def __init__(
        self,
        records: list[VideoRecord],
        videos_dir: str | Path,
        frames: int,
        stride: int,
        transform: ClipTransform,
        short_side: int | None = None,
        sampling: str = "center",
        temporal_views: int = 1,
        spatial_crops: int = 1,
        seed: int = 0,
        on_bad_video: str = "skip",
    ):
        if on_bad_video not in ("skip", "error"):
            raise ValueError(f"data.on_bad_video={on_bad_video!r}; use skip or error")
        if spatial_crops not in SPATIAL_VIEWS:
            raise ValueError(f"test.spatial_crops={spatial_crops}; use one of {sorted(SPATIAL_VIEWS)}")
        self.records = records
        self.videos_dir = Path(videos_dir)
        self.frames, self.stride = frames, stride
        self.transform = transform
        self.short_side = short_side
        self.sampling = sampling
        self.temporal_views = temporal_views if sampling == "views" else 1
        self.spatial_crops = spatial_crops
        self.seed = seed
        self.on_bad_video = on_bad_video

    def __len__(self) -> int:
        return len(self.records) * self.temporal_views

    def _load(self, video: int, view: int, rng: np.random.Generator):
        mode = {"random": "random", "center": "center", "views": "uniform"}[self.sampling]

        def pick(count: int):
            return sample_clip_indices(count, self.frames, self.stride, mode, rng, view, self.temporal_views)

        frames = decode_clip(str(self.videos_dir / self.records[video].path), pick, self.short_side)
        if self.sampling == "views":
            crops = SPATIAL_VIEWS[self.spatial_crops]
            return torch.stack([self.transform(frames, rng, crop) for crop in crops])
        return self.transform(frames, rng)

    def __getitem__(self, item):
        """The clip of `item`, or of the next readable video of the split when it cannot be decoded.

        A replacement keeps its own label. `skipped` names the unreadable video
        and `skipped_reason` says why; the training module warns once per video
        (workers are separate processes, so they cannot deduplicate).
        """
        item, epoch = item if isinstance(item, tuple) else (item, 0)
        video, view = divmod(item, self.temporal_views)
        rng = np.random.default_rng((self.seed, epoch, video, view))
        reason = ""
        for attempt in range(len(self.records)):
            candidate = (video + attempt) % len(self.records)
            try:
                clip = self._load(candidate, view, rng)
            except VideoDecodeError as err:
                if self.on_bad_video == "error":
                    raise VideoDecodeError(
                        f"{err}; set data.on_bad_video=skip to train on without it, or list every unreadable "
                        "video with `python -m ar_experiments.check_data` (same data settings)"
                    ) from err
                log.debug("unreadable video, trying the next one of the split: %s", err)
                reason = reason or str(err)
                continue
            record = self.records[candidate]
            skipped = self.records[video].path if candidate != video else ""
            return {
                "video": clip,
                "label": record.label,
                "index": candidate,
                "view": view,
                "skipped": skipped,
                "skipped_reason": reason if skipped else "",
            }
        raise VideoDecodeError(
            f"no video of this split could be decoded (the first: {reason}); is {self.videos_dir} the right folder?"
        )


class EpochTaggedSampler(Sampler):
    """Wraps a sampler so each index travels with the epoch: yields (index, epoch)."""

    def __init__(self, base: Sampler):
        self.base = base
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if hasattr(self.base, "set_epoch"):
            self.base.set_epoch(epoch)

    def __iter__(self):
        return ((index, self.epoch) for index in self.base)

    def __len__(self) -> int:
        return len(self.base)


class EpochSeededRandomSampler(Sampler):
    """A permutation per epoch from (seed, epoch): reproducible shuffling."""

    def __init__(self, size: int, seed: int):
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        return iter(np.random.default_rng((self.seed, self.epoch)).permutation(self.size).tolist())

    def __len__(self) -> int:
        return self.size


class ShardSampler(Sampler):
    """Every rank takes indices rank, rank + world, ...: no padding, no duplicates."""

    def __init__(self, size: int, rank: int, world_size: int):
        self.indices = list(range(rank, size, world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
