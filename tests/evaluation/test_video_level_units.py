"""Video-level testing's parts by exact value: view settings from a data config, accuracies, and the union over
DDP ranks (torch.distributed stood in for, in-process) (issue 26)."""

import dataclasses
import math

import pytest
import torch

from ar_experiments.data.video_limits import DEFAULT_MAX_ASPECT_RATIO
from ar_experiments.evaluation import video_level
from ar_experiments.evaluation.video_level import VideoLevelAccumulator, ViewSettings, accuracy_summary

DATA = {"frames": 8, "stride": 6, "short_side": 128, "crop_size": 112, "temporal_views": 10, "spatial_crops": 3}


def test_view_settings_come_from_the_data_config_with_the_test_crop_first():
    settings = ViewSettings.from_data_config({**DATA, "test_crop_size": 128, "max_aspect_ratio": 2.5})
    assert dataclasses.asdict(settings) == {**DATA, "crop_size": 128, "max_aspect_ratio": 2.5}
    assert settings.views == 30
    plain = ViewSettings.from_data_config({**DATA, "test_crop_size": None, "temporal_views": "2"})
    assert dataclasses.asdict(plain) == {
        **DATA, "temporal_views": 2, "crop_size": 112, "max_aspect_ratio": DEFAULT_MAX_ASPECT_RATIO,
    }  # fmt: skip
    assert plain.views == 6


def test_top5_top1_and_mean_class_accuracy_by_exact_value():
    probabilities = torch.tensor(
        [
            [0.50, 0.20, 0.10, 0.08, 0.07, 0.05],  # label 5: 6th, out of the top 5
            [0.05, 0.50, 0.20, 0.10, 0.08, 0.07],  # label 0: 6th
            [0.10, 0.50, 0.20, 0.08, 0.07, 0.05],  # label 1: first
            [0.05, 0.10, 0.50, 0.20, 0.08, 0.07],  # label 5: 5th, inside
        ]
    )
    summary = accuracy_summary(probabilities, torch.tensor([5, 0, 1, 5]), 6)
    assert summary == {"top1": 0.25, "top5": 0.5, "mean_class_acc": pytest.approx((0 + 1 + 0) / 3)}
    two_classes = accuracy_summary(torch.tensor([[0.4, 0.6], [0.7, 0.3]]), torch.tensor([0, 0]), 2)
    assert two_classes == {"top1": 0.5, "top5": 1.0, "mean_class_acc": 0.5}
    nothing = accuracy_summary(torch.empty(0, 3), torch.empty(0), 3)
    assert list(nothing) == ["top1", "top5", "mean_class_acc"] and all(map(math.isnan, nothing.values()))


def test_an_accumulator_without_videos_predicts_nothing_and_keeps_each_videos_first_label():
    indices, probabilities, labels = VideoLevelAccumulator().predictions()
    assert indices == [] and probabilities.shape == (0, 0) and labels.shape == (0,) and labels.dtype == torch.long
    accumulator = VideoLevelAccumulator()
    accumulator.update(torch.tensor([4]), torch.tensor([[0.25, 0.75]], dtype=torch.float16), torch.tensor([1]))
    accumulator.update(torch.tensor([4]), torch.tensor([[0.75, 0.25]]), torch.tensor([0]))
    indices, probabilities, labels = accumulator.predictions()
    assert (indices, probabilities.tolist(), labels.tolist()) == ([4], [[0.5, 0.5]], [1])
    assert probabilities.dtype == torch.float32 and accumulator.views == {4: 2}


class FakeGroup:
    """torch.distributed for one rank of `parts`: all_gather_object hands out every rank's object."""

    def __init__(self, parts):
        self.parts = parts

    def is_available(self):
        return True

    def is_initialized(self):
        return True

    def get_world_size(self):
        return len(self.parts)

    def all_gather_object(self, out, obj):
        assert obj in self.parts
        out[:] = self.parts


def test_the_union_over_ranks_counts_each_videos_views_from_every_rank(monkeypatch):
    first, second = VideoLevelAccumulator(), VideoLevelAccumulator()
    first.update(torch.tensor([0, 1]), torch.tensor([[1.0, 0.0], [0.5, 0.5]]), torch.tensor([0, 1]), 3)
    second.update(torch.tensor([1, 2]), torch.tensor([[0.0, 1.0], [0.2, 0.8]]), torch.tensor([1, 1]), 1)
    parts = [(a.scores, a.views, a.labels) for a in (first, second)]
    monkeypatch.setattr(video_level, "dist", FakeGroup(parts))
    merged = first.merged()
    indices, probabilities, labels = merged.predictions()
    assert indices == [0, 1, 2] and labels.tolist() == [0, 1, 1] and merged.views == {0: 3, 1: 4, 2: 1}
    torch.testing.assert_close(probabilities, torch.tensor([[1.0, 0.0], [0.375, 0.625], [0.2, 0.8]]))
    monkeypatch.setattr(video_level, "dist", FakeGroup([["a.avi", "b.avi"], ["c.avi"]]))
    assert video_level.union_over_ranks({"b.avi", "a.avi"}) == {"a.avi", "b.avi", "c.avi"}


def test_a_single_process_is_its_own_union(monkeypatch):
    accumulator = VideoLevelAccumulator()
    assert accumulator.merged() is accumulator
    items = {"a.avi"}
    assert video_level.union_over_ranks(items) == items and video_level.union_over_ranks(items) is not items
    monkeypatch.setattr(video_level, "dist", FakeGroup([(accumulator.scores, accumulator.views, accumulator.labels)]))
    assert accumulator.merged() is accumulator  # a group of one rank
    monkeypatch.setattr(video_level, "dist", FakeGroup([["a.avi"]]))
    assert video_level.union_over_ranks(items) == items
