"""How much the bench measures: the full and quick plans, and the model settings each part trains."""

from __future__ import annotations

from dataclasses import dataclass

from .videos import QUICK_SHAPE, VideoShape

PARTS = ("data", "train", "multirun")


@dataclass(frozen=True)
class Plan:
    """How much to measure: the full plan fits the 10-minute budget on 2 cores; quick only checks that it runs."""

    videos: int
    shape: VideoShape
    crops: tuple[tuple[int, int], ...]  # (crop size, short side)
    data_repeats: int
    clips_per_repeat: int
    train_repeats: int
    train_steps: int
    train_warmup: int
    multirun_jobs: int
    tiny_synthetic: bool  # a 3-class synthetic dataset instead of the sweep's


FULL = Plan(4, VideoShape(), ((112, 128), (224, 256)), 5, 16, 3, 10, 2, 6, False)
QUICK = Plan(2, QUICK_SHAPE, ((112, 128),), 2, 2, 1, 2, 1, 2, True)
GPU_ROUNDS, GPU_STEPS, GPU_WARMUP = 1, 30, 5  # a GPU of one's own: one round; 5 warm-up steps cover compilation
# The bench's UCF101-layout folder: 20 classes, 15 training groups of 5 clips (1,500 videos: 46 batches of 32),
# 3 validation groups (300 videos), 7 test groups of one clip (140 videos, 4,200 clips at 10x3 views).
LAYOUT_CLASSES, LAYOUT_TRAIN_CLIPS_PER_GROUP = 20, 5
REAL_SIZE_MODELS = {"x3d_m": ["model=x3d_m", "frames=16"], "slowfast": ["model=slowfast", "frames=32"]}
SYNTHETIC_MODELS = {"x3d_m": ["model=x3d_m"], "slowfast": ["model=slowfast"]}
TINY_SYNTHETIC = [
    "data.synthetic.classes=[MoveRight,MoveLeft,RotateClockwise]",
    "data.synthetic.clips_per_group=[1,1]",
]
