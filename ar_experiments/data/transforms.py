"""Clip transforms on uint8 (T, H, W, C) arrays -> normalised float (C, T, H, W) tensors.

Training and validation clips are cropped (random + optional flip, or centre) and
normalised in the loader workers. Test clips travel as uint8 crops (a quarter of
the bytes of float ones; a 10 x 3-view video is 30 clips) and are normalised where
the model runs, by `normalise_clips`, with the same arithmetic.
"""

from __future__ import annotations

import numpy as np
import torch

KINETICS_MEAN = (0.45, 0.45, 0.45)
KINETICS_STD = (0.225, 0.225, 0.225)


SPATIAL_VIEWS = {1: ("center",), 3: ("left", "center", "right")}


def normalise_clips(clips: torch.Tensor) -> torch.Tensor:
    """uint8 (..., T, H, W, C) -> float32 (..., C, T, H, W) on the clips' device, scaled to [0, 1] then normalised.

    Two passes: one transposing conversion to float, one fused scale-and-shift
    ((x / 255 - mean) / std = x * scale + shift, per channel), each on
    contiguous memory where the vectorised kernels apply.
    """
    mean = torch.tensor(KINETICS_MEAN, device=clips.device).view(-1, 1, 1, 1)
    std = torch.tensor(KINETICS_STD, device=clips.device).view(-1, 1, 1, 1)
    clip = clips.movedim(-1, -4).to(torch.float32, memory_format=torch.contiguous_format)
    return clip.mul_(1.0 / (255.0 * std)).add_(-mean / std)


def to_normalised_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 (T, H, W, C) array -> float32 (C, T, H, W), as `normalise_clips`."""
    if any(stride < 0 for stride in frames.strides):  # torch cannot view a flipped array
        frames = np.ascontiguousarray(frames)
    return normalise_clips(torch.from_numpy(frames))


def crop_clip(frames: np.ndarray, size: int, position: str, rng: np.random.Generator | None = None) -> np.ndarray:
    """A `size` x `size` crop of uint8 (T, H, W, C) frames (a view, no copy) at `position`: 'random',
    'center', or 'left'/'right' along the long side (top/bottom for portrait video)."""
    _, height, width, _ = frames.shape
    if height < size or width < size:
        raise ValueError(
            f"frames of {width}x{height} are smaller than data.crop_size={size}; "
            "raise data.short_side to at least data.crop_size"
        )
    free_y, free_x = height - size, width - size
    if position == "random":
        top, left = int(rng.integers(0, free_y + 1)), int(rng.integers(0, free_x + 1))
    elif position == "center":
        top, left = free_y // 2, free_x // 2
    else:
        end = 0 if position == "left" else 1
        top, left = (free_y // 2, free_x * end) if width >= height else (free_y * end, free_x // 2)
    return frames[:, top : top + size, left : left + size]


class ClipTransform:
    """Crop (random/center/left/right), optional horizontal flip, normalise."""

    def __init__(self, crop_size: int, crop: str = "center", flip: bool = False):
        self.crop_size = crop_size
        self.crop = crop
        self.flip = flip

    def __call__(self, frames: np.ndarray, rng: np.random.Generator | None = None):
        cropped = crop_clip(frames, self.crop_size, self.crop, rng)
        if self.flip and rng is not None and rng.random() < 0.5:
            cropped = cropped[:, :, ::-1]
        return to_normalised_tensor(cropped)
