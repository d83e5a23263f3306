"""X3D and SlowFast from pytorchvideo's builders, for any clip length and crop size, and their cost per view.

pytorchvideo fixes the head's pooling kernel at build size; here every head
pools adaptively, so one network serves the training crop, multi-view test
crops and prediction on other resolutions. Parameter names are unchanged, so
the published Kinetics-400 checkpoints load into `VideoNet.net` as they are.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .kernels import (
    DEPTHWISE_GRAD,
    POINTWISE_MATMUL,
    align_gradient_strides,
    use_depthwise_grad,
    use_fp32_depthwise,
    use_pointwise_matmul,
)

MIN_CROP = 32  # every model downsamples space by 32


@dataclass(frozen=True)
class Architecture:
    """The published setting of a model: what its Kinetics-400 checkpoint was trained with."""

    family: str
    pretrain_frames: int
    pretrain_stride: int
    pretrain_crop: int
    checkpoint: str
    depth_factor: float = 2.2


ARCHITECTURES = {
    "x3d_xs": Architecture("x3d", 4, 12, 160, "X3D_XS.pyth"),
    "x3d_s": Architecture("x3d", 13, 6, 160, "X3D_S.pyth"),
    "x3d_m": Architecture("x3d", 16, 5, 224, "X3D_M.pyth"),
    "x3d_l": Architecture("x3d", 16, 5, 312, "X3D_L.pyth", depth_factor=5.0),
    "slowfast": Architecture("slowfast", 32, 2, 224, "SLOWFAST_8x8_R50.pyth"),
}


class VideoNet(nn.Module):
    """(B, C, T, H, W) -> logits. For SlowFast, the slow pathway is taken here.

    The slow pathway keeps ceil(T / alpha) of the T fast frames, evenly spaced,
    which is what the fusion convolutions' temporal stride alpha expects. Their
    indices are truncated, not rounded, as PySlowFast's PackPathway takes them
    (32 frames: 0, 4, 8, 13, 17, 22, 26, 31), so the published checkpoints see
    the frames they were trained on. A new list is built every call:
    pytorchvideo's SlowFast mutates its input list.
    """

    def __init__(
        self,
        net: nn.Module,
        name: str,
        slowfast_alpha: int | None = None,
        channels_last: bool = False,
        pointwise_matmul: str | bool = "auto",
        depthwise_fp32: bool = False,
        depthwise_grad: str | bool = "auto",
    ):
        super().__init__()
        self.net = net
        if pointwise_matmul not in POINTWISE_MATMUL:
            raise ValueError(f"model.pointwise_matmul={pointwise_matmul!r}; choose auto, true or false")
        if pointwise_matmul is not False:
            use_pointwise_matmul(self.net, pointwise_matmul)
        if depthwise_fp32:
            use_fp32_depthwise(self.net)
        if depthwise_grad not in DEPTHWISE_GRAD:
            raise ValueError(f"model.depthwise_grad={depthwise_grad!r}; choose auto or false")
        if depthwise_grad == "auto":
            use_depthwise_grad(self.net)
        self.name = name
        self.slowfast_alpha = slowfast_alpha
        # channels-last-3d makes X3D's depthwise 3D convolutions ~2x faster on CPU (measured by bench)
        self.channels_last = channels_last
        if channels_last:
            self.net.to(memory_format=torch.channels_last_3d)
            align_gradient_strides(self.net)
        self.backbone_frozen = False

    @property
    def classifier_prefix(self) -> str:
        """Names (in `net`) of the final linear layer: the one part sized by the number of classes."""
        return f"blocks.{len(self.net.blocks) - 1}.proj."

    def backbone_and_classifier_parameters(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """The trainable parameters, split into backbone and classifier (for their own learning rates)."""
        backbone, classifier = [], []
        for name, parameter in self.net.named_parameters():
            if parameter.requires_grad:
                (classifier if name.startswith(self.classifier_prefix) else backbone).append(parameter)
        return backbone, classifier

    def freeze_backbone(self) -> None:
        """Train the classifier only (a linear probe): the backbone's weights and BatchNorm statistics stay fixed."""
        for name, parameter in self.net.named_parameters():
            if not name.startswith(self.classifier_prefix):
                parameter.requires_grad_(False)
        self.backbone_frozen = True
        self.train(self.training)

    def train(self, mode: bool = True) -> VideoNet:
        super().train(mode)
        if self.backbone_frozen:
            # in training mode BatchNorm would keep updating its running statistics from the new data
            for module in self.net.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            clip = clip.contiguous(memory_format=torch.channels_last_3d)
        if self.slowfast_alpha is None:
            return self.net(clip)
        frames = clip.shape[2]
        slow_count = math.ceil(frames / self.slowfast_alpha)
        slow_index = torch.linspace(0, frames - 1, slow_count, device=clip.device).long()
        return self.net([clip.index_select(2, slow_index), clip])


