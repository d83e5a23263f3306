"""Video-level testing: every video becomes one prediction, however batches cut its views."""

import pytest
import torch

from ar_experiments.evaluation.video_level import VideoLevelAccumulator, accuracy_summary


def test_views_split_across_batches_out_of_order_become_one_prediction_per_video():
    torch.manual_seed(0)
    # 3 videos x 4 temporal views, each view already averaged over its 3 crops
    view_probs = torch.rand(3, 4, 5).softmax(-1)
    items = [(video, view) for video in range(3) for view in range(4)]
    order = torch.randperm(len(items)).tolist()
    accumulator = VideoLevelAccumulator()
    for start in range(0, len(order), 5):  # batches of 5 items: views of one video land in different batches
        batch = [items[i] for i in order[start : start + 5]]
        accumulator.update(
            torch.tensor([video for video, _ in batch]),
            torch.stack([view_probs[video, view] for video, view in batch]),
            torch.tensor([video % 2 for video, _ in batch]),
            views_per_item=3,
        )
    indices, probabilities, labels = accumulator.predictions()
    assert indices == [0, 1, 2]
    assert accumulator.views == {0: 12, 1: 12, 2: 12}
    assert torch.allclose(probabilities, view_probs.mean(1), atol=1e-6)
    assert labels.tolist() == [0, 1, 0]
    assert torch.allclose(probabilities.sum(1), torch.ones(3))


def test_views_with_different_crop_counts_are_weighted_by_their_crops():
    accumulator = VideoLevelAccumulator()
    accumulator.update(torch.tensor([7]), torch.tensor([[1.0, 0.0]]), torch.tensor([0]), views_per_item=3)
    accumulator.update(torch.tensor([7]), torch.tensor([[0.0, 1.0]]), torch.tensor([0]), views_per_item=1)
    _, probabilities, _ = accumulator.predictions()
    assert probabilities.tolist() == [[0.75, 0.25]]


def test_accuracy_summary_counts_videos_and_averages_classes():
    probabilities = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]])
    labels = torch.tensor([0, 1, 1, 1])
    summary = accuracy_summary(probabilities, labels, 3)
    assert summary["top1"] == pytest.approx(0.5)
    assert summary["mean_class_acc"] == pytest.approx((1.0 + 1 / 3) / 2)


def test_module_averages_each_videos_views_and_keeps_its_central_clip(tiny_dataset):
    """Through Lightning: each test item is a whole video (central clip, then 2 x 3 views); the module's
    multi-view prediction is the mean over the views, its single-view one the central clip's."""
    import pytorch_lightning as pl
    from torch.utils.data import Subset

    from ar_experiments.data.datamodule import VideoDataModule
    from ar_experiments.data.transforms import normalise_clips
    from ar_experiments.training.module import VideoClassifier

    data = VideoDataModule(
        root=str(tiny_dataset),
        split=1,
        frames=4,
        stride=8,
        crop_size=32,
        short_side=36,
        batch_size=8,
        num_workers=0,
        temporal_views=2,
        spatial_crops=3,
    )
    data.setup("test")
    torch.manual_seed(0)
    module = VideoClassifier({"name": "x3d_m", "frames": 4, "crop_size": 32}, data.classes)
    videos = 3
    loader = data.test_dataloader()
    assert loader.batch_size == 4, "up to 4 x 8 clips per batch: 4 videos of 1 + 6 clips"
    subset = torch.utils.data.DataLoader(
        Subset(data.test_set, range(videos)), batch_size=2, collate_fn=loader.collate_fn
    )
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    metrics = trainer.test(module, dataloaders=subset, verbose=False)[0]

    indices, probabilities, labels = module.test_predictions.predictions()
    assert indices == list(range(videos))
    assert [module.test_predictions.views[i] for i in indices] == [6] * videos
    assert labels.tolist() == [data.index.test[i].label for i in range(videos)]
    module.eval()  # Lightning puts the module back in training mode after testing
    with torch.no_grad():
        clips = [module(normalise_clips(data.test_set[v]["video"])).softmax(1) for v in range(videos)]
    torch.testing.assert_close(probabilities, torch.stack([c[1:].mean(0) for c in clips]), rtol=1e-5, atol=1e-6)
    _, central, _ = module.single_view.predictions()
    torch.testing.assert_close(central, torch.stack([c[0] for c in clips]), rtol=1e-5, atol=1e-6)
    assert metrics["test/top1"] == accuracy_summary(central, labels, len(data.classes))["top1"]


class ViewLogits(torch.nn.Module):
    """A stand-in network that answers each clip of a batch with the logits it was given, in order."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = logits

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        assert clips.shape[0] == self.logits.shape[0]
        return self.logits


def test_test_step_averages_the_softmax_of_views_not_their_logits(monkeypatch):
    """Views that disagree sharply: the mean of their softmaxes differs by far from the softmax of their mean
    logits, so averaging the wrong thing (or taking one view, or the central clip) is seen."""
    from ar_experiments.training import module as training_module

    # one video: central clip, then 3 views; one view is sure of class 0, two lean to class 2
    logits = torch.tensor([[0.0, 5.0, 0.0], [9.0, 0.0, 0.0], [0.0, 0.0, 1.5], [0.0, 0.5, 2.0]])
    monkeypatch.setattr(training_module, "build_model", lambda **_: ViewLogits(logits))
    module = training_module.VideoClassifier({"name": "x3d_m"}, ["a", "b", "c"])
    module.on_test_epoch_start()
    clips = torch.zeros(1, 4, 4, 8, 8, 3, dtype=torch.uint8)  # (videos, clips, T, H, W, C) as the loader sends
    module.test_step({"video": clips, "index": torch.tensor([7]), "label": torch.tensor([2])}, 0)

    indices, probabilities, labels = module.multiview.predictions()
    expected = logits[1:].softmax(1).mean(0)
    assert indices == [7] and labels.tolist() == [2] and module.multiview.views[7] == 3
    torch.testing.assert_close(probabilities[0], expected, rtol=1e-6, atol=1e-7)
    assert (logits[1:].mean(0).softmax(0) - expected).abs().max() > 0.3, "the input must tell the two apart"
    assert expected.argmax() == 2 and logits[1:].mean(0).argmax() == 0  # and they even disagree on the class
    _, central, _ = module.single_view.predictions()
    torch.testing.assert_close(central[0], logits[0].softmax(0))
