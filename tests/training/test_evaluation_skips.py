"""Unreadable validation and test videos are left out and counted once, however many batches (or loader
workers) meet them; a stand-in network and trainer drive the module's hooks (no fit). The slow test in
test_faults.py holds the same end to end, through a real run on broken files."""

import logging
import math
from types import SimpleNamespace

import pytest
import torch
from pytorch_lightning.trainer.states import RunningStage

from ar_experiments.training import module as training_module


class Uniform(torch.nn.Module):
    def forward(self, clips):
        return torch.zeros(clips.shape[0], 3)


@pytest.fixture
def classifier(monkeypatch):
    monkeypatch.setattr(training_module, "build_model", lambda **_: Uniform())
    return training_module.VideoClassifier({"name": "x3d_m"}, ["a", "b", "c"])


def in_stage(module, stage):
    module._trainer = SimpleNamespace(state=SimpleNamespace(stage=stage))


def batch_meeting(*skipped: str) -> dict:
    return {"skipped": list(skipped), "skipped_reason": [f"{path}: moov atom not found" for path in skipped]}


@pytest.mark.parametrize(("stage", "name"), [(RunningStage.VALIDATING, "val"), (RunningStage.TESTING, "test")])
def test_a_video_met_in_several_batches_is_left_out_once_and_named_once(classifier, caplog, stage, name):
    in_stage(classifier, stage)
    with caplog.at_level(logging.WARNING, logger=training_module.__name__):
        for batch in (batch_meeting("A/v_1.avi"), batch_meeting("A/v_1.avi", "B/v_2.avi"), batch_meeting()):
            classifier.on_after_batch_transfer(batch, 0)
    assert classifier.left_out[name] == {"A/v_1.avi", "B/v_2.avi"}
    assert classifier.skipped_videos == set(), "an evaluation skip is no training replacement"
    named = [r.getMessage() for r in caplog.records]
    assert len(named) == 2 and all(f"left out of the {name} metrics" in message for message in named)


def test_a_training_video_met_twice_is_one_replaced_video(classifier, caplog):
    classifier._trainer = None  # outside an evaluation stage: training
    with caplog.at_level(logging.WARNING, logger=training_module.__name__):
        classifier.on_after_batch_transfer(batch_meeting("A/v_1.avi"), 0)
        classifier.on_after_batch_transfer(batch_meeting("A/v_1.avi"), 1)
    assert classifier.skipped_videos == {"A/v_1.avi"} and classifier.left_out == {"val": set(), "test": set()}
    assert len(caplog.records) == 1 and "replaced by another" in caplog.records[0].getMessage()


def test_test_videos_evaluated_count_each_video_once_whatever_batches_carry_its_views(classifier):
    classifier.log = lambda *args, **kwargs: None  # no trainer to log to
    classifier.on_test_epoch_start()
    clips = torch.zeros(2, 3, 4, 8, 8, 3, dtype=torch.uint8)  # 2 videos: central clip + 2 views each
    classifier.test_step({"video": clips, "index": torch.tensor([0, 1]), "label": torch.tensor([0, 1])}, 0)
    # the next batch's videos were all unreadable: nothing to evaluate
    classifier.test_step({"video": None, "index": torch.empty(0), "label": torch.empty(0)}, 1)
    classifier.test_step({"video": clips[:1], "index": torch.tensor([2]), "label": torch.tensor([2])}, 2)
    classifier.on_test_epoch_end()
    assert classifier.evaluated["test"] == 3
    assert classifier.test_predictions is classifier.multiview and classifier.multiview.views == {0: 2, 1: 2, 2: 2}


def validated_on_one_rank(module, batches, videos_on_all_ranks: int) -> dict:
    """What `module` logs (name: the metric) for a validation pass over `batches` on one DDP rank, all ranks
    together having evaluated `videos_on_all_ranks` videos (the stand-in strategy's sum)."""
    logged = {}
    module.log = lambda name, value, **_: logged.__setitem__(name, value)
    reduce = lambda tensor, reduce_op: tensor.new_tensor(videos_on_all_ranks)  # noqa: E731
    module._trainer = SimpleNamespace(
        state=SimpleNamespace(fn="fit", stage=RunningStage.VALIDATING), strategy=SimpleNamespace(reduce=reduce)
    )
    module.on_validation_epoch_start()
    for number, batch in enumerate(batches):
        module.validation_step(batch, number)
    module.on_validation_epoch_end()
    return logged


def test_a_rank_whose_every_validation_video_is_unreadable_logs_what_the_other_ranks_log(classifier):
    """Under DDP each logged metric is a reduction every rank must join: a rank that logged nothing would leave
    the others waiting (tests/training/test_ddp_unreadable_share.py runs it on 2 real ranks)."""
    readable = {"video": torch.zeros(2, 3, 4, 8, 8), "label": torch.tensor([0, 1])}
    unreadable = {"video": None, "label": torch.empty(0, dtype=torch.long)}
    other_rank = training_module.VideoClassifier({"name": "x3d_m"}, ["a", "b", "c"])
    with_videos = validated_on_one_rank(classifier, [readable, unreadable], videos_on_all_ranks=2)
    without = validated_on_one_rank(other_rank, [unreadable], videos_on_all_ranks=2)
    assert sorted(without) == sorted(with_videos) == ["val/loss", "val/top1", "val/top5"]
    # uniform scores over 3 classes: the first class is predicted, right for one of the two readable videos
    assert with_videos["val/top1"].compute() == 0.5 and with_videos["val/loss"].compute() == pytest.approx(math.log(3))
    assert classifier.evaluated["val"] == other_rank.evaluated["val"] == 2
    assert validated_on_one_rank(classifier, [unreadable], videos_on_all_ranks=0) == {}, "no video: no metric"
