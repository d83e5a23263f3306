"""Hostile videos (issue 18): extreme aspect ratios and errors raised while converting or scaling frames.

Every error met while decoding, converting or scaling a video is that video's
fault: skipped and named in training, left out of evaluation, reported by
check_data (which converts frames as the loader does), one line from predict.
"""

from __future__ import annotations

import json

import pytest

from ar_experiments.check_data import check_data
from ar_experiments.data.dataset import VideoClipDataset
from ar_experiments.data.decode import RgbConverter, decode_clip
from ar_experiments.data.splits import load_split
from ar_experiments.data.transforms import ClipTransform
from ar_experiments.predict import main as predict_main
from tests.commands.test_check_data import compose_check  # noqa: F401  (fixture)
from tests.conftest import compose
from tests.fault_injection import copy_dataset
from tests.video_files import write_video


def write_extreme_video(path, width=2, height=16000):
    """A 2 KB H.264 clip; scaled to a short side of 36, its frames would be 36 x 288,000 pixels."""
    return write_video(path, "h264", 25, width, height, 3)


@pytest.fixture
def dataset_with_extreme_videos(tiny_dataset, tmp_path):
    """A copy of the tiny dataset whose 2nd training video and 1st test video are 2x16000 clips."""
    root = copy_dataset(tiny_dataset, tmp_path / "data")
    index = load_split(root, 1)
    extreme = write_extreme_video(tmp_path / "extreme.mp4").read_bytes()
    for record in (index.train[1], index.test[0]):
        (root / "UCF-101" / record.path).write_bytes(extreme)
    return root, index


def dataset(root, records, sampling, **options):
    return VideoClipDataset(records, root / "UCF-101", 4, 8, ClipTransform(32, "center"), 36, sampling, **options)


def test_a_video_of_extreme_aspect_ratio_is_refused_with_the_reason(tmp_path):
    path = str(write_extreme_video(tmp_path / "tall.mp4"))
    with pytest.raises(Exception, match=r"2x16000 pixels, an aspect ratio of 8000:1 above data.max_aspect_ratio=4"):
        decode_clip(path, lambda count: [0, 1], short_side=36)
    assert decode_clip(path, lambda count: [0, 1], short_side=None, max_aspect_ratio=None).shape == (2, 16000, 2, 3)


def test_extreme_videos_are_replaced_in_training_and_left_out_of_evaluation(dataset_with_extreme_videos):
    root, index = dataset_with_extreme_videos
    training = dataset(root, index.train[:4], "random")
    item = training[(1, 0)]
    assert item["index"] != 1 and item["skipped"] == index.train[1].path
    assert "aspect ratio of 8000:1" in item["skipped_reason"]
    testing = dataset(root, index.test[:2], "views", temporal_views=2, spatial_crops=3)
    left_out = testing[0]
    assert left_out["video"] is None and "data.max_aspect_ratio" in left_out["skipped_reason"]
    assert testing[1]["video"] is not None


def test_any_error_while_scaling_a_frame_is_the_videos_fault(tiny_dataset, monkeypatch):
    """As swscale's `Invalid argument returned 22` on an absurd size: named, skipped, never a crash."""
    index = load_split(tiny_dataset, 1)

    def refuse(self, frame, out):
        raise RuntimeError("Invalid argument returned 22")

    monkeypatch.setattr(RgbConverter, "__call__", refuse)
    item = dataset(tiny_dataset, index.test[:1], "center")[0]
    assert item["video"] is None
    assert index.test[0].path in item["skipped_reason"] and "Invalid argument returned 22" in item["skipped_reason"]


def test_check_data_converts_frames_as_the_loader_does(compose_check, dataset_with_extreme_videos, capsys):  # noqa: F811
    root, index = dataset_with_extreme_videos
    overrides = ["data=ucf101", f"data.root={root}", "data.short_side=36", "data.crop_size=32", "check.workers=1"]
    assert check_data(compose_check([*overrides, "split=1"])) == 1
    out = capsys.readouterr().out
    for record in (index.train[1], index.test[0]):
        assert f"unreadable: {record.path}: " in out
    assert "data.max_aspect_ratio=4" in out and "2 of 75 videos cannot be read" in out


@pytest.fixture
def checkpoint(tmp_path):
    """A checkpoint as predict reads it (hyperparameters and weights), without a training step."""
    import torch

    from ar_experiments.models import build_model
    from ar_experiments.training.module import network_args

    model = {"name": "x3d_m", "frames": 4, "crop_size": 32}
    views = {"frames": 4, "stride": 8, "short_side": 36, "crop_size": 32}
    net = build_model(num_classes=3, **network_args(model))
    state = {f"net.{key}": value for key, value in net.state_dict().items()}
    hyper_parameters = {"model": model, "class_names": ["A", "B", "C"], "view_settings": views}
    torch.save({"hyper_parameters": hyper_parameters, "state_dict": state}, tmp_path / "tiny.ckpt")
    return tmp_path / "tiny.ckpt"


def test_predict_names_an_extreme_or_unreadable_video_in_one_line(checkpoint, tmp_path, capsys):
    extreme = write_extreme_video(tmp_path / "wide.mp4", width=5400, height=2)
    broken = tmp_path / "broken.avi"
    broken.write_text("404: Not Found\n")
    code = predict_main([str(extreme), str(broken), f"ckpt={checkpoint}", "--json"])
    captured = capsys.readouterr()
    assert code == 1
    wide, unreadable = captured.err.strip().splitlines()
    assert wide.startswith("error: ") and "wide.mp4" in wide and "aspect ratio of 2700:1" in wide
    assert unreadable.startswith("error: ") and "broken.avi" in unreadable
    assert "on_bad_video" not in captured.err  # a training setting means nothing to predict
    assert "aspect ratio" in json.loads(captured.out)["videos"][0]["error"]


def test_explore_prints_a_split_file_error_in_one_message_without_a_traceback(tiny_dataset, tmp_path):
    from ar_experiments.explore import explore_or_exit

    root = copy_dataset(tiny_dataset, tmp_path / "data")
    with open(root / "ucfTrainTestlist" / "trainlist01.txt", "ab") as handle:
        handle.write(b"../../etc/passwd 1\r\n")
    cfg = compose(["data=ucf101", f"data.root={root}", f"paths.output_dir={tmp_path}"], config_name="explore")
    with pytest.raises(SystemExit) as stopped:  # the interpreter prints the message alone and exits with 1
        explore_or_exit(cfg)
    message = str(stopped.value.code)
    assert message.startswith("error: ") and "Traceback" not in message
    assert "trainlist01.txt:55: '../../etc/passwd' points outside data.root" in message
