"""What the training bench times: clocks on Lightning's hooks and the timings they give."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytorch_lightning as pl


@dataclass
class LoopTiming:
    """One pass of a training loop: its timed steps, their idle part and what the warm-up steps cost."""

    steps: int
    seconds: float  # the timed steps together
    warmup_steps: int
    warmup_seconds: float
    idle_seconds: float = 0.0
    peak_gpu_bytes: int | None = None

    @property
    def compile_s(self) -> float:
        """What the warm-up steps took beyond as many steady ones: compilation, cuDNN autotuning, first allocations."""
        return max(0.0, self.warmup_seconds - self.warmup_steps * self.seconds / self.steps)


@dataclass
class EvaluationTiming:
    """Validation clips (after the first batch) and the whole multi-view test, through the trainer."""

    val_clips: int
    val_seconds: float
    test_videos: int
    test_seconds: float
    views: str  # temporal x spatial views per test video


@dataclass
class VariantResult:
    """Every round of one model under one variant; `error` when it could not run."""

    model: str
    variant: str
    batch_size: int
    setting: str
    fit: list[LoopTiming] = field(default_factory=list)
    plain: list[LoopTiming] = field(default_factory=list)
    evaluation: EvaluationTiming | None = None
    error: str | None = None


class BatchClock(pl.Callback):
    """Start and end of every training step, end and clip count of every validation batch.

    A batch ends once its GPU work has (synchronised).
    """

    def __init__(self, synchronize: Callable[[], None]):
        self.synchronize = synchronize
        self.starts: list[float] = []
        self.ends: list[float] = []
        self.clips: list[int] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.starts.append(time.perf_counter())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._end(batch)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._end(batch)

    def _end(self, batch: dict) -> None:
        self.synchronize()
        self.ends.append(time.perf_counter())
        self.clips.append(int(batch["label"].shape[0]))

    def timing(self, warmup: int) -> LoopTiming:
        """The training steps after `warmup`: each from its start to the next one's (the last to its end).

        The idle part of a step runs from the end of the one before it to its start:
        the model waits for its batch (and for the loop's bookkeeping).
        """
        starts, ends = self.starts, self.ends
        idle = sum(starts[i + 1] - ends[i] for i in range(warmup, len(ends) - 1))
        return LoopTiming(
            steps=len(ends) - warmup,
            seconds=ends[-1] - starts[warmup],
            warmup_steps=warmup,
            warmup_seconds=starts[warmup] - starts[0],
            idle_seconds=idle,
        )
