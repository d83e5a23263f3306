"""Clip transforms on uint8 (T, H, W, C) arrays -> normalised float (C, T, H, W) tensors.

Train and eval pipelines are configuration (data.train_transform / data.eval_transform
options), not code paths: random crop + optional flip for training, centre crop
(or left/centre/right crops for multi-view testing) for evaluation.
"""

from __future__ import annotations

import numpy as np
import torch

KINETICS_MEAN = (0.45, 0.45, 0.45)
KINETICS_STD = (0.225, 0.225, 0.225)


def crop_offsets(height: int, width: int, size: int, position: str, rng: np.random.Generator | None = None):
    """Top-left corner of a `size` crop: 'random', 'center', or 'left'/'right' along the long side."""
    if height < size or width < size:
        raise ValueError(
            f"frames of {width}x{height} are smaller than data.crop_size={size}; "
            "raise data.short_side to at least data.crop_size"
        )
    free_y, free_x = height - size, width - size
    if position == "random":
        return int(rng.integers(0, free_y + 1)), int(rng.integers(0, free_x + 1))
    if position == "center":
        return free_y // 2, free_x // 2
    if position in ("left", "right"):
        end = 0 if position == "left" else 1
        # along the long side; top/bottom for portrait video
        return (free_y // 2, free_x * end) if width >= height else (free_y * end, free_x // 2)
    raise ValueError(f"unknown crop position {position!r}")


SPATIAL_VIEWS = {1: ("center",), 3: ("left", "center", "right")}


def to_normalised_tensor(frames: np.ndarray, mean=KINETICS_MEAN, std=KINETICS_STD) -> torch.Tensor:
    """uint8 (T, H, W, C) -> float32 (C, T, H, W), scaled to [0, 1] then normalised.

    Two passes over the clip: one transposing conversion to float, one fused
    scale-and-shift ((x / 255 - mean) / std = x * scale + shift), each on
    contiguous memory where the vectorised kernels apply.
    """
    if any(stride < 0 for stride in frames.strides):  # torch cannot view a flipped array
        frames = np.ascontiguousarray(frames)
    clip = torch.from_numpy(frames).permute(3, 0, 1, 2).to(torch.float32, memory_format=torch.contiguous_format)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1, 1)
    return clip.mul_(1.0 / (255.0 * std_t)).add_(-mean_t / std_t)


class ClipTransform:
    """Crop (random/center/left/right), optional horizontal flip, normalise."""

    def __init__(self, crop_size: int, crop: str = "center", flip: bool = False):
        self.crop_size = crop_size
        self.crop = crop
        self.flip = flip

    def __call__(self, frames: np.ndarray, rng: np.random.Generator | None = None, crop: str | None = None):
        _, height, width, _ = frames.shape
        top, left = crop_offsets(height, width, self.crop_size, crop or self.crop, rng)
        frames = frames[:, top : top + self.crop_size, left : left + self.crop_size]
        if self.flip and rng is not None and rng.random() < 0.5:
            frames = frames[:, :, ::-1]
        return to_normalised_tensor(frames)
