"""The CPU kernels that replace PyTorch's Conv3d give the same outputs and gradients as PyTorch's."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ar_experiments.models import build_model
from ar_experiments.models.kernels import DepthwiseConv3d, PointwiseConv3d, depthwise_qualifies, use_pointwise_matmul


def _outputs_and_grads(conv: nn.Conv3d, x: torch.Tensor):
    x = x.clone().requires_grad_(True)
    out = conv(x)
    upstream = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
    (out * upstream).sum().backward()
    grads = [x.grad] + [p.grad for p in conv.parameters()]
    conv.zero_grad()
    return out.detach(), grads


def _same_as_stock(swapped: nn.Conv3d, x: torch.Tensor) -> None:
    stock = nn.Conv3d(
        swapped.in_channels,
        swapped.out_channels,
        swapped.kernel_size,
        swapped.stride,
        swapped.padding,
        groups=swapped.groups,
        bias=swapped.bias is not None,
    ).double()
    stock.load_state_dict(swapped.state_dict())
    out, grads = _outputs_and_grads(swapped, x)
    expected_out, expected_grads = _outputs_and_grads(stock, x)
    torch.testing.assert_close(out, expected_out)
    for grad, expected in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(grad, expected)


@pytest.mark.parametrize(
    "kernel, padding, bias, channels_last",
    [((3, 3, 3), (1, 1, 1), False, True), ((5, 1, 1), (2, 0, 0), False, False), ((3, 3, 3), (0, 1, 2), True, False)],
)
def test_depthwise_input_gradient_as_a_convolution_matches_pytorchs(kernel, padding, bias, channels_last):
    torch.manual_seed(0)
    conv = nn.Conv3d(6, 6, kernel, padding=padding, groups=6, bias=bias).double()
    assert depthwise_qualifies(conv)
    conv.__class__ = DepthwiseConv3d
    x = torch.randn(2, 6, 5, 7, 6, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    _same_as_stock(conv, x)


def test_only_stride_one_depthwise_convolutions_are_swapped():
    assert not depthwise_qualifies(nn.Conv3d(6, 6, 3, stride=(1, 2, 2), padding=1, groups=6))
    assert not depthwise_qualifies(nn.Conv3d(6, 12, 3, padding=1, groups=6))  # two filters per channel
    assert not depthwise_qualifies(nn.Conv3d(6, 6, 3, padding=1))  # not depthwise
    assert depthwise_qualifies(nn.Conv3d(6, 6, 3, padding=1, groups=6))


@pytest.mark.parametrize(
    "kernel, stride, padding",
    [
        ((1, 1, 1), (1, 1, 1), (0, 0, 0)),
        ((3, 1, 1), (1, 1, 1), (1, 0, 0)),
        ((7, 1, 1), (4, 1, 1), (3, 0, 0)),
        ((1, 1, 1), (2, 2, 2), (0, 0, 0)),
    ],
)
def test_convolutions_without_spatial_extent_as_matrix_multiplies_match_pytorchs(kernel, stride, padding):
    """1x1x1 (X3D, SlowFast), 3x1x1 (SlowFast's slow pathway) and 7x1x1 stride 4 (its fusion) layers."""
    torch.manual_seed(0)
    conv = nn.Conv3d(5, 4, kernel, stride=stride, padding=padding).double()
    conv.__class__ = PointwiseConv3d
    _same_as_stock(conv, torch.randn(2, 5, 9, 4, 5, dtype=torch.float64))


def test_a_1x1x1_convolution_with_temporal_padding_keeps_its_padded_frames():
    """The matrix multiply of a 1x1x1 layer reads no padding: such a layer stays PyTorch's Conv3d."""
    torch.manual_seed(0)
    padded = nn.Sequential(nn.Conv3d(5, 4, 1, padding=(1, 0, 0)).double(), nn.Conv3d(4, 4, 1).double())
    assert use_pointwise_matmul(padded, setting=True) == 1
    assert type(padded[0]) is nn.Conv3d and type(padded[1]) is PointwiseConv3d
    x = torch.randn(2, 5, 9, 4, 5, dtype=torch.float64)
    assert padded(x).shape[2] == 11, "9 frames padded by one on each side"
    _same_as_stock(padded[0], x)


@pytest.mark.parametrize("name", ["x3d_xs", pytest.param("slowfast", marks=pytest.mark.slow)])
def test_the_networks_learn_the_same_with_the_cpu_kernels_as_with_pytorchs(name):
    """One training step of a whole network: same loss, same gradients, with and without the swapped kernels."""
    torch.manual_seed(0)
    fast = build_model(name, num_classes=3, frames=8, crop_size=32, dropout=0.0)
    kinds = {type(m) for m in fast.modules()}
    assert PointwiseConv3d in kinds and (DepthwiseConv3d in kinds) == (name == "x3d_xs")
    stock = build_model(
        name, num_classes=3, frames=8, crop_size=32, dropout=0.0, pointwise_matmul=False, depthwise_grad=False
    )
    assert not {PointwiseConv3d, DepthwiseConv3d} & {type(m) for m in stock.modules()}, "PyTorch's Conv3d only"
    stock.load_state_dict(fast.state_dict())
    clip, labels = torch.randn(2, 3, 8, 32, 32), torch.tensor([0, 2])
    grads = []
    for net in (fast, stock):
        loss = nn.functional.cross_entropy(net(clip), labels)
        loss.backward()
        grads.append((loss.detach(), {n: p.grad for n, p in net.named_parameters()}))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-4, atol=1e-5)
    for key, grad in grads[0][1].items():
        torch.testing.assert_close(grad, grads[1][1][key], rtol=1e-3, atol=1e-5, msg=key)
