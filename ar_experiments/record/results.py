"""The keys of results.json: one line per key, with its meaning and unit.

The writer (training/run_record.py) can only write these keys (the dataclass refuses others); the report's
validation checks each key by the type written here (report/results_validation.py), and its run table's
columns name keys of it (report/formatting.py; tests/report/test_record_keys.py checks them).
"""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass, fields
from typing import Any, NewType

Fraction = NewType("Fraction", float)
"""An accuracy: a fraction in [0, 1] of the videos evaluated (never a percentage)."""


@dataclass(slots=True)  # slots: setting a key not defined here fails at once
class RunRecord:
    """One run's results.json. None: not known (a run that failed before measuring it, or does not apply)."""

    # --- what ran: from the config, known before anything is built
    status: str = "running"  # running, completed, failed or interrupted ("running": the run died unrecorded)
    run_name: str | None = None  # {model}-{frames}f-split{split}: the W&B run, job folder and report row
    error: str | None = None  # "Type: message" when status is failed or interrupted
    data: str | None = None  # the dataset's name: synthetic, ucf101
    model: str | None = None  # x3d_m, slowfast, ...
    frames: int | None = None  # frames per clip
    stride: int | None = None  # video frames between two frames of a clip
    split: int | None = None  # the official UCF101 split, 1-3
    seed: int | None = None  # the run's seed (weights, clips, holdout order)
    optimizer: str | None = None  # the optimiser's class name: ASGD, SGD, AdamW
    lr: float | None = None  # optimizer.lr as configured, for optimizer.reference_batch_size clips a step
    protocol: str | None = None  # seed or paper
    pretrained: str | None = None  # kinetics400, or None for random initialisation
    pretrained_weights: str | None = None  # the checkpoint file the weights came from
    pretrained_tensors_loaded: int | None = 0  # tensors copied from it (count)
    pretrained_tensors_skipped: int | None = 0  # tensors left out: the classifier (count)
    git_commit: str | None = None  # the commit of the code that ran
    git_dirty: bool | None = None  # whether that tree had uncommitted changes
    versions: dict[str, str] | None = None  # package -> version, and the CUDA and cuDNN torch uses
    overrides: list[str] | None = None  # the job's Hydra overrides, key=value
    resumed_from: str | None = None  # the checkpoint file this run resumed from
    # --- the network, once built
    params: int | None = None  # parameters of the network (count)
    gflops: float | None = None  # multiply-adds of one view, in billions (the model-zoo convention)
    # --- what the fit measured
    epochs: int | None = None  # training epochs run (count)
    best_val_acc: Fraction | None = None  # validation top-1 of the checkpoint that was tested
    test_top1: Fraction | None = None  # video-level top-1 of the central clip
    test_top5: Fraction | None = None  # video-level top-5 of the central clip
    test_top1_multiview: Fraction | None = None  # top-1 of the softmax averaged over the test views
    test_top5_multiview: Fraction | None = None  # top-5 likewise
    test_mean_class_acc: Fraction | None = None  # multi-view top-1 of each class, averaged over classes
    test_views: int | None = None  # test views per video: temporal views x spatial crops
    test_videos: int | None = None  # test videos evaluated (count)
    val_videos: int | None = None  # validation videos evaluated (count)
    skipped_videos: int | None = None  # unreadable training videos, each replaced by another (skipped_videos.txt)
    skipped_val_videos: int | None = None  # unreadable validation videos, left out (skipped_val_videos.txt)
    skipped_test_videos: int | None = None  # unreadable test videos, left out (skipped_test_videos.txt)
    lr_effective: float | None = None  # the learning rate used, after optimizer.lr_scaling
    effective_batch_size: int | None = None  # clips per optimiser step: batch x devices x accumulation
    device: str | None = None  # cpu, "cuda:3 (NVIDIA H200)", DDP "cuda:0,1 (2 x NVIDIA H200)"
    world_size: int | None = None  # processes that trained (DDP ranks)
    train_seconds: float | None = None  # seconds spent in training epochs (validation excluded)
    train_clips_per_s: float | None = None  # training clips per second over those seconds
    startup_s: float | None = None  # seconds from the job's start to its first training step
    wall_seconds: float | None = None  # seconds from the job's start to this record
    peak_rss_mb: float | None = None  # this process's peak resident memory, in MiB
    peak_gpu_mb: float | None = None  # the peak GPU memory reserved by this process, in MiB; null on CPU
    best_checkpoint: str | None = None  # the checkpoint that was tested


def _kind(hint: Any) -> Any:
    """The type a key holds when known: `Fraction | None` -> Fraction, `dict[str, str] | None` -> dict."""
    kind = next((arg for arg in typing.get_args(hint) if arg is not type(None)), hint)
    return typing.get_origin(kind) or kind


KINDS = {name: _kind(hint) for name, hint in typing.get_type_hints(RunRecord).items()}
KEYS = tuple(field.name for field in fields(RunRecord))
_KIND_NAMES = {str: "text", bool: "true or false", dict: "an object", list: "a list"}


def record_from(values: dict[str, Any]) -> RunRecord:
    """A RunRecord of a parsed results.json; keys this code does not define (another version's) are left out."""
    return RunRecord(**{key: value for key, value in values.items() if key in KINDS})


def value_problem(key: str, value: Any) -> str | None:
    """What is wrong with `value` for results.json's `key` (None when nothing, or when the key is not defined here)."""
    kind = KINDS.get(key)
    if value is None or kind is None:
        return None
    if kind in (Fraction, int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{key} is {value!r}, not a number"
        if kind is Fraction and not (math.isfinite(value) and 0.0 <= value <= 1.0):
            return f"{key} is {value!r}, outside [0, 1] (accuracies are fractions; a percentage?)"
        return f"{key} is NaN" if math.isnan(value) else None
    if not isinstance(value, kind):
        return f"{key} is {value!r}, not {_KIND_NAMES[kind]}"
    return None
