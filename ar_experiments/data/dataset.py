"""Map-style dataset: item i is one video; its clip (or test views) is sampled inside __getitem__.

Training draws a new random clip of each video every epoch, from a generator
seeded by (seed, epoch, video index), so runs are reproducible whatever the
number of workers. The epoch reaches the workers with each index: the training
batch sampler yields (index, epoch) pairs, which also holds with persistent
workers.

An unreadable video (data.on_bad_video=skip) is replaced by the next readable
video of its split in training, where only the number of clips matters; in
validation and testing it is left out, so no video is counted twice and every
accuracy is over the videos really evaluated. `collate_videos` drops the items
left out and passes their names on in the batch (`skipped`, `skipped_reason`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler, default_collate

from .clips import sample_clip_indices
from .decode import VideoDecodeError, decode_clip
from .splits import VideoRecord
from .transforms import SPATIAL_VIEWS, ClipTransform, crop_clip
from .video_limits import DEFAULT_MAX_ASPECT_RATIO

log = logging.getLogger(__name__)


class VideoClipDataset(Dataset):
    """Clips of videos listed in `records`, decoded from `videos_dir`.

    sampling='random' (training: a random clip, replaced by another video's when
    unreadable), 'center' (validation: the central clip) or 'views' (testing:
    the central clip's centre crop, then `temporal_views` evenly spaced clips x
    `spatial_crops` crops; all decoded in one pass over the video, where the
    clips overlap, and returned as uint8 (N, T, H, W, C) crops for the model's
    device to normalise; N = 1 + views, or 1 when the only view is the central clip).
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
        max_aspect_ratio: float | None = DEFAULT_MAX_ASPECT_RATIO,
    ):
        self.records = records
        self.videos_dir = Path(videos_dir)
        self.frames, self.stride = frames, stride
        self.transform = transform
        self.short_side = short_side
        self.sampling = sampling
        self.temporal_views = temporal_views if sampling == "views" else 1
        self.spatial_crops = spatial_crops if sampling == "views" else 1
        self.seed = seed
        self.on_bad_video = on_bad_video
        self.max_aspect_ratio = max_aspect_ratio

    def __len__(self) -> int:
        return len(self.records)

    @property
    def views(self) -> int:
        """Test views per video (temporal x spatial); 1 outside testing."""
        return self.temporal_views * self.spatial_crops

    @property
    def clips_per_item(self) -> int:
        """Clips in one item: the central one, plus the test views when there are several."""
        return 1 + self.views if self.views > 1 else 1

    def _decode(self, video: int, pick) -> np.ndarray:
        path = str(self.videos_dir / self.records[video].path)
        return decode_clip(path, pick, self.short_side, self.max_aspect_ratio)

    def _clip(self, video: int, rng: np.random.Generator | None) -> tuple[torch.Tensor, int]:
        """The clip and the number of its first frame."""
        mode = "random" if self.sampling == "random" else "center"
        picked = []

        def pick(count: int):
            picked.append(sample_clip_indices(count, self.frames, self.stride, mode, rng))
            return picked[0]

        frames = self._decode(video, pick)
        return self.transform(frames, rng), int(picked[0][0])

    def _views(self, video: int) -> tuple[torch.Tensor, int]:
        """The central clip, then every temporal view, decoded together (their frames overlap) and cropped;
        and the number of the central clip's first frame."""
        temporal = self.temporal_views if self.views > 1 else 0
        picked = []

        def pick(count: int):
            clips = [sample_clip_indices(count, self.frames, self.stride, "center")]
            picked.append(clips[0])
            clips += [
                sample_clip_indices(count, self.frames, self.stride, "uniform", None, view, self.temporal_views)
                for view in range(temporal)
            ]
            return np.concatenate(clips)

        frames = self._decode(video, pick)
        clips = frames.reshape(1 + temporal, self.frames, *frames.shape[1:])
        size, positions = self.transform.crop_size, SPATIAL_VIEWS[self.spatial_crops]
        crops = [crop_clip(clips[0], size, "center")]
        crops += [crop_clip(clip, size, position) for clip in clips[1:] for position in positions]
        return torch.from_numpy(np.stack(crops)), int(picked[0][0])

    def __getitem__(self, item):
        """The clip(s) of `item` (an index, or an (index, epoch) pair in training) with its label.

        An unreadable video is named in `skipped`, with `skipped_reason`; the training module warns once per
        video (workers cannot deduplicate).
        """
        video, epoch = item if isinstance(item, tuple) else (item, 0)
        if self.sampling != "random":
            try:
                clip, start = self._views(video) if self.sampling == "views" else self._clip(video, None)
            except VideoDecodeError as err:
                if self.on_bad_video == "error":
                    raise _stop_error(err) from err
                return _item(None, self.records[video].label, video, -1, self.records[video].path, str(err))
            return _item(clip, self.records[video].label, video, start)
        rng = np.random.default_rng((self.seed, epoch, video))
        reason = ""
        for attempt in range(len(self.records)):
            candidate = (video + attempt) % len(self.records)
            try:
                clip, start = self._clip(candidate, rng)
            except VideoDecodeError as err:
                if self.on_bad_video == "error":
                    raise _stop_error(err) from err
                log.debug("unreadable video, trying the next one of the split: %s", err)
                reason = reason or str(err)
                continue
            skipped = self.records[video].path if candidate != video else ""
            return _item(clip, self.records[candidate].label, candidate, start, skipped, reason if skipped else "")
        raise VideoDecodeError(
            f"no video of this split could be decoded (the first: {reason}); is {self.videos_dir} the right folder?"
        )


def _item(clip: torch.Tensor | None, label: int, index: int, start: int, skipped: str = "", reason: str = "") -> dict:
    """`clip_start`: the number of the (central) clip's first frame in its video."""
    return {
        "video": clip,
        "label": label,
        "index": index,
        "clip_start": start,
        "skipped": skipped,
        "skipped_reason": reason,
    }


def _stop_error(err: VideoDecodeError) -> VideoDecodeError:
    return VideoDecodeError(
        f"{err}; set data.on_bad_video=skip to go on without it, or list every unreadable "
        "video with `python -m ar_experiments.check_data` (same data settings)"
    )


def collate_videos(items: list[dict]) -> dict:
    """A batch of the readable items; `skipped` and `skipped_reason` list the unreadable videos met.

    A batch whose every video was left out has `video` None and empty `label` and `index`.
    """
    fields = ("video", "label", "index", "clip_start")
    kept = [{key: item[key] for key in fields} for item in items if item["video"] is not None]
    if kept:
        batch = default_collate(kept)
    else:
        batch = {key: torch.empty(0, dtype=torch.long) for key in fields} | {"video": None}
    batch["skipped"] = [item["skipped"] for item in items if item["skipped"]]
    batch["skipped_reason"] = [item["skipped_reason"] for item in items if item["skipped"]]
    return batch


class ShardSampler(Sampler):
    """Every rank takes indices rank, rank + world, ...: no padding, no duplicates.

    Every rank gets at least one video: under DDP a rank with no batch would log no metric, and the
    others would wait forever for it to join the metrics' reduction at the end of the pass.
    """

    def __init__(self, size: int, rank: int, world_size: int, stage: str = "validation"):
        if size < world_size:
            raise ValueError(
                f"{size} {stage} videos cannot be shared by {world_size} DDP ranks (each needs at least one); "
                "use fewer devices or more videos (data.val_groups_per_class for validation)"
            )
        self.indices = list(range(rank, size, world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
