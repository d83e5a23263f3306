"""Video-level testing: combine the views of each video, wherever batches cut them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ..data.video_limits import DEFAULT_MAX_ASPECT_RATIO

SET_APART = ("crop_size", "max_aspect_ratio")  # not taken as they are from a data config


@dataclass(frozen=True)
class ViewSettings:
    """How a test video becomes model input: clip sampling, scaling and the views averaged. Checkpoints keep
    these (`VideoClassifier`'s `view_settings`), so `predict` prepares a video exactly as the run's test did."""

    frames: int
    stride: int
    short_side: int
    crop_size: int
    temporal_views: int = 1
    spatial_crops: int = 1
    max_aspect_ratio: float = DEFAULT_MAX_ASPECT_RATIO

    @classmethod
    def from_data_config(cls, data: Any) -> ViewSettings:
        """From a run's `data` config (a DictConfig or dict with the datamodule's arguments)."""
        settings = {name: int(data[name]) for name in cls.__dataclass_fields__ if name not in SET_APART}
        crop_size = int(data.get("test_crop_size") or data["crop_size"])
        max_aspect_ratio = data.get("max_aspect_ratio", DEFAULT_MAX_ASPECT_RATIO)
        return cls(**settings, crop_size=crop_size, max_aspect_ratio=max_aspect_ratio)

    @property
    def views(self) -> int:
        return self.temporal_views * self.spatial_crops


class VideoLevelAccumulator:
    """Sums softmax scores per video index over all its views (temporal x spatial), which may come in several
    updates; under DDP the videos are spread over the ranks, and `merged()` combines every rank's."""

    def __init__(self):
        self.scores: dict[int, torch.Tensor] = {}
        self.views: dict[int, int] = {}
        self.labels: dict[int, int] = {}

    def update(self, indices: torch.Tensor, probabilities: torch.Tensor, labels: torch.Tensor, views_per_item: int = 1):
        """`probabilities` (B, C) are already averaged over the `views_per_item` crops of each item."""
        for index, probs, label in zip(indices.tolist(), probabilities.detach().float().cpu(), labels.tolist()):
            self.scores[index] = self.scores.get(index, 0) + probs * views_per_item
            self.views[index] = self.views.get(index, 0) + views_per_item
            self.labels.setdefault(index, label)

    def merged(self) -> VideoLevelAccumulator:
        """The union over DDP ranks (a no-op in a single process)."""
        parts = _every_ranks((self.scores, self.views, self.labels))
        if parts is None:
            return self
        total = VideoLevelAccumulator()
        for scores, views, labels in parts:
            for index, score in scores.items():
                total.update(
                    torch.tensor([index]), (score / views[index])[None], torch.tensor([labels[index]]), views[index]
                )
        return total

    def predictions(self) -> tuple[list[int], torch.Tensor, torch.Tensor]:
        """Video indices, mean probabilities (N, C) and labels (N), ordered by index."""
        order = sorted(self.scores)
        if not order:
            return [], torch.empty(0, 0), torch.empty(0, dtype=torch.long)
        probabilities = torch.stack([self.scores[i] / self.views[i] for i in order])
        return order, probabilities, torch.tensor([self.labels[i] for i in order])


def _every_ranks(value: Any) -> list | None:
    """Every DDP rank's `value`, in rank order; None in a single process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return None
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, value)
    return parts


def union_over_ranks(items: set[str]) -> set[str]:
    """The union of every DDP rank's `items` (the set itself in a single process)."""
    parts = _every_ranks(sorted(items))
    return set(items) if parts is None else {item for part in parts for item in part}


def accuracy_summary(probabilities: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict[str, float]:
    """Top-1, top-5 and mean class accuracy of video-level predictions, as fractions."""
    if len(labels) == 0:  # (float("NAN") is the same nan: equivalent mutants)
        return {"top1": float("nan"), "top5": float("nan"), "mean_class_acc": float("nan")}
    k = min(5, num_classes)
    topk = probabilities.topk(k, dim=1).indices  # (dim=-1 is dim 1 of (N, C): an equivalent mutant)
    correct = topk[:, 0] == labels
    per_class = [correct[labels == c].float().mean() for c in range(num_classes) if (labels == c).any()]
    return {
        "top1": correct.float().mean().item(),
        "top5": (topk == labels[:, None]).any(1).float().mean().item(),
        "mean_class_acc": torch.stack(per_class).mean().item(),
    }
