import math

import pytest
import torch

from ar_experiments.models import build_model
from ar_experiments.models.builders import VideoNet


@pytest.mark.parametrize("name", ["x3d_m", "slowfast"])
@pytest.mark.parametrize("frames", [4, 6, 8, 16, 32])
def test_forward_gives_logits_for_every_clip_length(name, frames):
    torch.manual_seed(0)
    model = build_model(name, num_classes=5, frames=frames, crop_size=32).eval()
    clip = torch.randn(2, 3, frames, 32, 32)
    with torch.no_grad():
        logits = model(clip)
    assert logits.shape == (2, 5)
    # logits, not probabilities: no softmax inside the head
    assert not torch.allclose(logits.sum(1), torch.ones(2), atol=1e-3)
    assert (logits < 0).any()


def test_model_accepts_other_crop_sizes_than_it_was_built_for():
    model = build_model("x3d_m", num_classes=3, frames=8, crop_size=32).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 8, 64, 48)).shape == (1, 3)


def test_slowfast_does_not_mutate_the_callers_tensor():
    model = build_model("slowfast", num_classes=3, frames=8, crop_size=32).eval()
    clip = torch.randn(1, 3, 8, 32, 32)
    before = clip.clone()
    with torch.no_grad():
        model(clip)
        model(clip)
    assert torch.equal(clip, before)


def test_parameter_counts_match_the_model_zoo():
    # pytorchvideo's model zoo: X3D-M 3.79 M, SlowFast R50 (8x8) 34.57 M parameters at 400 classes
    x3d = build_model("x3d_m", num_classes=400, frames=16, crop_size=224)
    slowfast = build_model("slowfast", num_classes=400, frames=32, crop_size=224)
    assert sum(p.numel() for p in x3d.parameters()) / 1e6 == pytest.approx(3.79, rel=0.01)
    assert sum(p.numel() for p in slowfast.parameters()) / 1e6 == pytest.approx(34.57, rel=0.01)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"name": "resnet"}, "model.name='resnet'"), ({"crop_size": 16}, "data.crop_size=16")],
)
def test_bad_model_settings_name_the_key(kwargs, message):
    args = {"name": "x3d_m", "num_classes": 3, "frames": 8, "crop_size": 32, **kwargs}
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        build_model(**args)


def test_gflops_per_view_match_the_published_figures():
    from ar_experiments.models import clip_gflops

    # multiply-adds at the test crop of 256: X3D paper 6.2 for X3D-M (16 frames),
    # pytorchvideo's model zoo 65.71 for SlowFast R50 8x8 (8 slow + 32 fast frames)
    assert clip_gflops("x3d_m", num_classes=400, frames=16, crop_size=256) == pytest.approx(6.2, rel=0.05)
    assert clip_gflops("slowfast", num_classes=400, frames=32, crop_size=256) == pytest.approx(65.71, rel=0.05)
    # cost grows with the clip: twice the frames, about twice the FLOPs
    assert clip_gflops("x3d_m", 3, 16, 32) == pytest.approx(2 * clip_gflops("x3d_m", 3, 8, 32), rel=0.1)


@pytest.mark.parametrize("stride", [(1, 1, 1), (1, 2, 2)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_pointwise_conv_as_matmul_matches_conv3d(stride, channels_last):
    from ar_experiments.models.kernels import PointwiseConv3d

    torch.manual_seed(0)
    conv = torch.nn.Conv3d(6, 10, 1, stride=stride, bias=True)
    fast = PointwiseConv3d(6, 10, 1, stride=stride, bias=True)
    fast.load_state_dict(conv.state_dict())
    x = torch.randn(2, 6, 4, 9, 9)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last_3d)
    a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    expected, got = conv(a), fast(b)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(expected)
    expected.backward(grad)
    got.backward(grad)
    torch.testing.assert_close(b.grad, a.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast.weight.grad, conv.weight.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(fast.bias.grad, conv.bias.grad, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["x3d_m", "slowfast"])
def test_models_use_the_matmul_pointwise_conv_and_keep_pytorchvideo_names(name):
    from ar_experiments.models.kernels import DepthwiseConv3d, PointwiseConv3d

    model = build_model(name, num_classes=3, frames=8, crop_size=32)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv3d)]
    # no spatial extent (1x1x1, and SlowFast's kx1x1): a matrix multiply on the CPU
    pointwise = [m for m in convs if m.kernel_size[1:] == (1, 1) and m.groups == 1 and m.padding[1:] == (0, 0)]
    assert pointwise and all(type(m) is PointwiseConv3d for m in pointwise)
    assert any(m.kernel_size[0] > 1 for m in pointwise) == (name == "slowfast")
    # stride-1 depthwise convolutions (X3D's): the input gradient as a convolution; the rest stay Conv3d
    depthwise = [m for m in convs if m.groups == m.in_channels > 1 and m.stride == (1, 1, 1)]
    assert all(type(m) is DepthwiseConv3d for m in depthwise) and bool(depthwise) == (name == "x3d_m")
    assert all(type(m) is torch.nn.Conv3d for m in convs if m not in pointwise and m not in depthwise)
    # the published checkpoints name their tensors as pytorchvideo does
    assert any(key.endswith("conv_a.weight") for key in model.net.state_dict())


