"""Which frames of a video make a clip."""

from __future__ import annotations

import numpy as np


def clip_span(frames: int, stride: int) -> int:
    """Frames of video covered by a clip of `frames` frames taken every `stride`."""
    return (frames - 1) * stride + 1


def sample_clip_indices(
    video_frames: int,
    frames: int,
    stride: int,
    mode: str,
    rng: np.random.Generator | None = None,
    view: int = 0,  # (ignored while views is 1: its default's mutant is equivalent)
    views: int = 1,
) -> np.ndarray:
    """Frame indices of one clip.

    mode 'random' starts anywhere the clip fits (training), 'center' takes the
    middle clip, 'uniform' takes view `view` of `views` evenly spaced starts.
    A video shorter than the clip span repeats its last frame instead of failing.
    """
    if video_frames < 1:
        raise ValueError("a video needs at least one frame")
    slack = max(video_frames - clip_span(frames, stride), 0)
    if mode == "random":
        # (integers(slack + 1) also starts at 0: an equivalent mutant)
        start = int(rng.integers(0, slack + 1)) if rng is not None else 0
    elif mode == "center":
        start = slack // 2
    elif mode == "uniform":
        start = int(round(slack * (view + 0.5) / views)) if views > 1 else slack // 2
    else:
        raise ValueError(f"unknown clip sampling mode {mode!r}; use random, center or uniform")
    indices = start + stride * np.arange(frames)
    return np.minimum(indices, video_frames - 1)
