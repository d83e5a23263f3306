"""Compute cost of a network per view, counted the way the model zoos count it."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_gflops(net: nn.Module, frames: int, crop_size: int) -> float:
    """Multiply-adds (in billions) of one forward pass on a (1, 3, frames, crop, crop) clip.

    Convolutions and linear layers only, one multiply-add per MAC, as
    pytorchvideo's and SlowFast's model zoos report "GFLOPs" (SlowFast R50 8x8
    at 32x256x256: 65.71). The pass runs on the meta device: shapes only, no
    arithmetic, so it takes well under a second on a CPU and leaves `net` untouched.
    """
    shadow = copy.deepcopy(net).to("meta").eval()
    clip = torch.empty(1, 3, frames, crop_size, crop_size, device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        shadow(clip)
    return counter.get_total_flops() / 2 / 1e9  # the counter counts a multiply-add as two operations
