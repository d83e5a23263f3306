"""Classify video files with a trained run: top-k labels with probabilities.

    python -m ar_experiments.predict clip.mp4 other.avi ckpt=outputs/2024-05-01/12-00-00
    python -m ar_experiments.predict clip.mp4 ckpt=path/to/best-epoch07.ckpt --json --top-k 3

Each video is prepared as the run's test did (frames, stride, scaling, views), with the softmax averaged
over the views: docs/evaluation.md, "`predict`".
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from .data.dataset import VideoClipDataset
from .data.decode import VideoDecodeError
from .data.splits import VideoRecord
from .data.transforms import ClipTransform, normalise_clips
from .evaluation.video_level import ViewSettings
from .models import VideoNet, build_model
from .training.module import network_args


@dataclass
class TrainedModel:
    """A network with what it needs to classify a video: class names and view settings."""

    net: VideoNet
    class_names: list[str]
    views: ViewSettings
    checkpoint: Path


def find_checkpoint(path: str | Path) -> Path:
    """The checkpoint file itself, or a run folder's best checkpoint (else its last one)."""
    path = Path(path).expanduser()
    if path.is_file():
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint not found: {path}; pass ckpt=<run folder> or ckpt=<file.ckpt>")
    folder = path / "checkpoints"
    best = sorted(folder.glob("best-*.ckpt"), key=lambda p: p.stat().st_mtime)
    if best:
        return best[-1]
    if (folder / "last.ckpt").is_file():
        return folder / "last.ckpt"
    raise FileNotFoundError(f"no checkpoints/best-*.ckpt or checkpoints/last.ckpt in the run folder {path}")


def view_settings(run_dir: Path | None, hparams: dict, checkpoint: Path) -> ViewSettings:
    """The run's test settings: its `.hydra/config.yaml` when there is one, else the checkpoint's."""
    config_file = run_dir / ".hydra" / "config.yaml" if run_dir is not None else None
    if config_file is not None and config_file.is_file():
        from omegaconf import OmegaConf

        return ViewSettings.from_data_config(OmegaConf.load(config_file).data)
    if hparams.get("view_settings"):
        return ViewSettings(**hparams["view_settings"])
    raise ValueError(
        f"{checkpoint} does not record how its run prepared test videos (no view_settings in its "
        "hyperparameters); pass the run folder instead, ckpt=<folder holding .hydra/config.yaml>"
    )


def load_trained_model(path: str | Path, device: str = "cpu") -> TrainedModel:
    """Rebuild the network of a checkpoint (or of a run folder's best checkpoint); weights_only: no code runs."""
    checkpoint = find_checkpoint(path)
    run_dir = Path(path).expanduser() if Path(path).expanduser().is_dir() else None
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for a bad file; all mean the same here
        raise ValueError(f"cannot load checkpoint {checkpoint}: {err}") from err
    hparams = state.get("hyper_parameters") or {}
    if "model" not in hparams or "class_names" not in hparams:
        raise ValueError(f"{checkpoint} is not a checkpoint of ar_experiments.train (no model or class names in it)")
    class_names = list(hparams["class_names"])
    net = build_model(num_classes=len(class_names), **network_args(hparams["model"]))
    prefix = "net."
    net.load_state_dict({k[len(prefix) :]: v for k, v in state["state_dict"].items() if k.startswith(prefix)})
    return TrainedModel(net.to(device).eval(), class_names, view_settings(run_dir, hparams, checkpoint), checkpoint)


def video_probabilities(model: TrainedModel, video: str | Path) -> torch.Tensor:
    """Class probabilities (C,) of one video file, averaged over the test views."""
    settings = model.views
    views = VideoClipDataset(
        [VideoRecord(str(video), -1, "")],
        Path(),
        settings.frames,
        settings.stride,
        ClipTransform(settings.crop_size, "center"),
        short_side=settings.short_side,
        sampling="views",
        temporal_views=settings.temporal_views,
        spatial_crops=settings.spatial_crops,
        max_aspect_ratio=settings.max_aspect_ratio,
    )
    item = views[0]
    if item["video"] is None:  # unreadable: the reason alone, without the training settings' advice
        raise VideoDecodeError(item["skipped_reason"])
    device = next(model.net.parameters()).device
    clips = item["video"].to(device)  # uint8 (N, T, H, W, C): the central clip, then every view
    with torch.inference_mode():
        probabilities = model.net(normalise_clips(clips)).float().softmax(1).cpu()
    return probabilities[1:].mean(0) if len(probabilities) > 1 else probabilities[0]


def describe(model: TrainedModel, video: str, probabilities: torch.Tensor, top_k: int) -> dict:
    """The JSON record of one video's prediction."""
    values, indices = probabilities.topk(min(top_k, len(model.class_names)))
    return {
        "video": video,
        "views": model.views.views,
        "top_k": [
            {"index": int(i), "label": model.class_names[i], "probability": float(p)}
            for p, i in zip(values.tolist(), indices.tolist())
        ],
        "probabilities": {name: float(p) for name, p in zip(model.class_names, probabilities.tolist())},
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ar_experiments.predict",
        description="Top-k action labels of video files, from a trained run's checkpoint.",
        epilog="Any container and codec PyAV reads (AVI, MP4, MKV, WebM), any frame rate and size.",
    )
    parser.add_argument("videos", nargs="+", metavar="VIDEO", help="video files, then ckpt=<run folder or .ckpt>")
    parser.add_argument("--json", action="store_true", help="print one JSON document (all class probabilities too)")
    parser.add_argument("--top-k", type=int, default=5, help="labels to show per video (default 5)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    checkpoints = [item.split("=", 1)[1] for item in args.videos if item.startswith("ckpt=")]
    args.videos = [item for item in args.videos if not item.startswith("ckpt=")]
    if len(checkpoints) != 1 or not checkpoints[0]:
        parser.error("give the trained run once: ckpt=<run folder> or ckpt=<file.ckpt>")
    args.ckpt = checkpoints[0]
    if not args.videos:
        parser.error("no video given; pass one or more video files before ckpt=...")
    missing = [video for video in args.videos if not Path(video).is_file()]
    if missing:
        parser.error("video file(s) not found: " + ", ".join(missing))
    if args.top_k < 1:
        parser.error(f"--top-k {args.top_k}; it must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Exit status 0 when every video was classified, 1 when one could not be read, 2 for bad arguments."""
    args = parse_args(argv)
    try:
        model = load_trained_model(args.ckpt, args.device)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    results, failed = [], False
    for video in args.videos:
        try:
            results.append(describe(model, video, video_probabilities(model, video), args.top_k))
        except VideoDecodeError as err:
            failed = True
            results.append({"video": video, "error": str(err)})
            print(f"error: {err}", file=sys.stderr)
    if args.json:
        print(json.dumps({"checkpoint": str(model.checkpoint), "videos": results}, indent=2))
    else:
        print_table(results, model)
    return 1 if failed else 0


def print_table(results: list[dict], model: TrainedModel) -> None:
    settings = model.views
    print(
        f"checkpoint {model.checkpoint} ({len(model.class_names)} classes; {settings.frames} frames x stride "
        f"{settings.stride}, {settings.temporal_views} clip(s) x {settings.spatial_crops} crop(s) per video)"
    )
    for result in results:
        if "error" in result:
            continue
        print(f"\n{result['video']}")
        for rank, entry in enumerate(result["top_k"], start=1):
            print(f"  {rank}. {entry['probability']:6.1%}  {entry['label']}")


if __name__ == "__main__":
    sys.exit(main())
