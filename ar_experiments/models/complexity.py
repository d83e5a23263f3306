"""Compute cost of a network per view: GFLOPs counted as multiply-adds.

The convention is the one of the model zoos (pytorchvideo, PySlowFast, the X3D
and SlowFast papers): one multiply-add of a convolution or linear layer is one
FLOP, and normalisation, activations and pooling are not counted. With it,
SlowFast R50 8x8 (32 fast frames) at 256x256 gives pytorchvideo's 65.71 and
X3D-M with 16 frames at 256x256 the X3D paper's 6.2. A "view" is one clip of the
run's frames at its square crop size; a multi-view test costs views x that.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .builders import build_model


def count_gflops(net: nn.Module, frames: int, crop_size: int) -> float:
    """Multiply-adds (in billions) of one forward pass of `net` on a (1, 3, frames, crop, crop) clip.

    The pass runs on a meta-device copy: shapes only, no arithmetic, so it takes
    well under a second and leaves `net` untouched.
    """
    shadow = copy.deepcopy(net).to("meta").eval()
    clip = torch.empty(1, 3, frames, crop_size, crop_size, device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        shadow(clip)
    return counter.get_total_flops() / 2 / 1e9  # the counter counts a multiply-add as two operations


def clip_gflops(name: str, num_classes: int, frames: int, crop_size: int, **build_args) -> float:
    """GFLOPs of one view for a model config, built on the meta device (no memory, no compute)."""
    with torch.device("meta"):
        net = build_model(name, num_classes, frames, crop_size, **build_args)
    return count_gflops(net, frames, crop_size)
