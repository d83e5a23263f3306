"""Faster kernels for some of a network's 3D convolutions, swapped in place: same parameters, same names,
same results up to float rounding (tests/models/test_cpu_kernels.py), so checkpoints are unchanged.

- `PointwiseConv3d` (`model.pointwise_matmul`): a convolution without spatial extent (1x1x1, or kx1x1
  in time) as one matrix multiply. On the CPU PyTorch runs these through a general 3D convolution whose
  backward pass is 2-16x slower than the matrix multiply (X3D-M has 88 1x1x1 ones: with them and fused
  optimiser steps its one-thread training step runs ~1.7x faster; `python -m ar_experiments.bench`
  measures them as its pointwise-conv variant). SlowFast's slow pathway has 3x1x1 convolutions over
  1024-2048 channels and a few positions, which PyTorch runs at batch 8 on one thread through its
  unvectorised fallback: as a matrix multiply over the k frames unfolded into channels they take a
  fraction of the time. On a channels-last-3d tensor the permutes are views.
- `DepthwiseConv3d` (`model.depthwise_grad`): on the CPU PyTorch's backward pass of a depthwise Conv3d
  (X3D's 3x3x3 and 5x1x1 layers, most of the network) spends 6-9 ms per layer on the input gradient at
  the synthetic data's 32-pixel crops, even for tiny tensors, while a forward depthwise convolution of
  the same size takes 0.1-0.8 ms. For stride 1 the input gradient is exactly the output gradient
  convolved with the spatially flipped kernel, so it is computed that way; the weight gradient stays
  PyTorch's. The bench measures the gain as the `depthwise-stock` variant. Elsewhere (GPUs, strided
  layers) it is a plain Conv3d.
- `Fp32DepthwiseConv3d` (`model.depthwise_fp32`): cuDNN's reduced-precision kernels for grouped 3D
  convolutions can be slower than its float32 ones, so inside a bf16/fp16 autocast region these run in
  float32; outside autocast it is a plain Conv3d.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

POINTWISE_MATMUL = ("auto", True, False)
"""model.pointwise_matmul: auto (the matrix multiply on the CPU, PyTorch's Conv3d elsewhere), always, never."""
DEPTHWISE_GRAD = ("auto", False)
"""model.depthwise_grad: auto (the flipped-kernel input gradient on the CPU), false (PyTorch's everywhere)."""


def _swap(net: nn.Module, qualifies: Callable[[nn.Module], bool], kernel: type[nn.Conv3d]) -> list[nn.Conv3d]:
    """Give every plain Conv3d of `net` that `qualifies` the class `kernel`; returns them."""
    swapped = [module for module in net.modules() if type(module) is nn.Conv3d and qualifies(module)]
    for module in swapped:
        module.__class__ = kernel  # same state: parameters, buffers and hooks stay as they are
    return swapped


def matmul_wins(setting: str | bool, device: torch.device) -> bool:
    """Whether a convolution without spatial extent runs as a matrix multiply on `device` (`model.pointwise_matmul`).

    On the CPU the matrix multiply is 2-16x faster per layer; on an H200 (torch 2.11,
    bf16) it made SlowFast R50's step 14% slower and X3D-M's no faster, so `auto`
    keeps PyTorch's Conv3d there.
    """
    return setting is True or (setting == "auto" and device.type == "cpu")


class PointwiseConv3d(nn.Conv3d):
    """A Conv3d without spatial extent computed as one matrix multiply where faster.

    Which of the two runs is decided at every call from the input's device (`matmul_wins`), so a
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
            y = F.linear(x[:, :, :: self.stride[0]].movedim(1, -1), self.weight.flatten(1), self.bias)
            return y.movedim(-1, 1)
        if self.padding[0]:
            x = F.pad(x, (0, 0, 0, 0, self.padding[0], self.padding[0]))
        # (N, C, T', H, W, k) -> (N, T', H, W, C * k): the weight's (C, k) order
        columns = x.unfold(2, frames, self.stride[0]).permute(0, 2, 3, 4, 1, 5).flatten(-2)
        return F.linear(columns, self.weight.flatten(1), self.bias).permute(0, 4, 1, 2, 3)


def pointwise_qualifies(module: nn.Conv3d) -> bool:
    """Ungrouped, no spatial extent or padding, no dilation, zero padding in time only for kx1x1.

    A 1x1x1 convolution with temporal padding stays a Conv3d: its matrix multiply reads no padding, so the
    padded frames (zeros through the bias) would be missing from its output.
    """
    return (
        module.kernel_size[1:] == (1, 1)
        and module.groups == 1
        and isinstance(module.padding, tuple)
        and module.padding[1:] == (0, 0)
        and (module.kernel_size[0] > 1 or module.padding[0] == 0)
        and module.dilation == (1, 1, 1)
        and module.padding_mode == "zeros"
    )


def use_pointwise_matmul(net: nn.Module, setting: str | bool = "auto") -> int:
    """Swap every qualifying Conv3d of `net` for a PointwiseConv3d running as `setting` says; returns how many."""
    swapped = _swap(net, pointwise_qualifies, PointwiseConv3d)
    for module in swapped:
        module.matmul = setting
        # SlowFast's fusion strides are numpy integers, which torch.compile cannot compare with a tuple
        module.stride = tuple(int(step) for step in module.stride)
    return len(swapped)


class _FlippedKernelGrad(torch.autograd.Function):
    """conv3d(x, weight, bias) with groups == channels and stride 1; its input gradient a convolution too."""

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


def depthwise_qualifies(module: nn.Conv3d) -> bool:
    """One filter per channel, stride and dilation 1, zero padding no wider than the kernel."""
    return (
        module.groups > 1
        and module.groups == module.in_channels == module.out_channels
        and module.stride == (1, 1, 1)
        and module.dilation == (1, 1, 1)
        and module.padding_mode == "zeros"
        and isinstance(module.padding, tuple)
        and all(0 <= p < k for p, k in zip(module.padding, module.kernel_size, strict=True))
    )


def use_depthwise_grad(net: nn.Module) -> int:
    """Swap every qualifying depthwise Conv3d of `net` for a DepthwiseConv3d; returns how many."""
    return len(_swap(net, depthwise_qualifies, DepthwiseConv3d))


class Fp32DepthwiseConv3d(nn.Conv3d):
    """A depthwise Conv3d that runs in float32 inside a bf16/fp16 autocast region."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_autocast_enabled(x.device.type):
            return super().forward(x)
        with torch.autocast(x.device.type, enabled=False):
            return super().forward(x.float())


def use_fp32_depthwise(net: nn.Module) -> int:
    """Run every depthwise (groups == channels > 1) Conv3d of `net` in float32 under autocast; returns how many."""
    return len(_swap(net, lambda conv: conv.groups == conv.in_channels > 1, Fp32DepthwiseConv3d))


def align_gradient_strides(net: nn.Module) -> None:
    """Give each 5-D parameter's gradient the parameter's own strides where both are the same memory layout.

    A kernel with a channel or space of size 1 (1x1x1 pointwise, depthwise) is at once channels-last and
    plain; its gradient (from cuDNN or the kernels above) may come with either spelling of the strides.
    DDP compares them with the parameter's and warns "Grad strides do not match bucket view strides"
    (and copies) on a mismatch; the view is free.
    """
    for parameter in net.parameters():
        if parameter.dim() == 5 and parameter.requires_grad:
            parameter.register_hook(
                lambda grad, p=parameter: (
                    grad.as_strided(grad.shape, p.stride())
                    if grad.stride() != p.stride() and grad.is_contiguous() and p.is_contiguous()
                    else grad
                )
            )
