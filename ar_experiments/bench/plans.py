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
REAL_SIZE_FRAMES = {"x3d_m": 16, "slowfast": 32}  # the models the training part measures, at real size
TINY_SYNTHETIC = [
    "data.synthetic.classes=[MoveRight,MoveLeft,RotateClockwise]",
    "data.synthetic.clips_per_group=[1,1]",
]

# The training settings compared with the seed's (batch 8, no compile, the trainer's precision), as Hydra
# overrides; any other setting is measured by passing its overrides to the bench (they apply to every variant).
SEED = "seed"
VARIANTS = {
    SEED: (),
    "batch16": ("data.batch_size=16",),
    "batch32": ("data.batch_size=32",),  # the learning rate follows optimizer.lr_scaling
    "compile": ("model.compile=true",),
    "fp32": ("trainer.precision=32-true", "model.fp32_precision=tf32"),
    "no-channels-last": ("model.channels_last=false",),
    "pointwise-conv": ("model.pointwise_matmul=false",),
    "pointwise-matmul": ("model.pointwise_matmul=true",),
}
DEFAULT_VARIANTS = {
    "cpu": ("batch16", "no-channels-last", "pointwise-conv"),
    "cuda": ("batch32", "compile", "fp32", "no-channels-last", "pointwise-matmul"),
    "quick": ("batch16",),
}


def pick(names) -> dict[str, tuple[str, ...]]:
    """The named variants and their overrides, the seed first whether named or not."""
    return {name: VARIANTS[name] for name in dict.fromkeys([SEED, *names])}