def _build_x3d(arch: Architecture, num_classes: int, frames: int, crop_size: int, dropout: float) -> nn.Module:
    from pytorchvideo.models.x3d import create_x3d

    net = create_x3d(
        input_clip_length=frames,
        input_crop_size=crop_size,
        model_num_class=num_classes,
        depth_factor=arch.depth_factor,
        dropout_rate=dropout,
        # x * sigmoid(x) as PyTorch's fused SiLU rather than pytorchvideo's Swish, an autograd.Function that
        # torch.compile cannot trace (its backward reads a removed ctx attribute); no parameters either way
        inner_act=nn.SiLU,
        head_activation=None,  # CrossEntropyLoss wants logits; pytorchvideo's default is Softmax
        head_output_with_global_average=True,
    )
    net.blocks[-1].pool.pool = nn.AdaptiveAvgPool3d(1)
    return net


def _build_slowfast(num_classes: int, dropout: float, alpha: int) -> nn.Module:
    from pytorchvideo.models.slowfast import create_slowfast

    net = create_slowfast(
        model_num_class=num_classes,
        model_depth=50,
        dropout_rate=dropout,
        slowfast_fusion_conv_kernel_size=(7, 1, 1),
        slowfast_fusion_conv_stride=(alpha, 1, 1),
        head_activation=None,
    )
    pooling = net.blocks[-2].pool
    for i in range(len(pooling)):
        pooling[i] = nn.AdaptiveAvgPool3d(1)
    return net


def build_model(
    name: str,
    num_classes: int,
    frames: int,
    crop_size: int,
    dropout: float = 0.5,
    slowfast_alpha: int = 4,
    channels_last: bool = False,
    pointwise_matmul: str | bool = "auto",
    depthwise_fp32: bool = False,
    depthwise_grad: str | bool = "auto",
) -> VideoNet:
    """A randomly initialised network for `frames`-frame clips of `crop_size` pixels.

    `pointwise_matmul` and `depthwise_fp32` choose kernels only: the parameters and
    their names, hence checkpoints, are the same with every setting.
    """
    if name not in ARCHITECTURES:
        raise ValueError(f"model.name={name!r} is not a model; choose one of {sorted(ARCHITECTURES)}")
    if frames < 1:
        raise ValueError(f"frames={frames}; a clip needs at least one frame")
    if crop_size < MIN_CROP:
        raise ValueError(f"data.crop_size={crop_size} is too small for {name}: it needs at least {MIN_CROP} pixels")
    arch = ARCHITECTURES[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit notices inside pytorchvideo
        if arch.family == "x3d":
            net, alpha = _build_x3d(arch, num_classes, frames, crop_size, dropout), None
        else:
            net, alpha = _build_slowfast(num_classes, dropout, slowfast_alpha), slowfast_alpha
    return VideoNet(net, name, alpha, channels_last, pointwise_matmul, depthwise_fp32, depthwise_grad)


def count_gflops(net: nn.Module, frames: int, crop_size: int) -> float:
    """Multiply-adds (in billions) of one forward pass of `net` on one view, a (1, 3, frames, crop, crop) clip.

    The convention is the one of the model zoos (pytorchvideo, PySlowFast, the X3D
    and SlowFast papers): one multiply-add of a convolution or linear layer is one
    FLOP, and normalisation, activations and pooling are not counted. With it,
    SlowFast R50 8x8 (32 fast frames) at 256x256 gives pytorchvideo's 65.71 and
    X3D-M with 16 frames at 256x256 the X3D paper's 6.2; a multi-view test costs views x that.
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
