"""`python -m ar_experiments.predict`: video files of any kind -> top-k labels from a checkpoint."""

import json
import shutil
import subprocess
import sys

import pytest
import torch

from ar_experiments.predict import main
from tests.conftest import REPO
from tests.video_files import write_video

CLASSES = ["Archery", "Bowling", "Diving"]
VIEWS = {"frames": 4, "stride": 8, "short_side": 36, "crop_size": 32, "temporal_views": 2, "spatial_crops": 3}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A checkpoint as train() leaves it (one optimiser step on random clips), saved by Lightning."""
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader

    from ar_experiments.training.module import VideoClassifier

    torch.manual_seed(0)
    module = VideoClassifier(
        model={"name": "x3d_m", "frames": 4, "crop_size": 32, "channels_last": True},
        class_names=CLASSES,
        optimizer={"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 1e-3},
        view_settings=VIEWS,
    )
    clips = [{"video": torch.randn(3, 4, 32, 32), "label": i % 3} for i in range(4)]
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path_factory.mktemp("fit"),
    )
    trainer.fit(module, train_dataloaders=DataLoader(clips, batch_size=4))
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    return [
        # shorter than the clip span (25 frames) at a very low frame rate
        write_video(folder / "low_fps.avi", "mpeg4", fps=5, width=64, height=48, frames=10),
        write_video(folder / "with_audio.mp4", "libx264", fps=30, width=320, height=180, frames=45, audio="aac"),
        write_video(folder / "portrait.mkv", "libx264", fps=25, width=48, height=64, frames=30),
        write_video(folder / "web.webm", "libvpx-vp9", fps=12, width=96, height=54, frames=30, audio="libopus"),
        write_video(folder / "full_hd.mp4", "mpeg4", fps=30, width=1920, height=1080, frames=3),
    ]


def run_predict(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_checkpoint_loads_safely_with_its_class_names_and_view_settings(checkpoint):
    hparams = torch.load(checkpoint, map_location="cpu", weights_only=True)["hyper_parameters"]
    assert hparams["class_names"] == CLASSES and hparams["view_settings"] == VIEWS


def test_json_gives_a_distribution_over_the_checkpoints_classes_for_every_kind_of_video(checkpoint, videos, capsys):
    code, out, err = run_predict(capsys, *videos, f"ckpt={checkpoint}", "--json", "--top-k", "2")
    assert code == 0, err
    report = json.loads(out)
    assert [entry["video"] for entry in report["videos"]] == [str(v) for v in videos]
    for entry in report["videos"]:
        assert entry["views"] == 6
        assert sorted(entry["probabilities"]) == sorted(CLASSES)
        assert sum(entry["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
        top = entry["top_k"]
        assert len(top) == 2 and top[0]["probability"] >= top[1]["probability"]
        assert all(item["label"] == CLASSES[item["index"]] for item in top)
        assert top[0]["probability"] == pytest.approx(max(entry["probabilities"].values()))


def test_text_output_lists_top_labels_with_probabilities(checkpoint, videos, capsys):
    code, out, _ = run_predict(capsys, videos[0], f"ckpt={checkpoint}")
    assert code == 0
    assert str(videos[0]) in out
    ranked = [line for line in out.splitlines() if line.strip()[:2] in ("1.", "2.", "3.")]
    assert len(ranked) == 3  # top-5 capped at the three classes
    assert {line.split()[-1] for line in ranked} == set(CLASSES)


def test_run_folder_uses_its_best_checkpoint_and_its_test_views(checkpoint, videos, tmp_path, capsys):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(checkpoint, run / "checkpoints" / "last.ckpt")
    shutil.copy(checkpoint, run / "checkpoints" / "best-epoch03.ckpt")
    (run / ".hydra").mkdir()
    # the run's own config wins over the checkpoint: one temporal view x one crop
    (run / ".hydra" / "config.yaml").write_text(
        "test: {temporal_views: 1, spatial_crops: 1}\n"
        "data: {frames: 4, stride: 8, short_side: 36, crop_size: 32,"
        " temporal_views: '${test.temporal_views}', spatial_crops: '${test.spatial_crops}'}\n"
    )
    code, out, _ = run_predict(capsys, videos[1], f"ckpt={run}", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["checkpoint"].endswith("best-epoch03.ckpt")
    assert report["videos"][0]["views"] == 1


def test_missing_video_is_named_before_anything_loads(checkpoint, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "nowhere.mp4"), f"ckpt={checkpoint}"])
    assert exit_info.value.code == 2
    assert "nowhere.mp4" in capsys.readouterr().err


def test_unreadable_video_is_named_and_the_others_still_get_labels(checkpoint, videos, tmp_path, capsys):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    code, out, err = run_predict(capsys, broken, videos[0], f"ckpt={checkpoint}", "--json")
    assert code == 1
    assert "broken.mp4" in err
    first, second = json.loads(out)["videos"]
    assert "broken.mp4" in first["error"] and second["top_k"]


def test_missing_checkpoint_says_what_to_pass(videos, tmp_path, capsys):
    code, _, err = run_predict(capsys, videos[0], f"ckpt={tmp_path / 'no_run'}")
    assert code == 2 and "no_run" in err and "ckpt=" in err


@pytest.mark.slow
def test_command_line_entry_point(checkpoint, videos):
    result = subprocess.run(
        [sys.executable, "-m", "ar_experiments.predict", str(videos[2]), f"ckpt={checkpoint}", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["videos"][0]["top_k"][0]["label"] in CLASSES
