"""Convolutions without spatial extent (1x1x1, kx1x1) as matrix multiplies, where that is faster."""

from __future__ import annotations

import torch
from torch import nn

POINTWISE_MATMUL = ("auto", True, False)
"""model.pointwise_matmul: auto (the matrix multiply on the CPU, PyTorch's Conv3d elsewhere), always, never."""


def matmul_wins(setting: str | bool, device: torch.device) -> bool:
    """Whether a convolution without spatial extent runs as a matrix multiply on `device` (`model.pointwise_matmul`).

    On the CPU the matrix multiply is 2-16x faster per layer; on an H200 (torch 2.11,
    bf16) it made SlowFast R50's step 14% slower and X3D-M's no faster, so `auto`
    keeps PyTorch's Conv3d there.
    """
    return setting is True or (setting == "auto" and device.type == "cpu")


class PointwiseConv3d(nn.Conv3d):
    """A Conv3d without spatial extent (1x1x1, or kx1x1 in time) computed as one matrix multiply where faster.

    Same parameters, same names, same result; on the CPU PyTorch runs these
    through a general 3D convolution whose backward pass is 2-16x slower than
    the matrix multiply (X3D-M has 88 1x1x1 ones: with them and fused optimiser
    steps its one-thread training step runs ~1.7x faster; `python -m
    ar_experiments.bench` measures them as its pointwise-conv variant). SlowFast's slow
    pathway has 3x1x1 convolutions over 1024-2048 channels and a few positions,
    which PyTorch runs at batch 8 on one thread through its unvectorised fallback:
    as a matrix multiply over the k frames unfolded into channels they take a fraction
    of the time. On a channels-last-3d tensor the permutes are views. Which of the two
    runs is decided at every call from the input's device (`matmul_wins`), so a
    network moved to a GPU after it was built does what suits the GPU.
    """

    matmul: str | bool = "auto"  # model.pointwise_matmul; set per layer by use_pointwise_matmul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not matmul_wins(self.matmul, x.device):
            return super().forward(x)
        if self.stride[1:] != (1, 1):
            x = x[:, :, :, :: self.stride[1], :: self.stride[2]]
        frames = self.kernel_size[0]
        if frames == 1:
            y = nn.functional.linear(x[:, :, :: self.stride[0]].movedim(1, -1), self.weight.flatten(1), self.bias)
            return y.movedim(-1, 1)
        if self.padding[0]:
            x = nn.functional.pad(x, (0, 0, 0, 0, self.padding[0], self.padding[0]))
        # (N, C, T', H, W, k) -> (N, T', H, W, C * k): the weight's (C, k) order
        columns = x.unfold(2, frames, self.stride[0]).permute(0, 2, 3, 4, 1, 5).flatten(-2)
        return nn.functional.linear(columns, self.weight.flatten(1), self.bias).permute(0, 4, 1, 2, 3)


def use_pointwise_matmul(net: nn.Module, setting: str | bool = "auto") -> int:
    """Swap every ungrouped Conv3d of `net` with no spatial extent or padding for a PointwiseConv3d (how many).

    A 1x1x1 convolution with temporal padding stays a Conv3d: its matrix multiply reads no padding, so the
    padded frames (zeros through the bias) would be missing from its output.
    """
    swapped = 0
    for module in net.modules():
        if (
            type(module) is nn.Conv3d
            and module.kernel_size[1:] == (1, 1)
            and module.groups == 1
            and isinstance(module.padding, tuple)
            and module.padding[1:] == (0, 0)
            and (module.kernel_size[0] > 1 or module.padding[0] == 0)
            and module.dilation == (1, 1, 1)
            and module.padding_mode == "zeros"
        ):
            module.__class__ = PointwiseConv3d  # same state: parameters, buffers and hooks stay as they are
            module.matmul = setting
            # SlowFast's fusion strides are numpy integers, which torch.compile cannot compare with a tuple
            module.stride = tuple(int(step) for step in module.stride)
            swapped += 1
    return swapped