# The reference: pytorchvideo's own builders, unmodified (stock Conv3d, head pooling with a kernel fixed
# at build size). At that exact input size their fixed pooling equals the project's adaptive pooling, so
# the project's weights loaded into them (strictly: every name and shape) must give the same logits.
REFERENCE_CROP = 64  # the smallest crop whose final feature map is more than one pixel (64 / 32 = 2)


def randomised(model: VideoNet, seed: int) -> VideoNet:
    """Random BatchNorm statistics and affine terms, so the comparison covers those buffers and the logits
    are large enough (a fresh X3D head gives logits near 1e-3) for a tolerance to mean something."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.net.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            shape = module.running_mean.shape
            module.running_mean.copy_(0.1 * torch.randn(shape, generator=generator))
            module.running_var.copy_(0.5 + torch.rand(shape, generator=generator))
            module.weight.data.copy_(0.5 + torch.rand(shape, generator=generator))
            module.bias.data.copy_(0.1 * torch.randn(shape, generator=generator))
    proj = model.net.blocks[-1].proj
    proj.weight.data.mul_(100.0)
    return model.eval()


def assert_same_logits(got: torch.Tensor, expected: torch.Tensor) -> None:
    scale = float(expected.abs().max())
    assert scale > 0.01 and float(expected.std(dim=1).min()) > 1e-3 * scale, "logits too small to compare"
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * scale)


@pytest.mark.parametrize("frames", [*(pytest.param(n, marks=pytest.mark.slow) for n in (4, 8, 32)), 6, 16])
def test_x3d_m_matches_pytorchvideos_create_x3d(frames):
    from pytorchvideo.models.x3d import create_x3d

    torch.manual_seed(frames)
    model = randomised(build_model("x3d_m", num_classes=7, frames=frames, crop_size=REFERENCE_CROP), frames)
    reference = create_x3d(
        input_clip_length=frames, input_crop_size=REFERENCE_CROP, model_num_class=7, head_activation=None
    ).eval()
    reference.load_state_dict(model.net.state_dict(), strict=True)
    clip = torch.randn(2, 3, frames, REFERENCE_CROP, REFERENCE_CROP)
    with torch.no_grad():
        assert_same_logits(model(clip), reference(clip))


def test_x3d_m_matches_pytorchvideos_hub_model_at_the_published_size():
    from pytorchvideo.models.hub import x3d_m

    torch.manual_seed(0)
    model = randomised(build_model("x3d_m", num_classes=400, frames=16, crop_size=224), 0)
    reference = x3d_m(pretrained=False, head_activation=None).eval()  # 16 frames, 224 pixels, 400 classes
    reference.load_state_dict(model.net.state_dict(), strict=True)
    clip = torch.randn(1, 3, 16, 224, 224)
    with torch.no_grad():
        assert_same_logits(model(clip), reference(clip))


def pack_pathway(clip: torch.Tensor, alpha: int) -> list[torch.Tensor]:
    """PySlowFast's PackPathway on a batch (B, C, T, H, W): the slow frames are
    index_select(frames, 2, linspace(0, T - 1, T // alpha).long()), truncated indices. Here the count is
    ceil(T / alpha), which the fusion convolutions need when alpha does not divide T (6 frames: 2); it
    equals PySlowFast's T // alpha whenever alpha divides T (4, 8, 16, 32 frames)."""
    frames = clip.shape[2]
    slow = torch.index_select(clip, 2, torch.linspace(0, frames - 1, math.ceil(frames / alpha)).long())
    return [slow, clip]


@pytest.mark.parametrize(
    ("frames", "slow_frames"),
    [(32, [0, 4, 8, 13, 17, 22, 26, 31]), (16, [0, 5, 10, 15]), (8, [0, 7]), (6, [0, 5]), (4, [0])],
)
def test_slowfast_slow_pathway_takes_the_frames_pyslowfast_takes(frames, slow_frames):
    model = build_model("slowfast", num_classes=3, frames=frames, crop_size=32).eval()
    seen = []
    model.net.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0][0][0, 0, :, 0, 0].tolist()))
    clip = torch.arange(float(frames)).reshape(1, 1, frames, 1, 1).expand(1, 3, frames, 32, 32)
    with torch.no_grad():
        model(clip)
    assert seen == [slow_frames]
    assert pack_pathway(clip, 4)[0][0, 0, :, 0, 0].tolist() == slow_frames


# 6 frames: not a multiple of the fusion stride (ceil(6 / 4) slow frames); the other lengths in the slow tier
@pytest.mark.parametrize("frames", [*(pytest.param(n, marks=pytest.mark.slow) for n in (4, 8, 32)), 6, 16])
def test_slowfast_matches_pytorchvideos_create_slowfast_fed_as_pyslowfast_feeds_it(frames):
    from pytorchvideo.models.slowfast import create_slowfast

    alpha = 4
    torch.manual_seed(frames)
    model = randomised(build_model("slowfast", num_classes=7, frames=frames, crop_size=REFERENCE_CROP), frames)
    side = REFERENCE_CROP // 32
    reference = create_slowfast(
        model_num_class=7,
        model_depth=50,
        head_activation=None,
        # the head's pooling covers the whole final feature map: slow frames, fast frames, side x side
        head_pool_kernel_sizes=((math.ceil(frames / alpha), side, side), (frames, side, side)),
    ).eval()
    reference.load_state_dict(model.net.state_dict(), strict=True)
    clip = torch.randn(2, 3, frames, REFERENCE_CROP, REFERENCE_CROP)
    with torch.no_grad():
        assert_same_logits(model(clip), reference(pack_pathway(clip, alpha)))
