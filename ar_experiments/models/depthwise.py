"""Depthwise 3D convolutions whose input gradient is itself a depthwise convolution, on the CPU.

On the CPU PyTorch's backward pass of a depthwise Conv3d (X3D's 3x3x3 and 5x1x1
layers, most of the network) spends 6-9 ms per layer on the input gradient at
the synthetic data's 32-pixel crops, even for tiny tensors, while a forward
depthwise convolution of the same size takes 0.1-0.8 ms. For stride 1 the input
gradient is exactly the output gradient convolved with the spatially flipped
kernel, so `DepthwiseConv3d` computes it that way; the weight gradient stays
PyTorch's. Same parameters, same names, same results up to float rounding
(`tests/models/test_cpu_kernels.py`); `python -m ar_experiments.bench` measures the
gain as the `depthwise-stock` variant. Elsewhere (GPUs, strided layers) it is a
plain Conv3d.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DEPTHWISE_GRAD = ("auto", False)
"""model.depthwise_grad: auto (the flipped-kernel input gradient on the CPU), false (PyTorch's everywhere)."""


class _FlippedKernelGrad(torch.autograd.Function):
    """conv3d(x, weight, bias) with groups == channels and stride 1; backward as described above."""

    @staticmethod
    def forward(ctx, x, weight, bias, padding):
        ctx.save_for_backward(x, weight)
        ctx.padding = padding
        ctx.has_bias = bias is not None
        return F.conv3d(x, weight, bias, 1, padding, 1, weight.shape[0])

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        groups = weight.shape[0]
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            flipped_padding = tuple(k - 1 - p for k, p in zip(weight.shape[2:], ctx.padding, strict=True))
            grad_x = F.conv3d(grad, weight.flip(2, 3, 4), None, 1, flipped_padding, 1, groups)
        if ctx.needs_input_grad[1]:
            grad_w = torch.ops.aten.convolution_backward(
                grad,
                x,
                weight,
                None,
                [1, 1, 1],
                list(ctx.padding),
                [1, 1, 1],
                False,
                [0, 0, 0],
                groups,
                [False, True, False],
            )[1]
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum((0, 2, 3, 4))
        return grad_x, grad_w, grad_b, None


class DepthwiseConv3d(nn.Conv3d):
    """A stride-1 depthwise Conv3d whose CPU backward computes the input gradient as a convolution."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or not torch.is_grad_enabled() or torch.is_autocast_enabled("cpu"):
            return super().forward(x)
        return _FlippedKernelGrad.apply(x, self.weight, self.bias, self.padding)


def qualifies(module: nn.Module) -> bool:
    """A plain Conv3d, one filter per channel, stride and dilation 1, zero padding no wider than the kernel."""
    return (
        type(module) is nn.Conv3d
        and module.groups > 1
        and module.groups == module.in_channels == module.out_channels
        and module.stride == (1, 1, 1)
        and module.dilation == (1, 1, 1)
        and module.padding_mode == "zeros"
        and isinstance(module.padding, tuple)
        and all(0 <= p < k for p, k in zip(module.padding, module.kernel_size, strict=True))
    )


def use_depthwise_grad(net: nn.Module) -> int:
    """Swap every qualifying depthwise Conv3d of `net` for a DepthwiseConv3d, in place; returns how many."""
    swapped = 0
    for module in net.modules():
        if qualifies(module):
            module.__class__ = DepthwiseConv3d  # same state: parameters, buffers and hooks stay as they are
            swapped += 1
    return swapped
