"""The speed options for a GPU, checked on the CPU: kernel choices per device, torch.compile, float32
precision, and the warning about known-bad torch/cuDNN versions."""

from __future__ import annotations

import logging
import os

import pytest
import torch
from torch import nn

from ar_experiments.models import build_model
from ar_experiments.models.builders import VideoNet
from ar_experiments.models.kernels import Fp32DepthwiseConv3d, PointwiseConv3d, matmul_wins
from ar_experiments.models.run_options import RunOptions, prepare_to_run, set_fp32_precision
from ar_experiments.training import cudnn_check


def _count(model: nn.Module, kind: type) -> int:
    return sum(type(m) is kind for m in model.modules())


def test_matmul_is_the_choice_on_the_cpu_only_unless_forced():
    cpu, gpu = torch.device("cpu"), torch.device("cuda", 0)
    assert matmul_wins("auto", cpu) and not matmul_wins("auto", gpu)
    assert matmul_wins(True, gpu) and matmul_wins(True, cpu)
    assert not matmul_wins(False, cpu) and not matmul_wins(False, gpu)


def test_the_pointwise_kernel_is_chosen_by_the_input_device_at_call_time(monkeypatch):
    calls = []
    linear = nn.functional.linear
    monkeypatch.setattr(nn.functional, "linear", lambda *a, **k: calls.append(1) or linear(*a, **k))
    conv = PointwiseConv3d(4, 6, 1)
    conv(torch.randn(1, 4, 2, 3, 3))
    assert calls, "on the CPU, auto runs the matrix multiply"
    calls.clear()
    conv.to("meta")  # any device but the CPU, as a network moved to a GPU after it was built
    out = conv(torch.randn(1, 4, 2, 3, 3, device="meta"))
    assert out.shape == (1, 6, 2, 3, 3) and not calls, "off the CPU, auto runs PyTorch's Conv3d"
    conv.matmul = True
    conv(torch.randn(1, 4, 2, 3, 3, device="meta"))
    assert calls, "pointwise_matmul=true runs the matrix multiply on every device"


@pytest.mark.parametrize("setting", ["auto", True, False])
def test_pointwise_matmul_setting_keeps_parameters_names_and_results(setting):
    torch.manual_seed(0)
    reference = build_model("x3d_xs", num_classes=3, frames=4, crop_size=32, dropout=0.0).eval()
    model = build_model("x3d_xs", num_classes=3, frames=4, crop_size=32, dropout=0.0, pointwise_matmul=setting)
    model.load_state_dict(reference.state_dict())  # same names with every setting: checkpoints load
    pointwise = _count(model.eval(), PointwiseConv3d)
    assert (pointwise == 0) if setting is False else (pointwise > 20)
    assert all(m.matmul == setting for m in model.modules() if isinstance(m, PointwiseConv3d))
    clip = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(clip), reference(clip), rtol=1e-4, atol=1e-5)


def test_an_unknown_pointwise_setting_is_named():
    with pytest.raises(ValueError, match="model.pointwise_matmul='gpu'"):
        build_model("x3d_xs", num_classes=3, frames=4, crop_size=32, pointwise_matmul="gpu")


def test_the_silu_activation_matches_pytorchvideos_swish_in_values_and_gradients():
    from pytorchvideo.layers.swish import Swish

    x = torch.randn(1000, dtype=torch.float64) * 4
    a, b = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    torch.testing.assert_close(nn.SiLU()(a), Swish()(b))
    nn.SiLU()(a).sum().backward()
    Swish()(b).sum().backward()
    torch.testing.assert_close(a.grad, b.grad)
    assert not any(type(m) is Swish for m in build_model("x3d_xs", 3, 4, 32).modules())


def test_depthwise_fp32_runs_x3ds_depthwise_convolutions_in_float32_under_autocast():
    torch.manual_seed(0)
    reference = build_model("x3d_xs", num_classes=3, frames=4, crop_size=32, dropout=0.0).eval()
    model = build_model("x3d_xs", num_classes=3, frames=4, crop_size=32, dropout=0.0, depthwise_fp32=True).eval()
    model.load_state_dict(reference.state_dict())
    assert _count(model, Fp32DepthwiseConv3d) > 5 and _count(reference, Fp32DepthwiseConv3d) == 0
    clip = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(clip), reference(clip))  # outside autocast: the same convolution
        depthwise = next(m for m in model.modules() if isinstance(m, Fp32DepthwiseConv3d))
        x = torch.randn(1, depthwise.in_channels, 2, 8, 8)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert depthwise(x).dtype == torch.float32
            assert nn.Conv3d.forward(depthwise, x).dtype == torch.bfloat16  # what autocast does otherwise


def test_run_options_are_read_from_the_model_config_and_checked():
    assert RunOptions.from_model_config({}) == RunOptions()  # a checkpoint from before the options existed
    options = RunOptions.from_model_config({"compile": True, "compile_mode": "reduce-overhead"})
    assert options.compile and options.compile_mode == "reduce-overhead"
    with pytest.raises(ValueError, match="model.compile_mode='fast'"):
        RunOptions.from_model_config({"compile_mode": "fast"})
    with pytest.raises(ValueError, match="model.fp32_precision='half'"):
        RunOptions.from_model_config({"fp32_precision": "half"})


def test_fp32_precision_sets_tf32_for_matmuls_and_convolutions():
    try:
        set_fp32_precision("tf32")
        assert torch.get_float32_matmul_precision() == "high"
        set_fp32_precision("ieee")
        assert torch.get_float32_matmul_precision() == "highest"
        if hasattr(torch.backends.cudnn, "conv"):
            assert torch.backends.cudnn.conv.fp32_precision == "ieee"
    finally:
        set_fp32_precision("default")
    assert torch.get_float32_matmul_precision() == "highest"


def test_a_trainer_setting_up_the_module_compiles_the_network_once(monkeypatch, tmp_path):
    from ar_experiments.models import run_options
    from ar_experiments.training.module import VideoClassifier

    compiled = []
    monkeypatch.setattr(nn.Module, "compile", lambda self, **kwargs: compiled.append((self, kwargs)))
    model = {"name": "x3d_xs", "frames": 4, "crop_size": 32, "compile": True, "compile_mode": "reduce-overhead"}
    module = VideoClassifier(model={**model, "compile_cache_dir": str(tmp_path / "inductor")}, class_names=["a", "b"])
    assert not compiled, "building the module (predict, summary) never compiles"
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "elsewhere")
    module.setup("fit")
    module.setup("test")
    assert compiled == [(module.net, {"mode": "reduce-overhead"})]
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "inductor") and (tmp_path / "inductor").is_dir()
    assert run_options.RunOptions.from_model_config(module.hparams.model).compile
    plain = VideoClassifier(model={"name": "x3d_xs", "frames": 4, "crop_size": 32}, class_names=["a", "b"])
    plain.setup("fit")
    assert len(compiled) == 1, "model.compile defaults to false"


@pytest.mark.slow  # Inductor compiles C++ for the CPU: 15-30 s even for a tiny network
def test_compiled_network_matches_eager_in_outputs_and_gradients_and_fills_the_cache(tmp_path):
    torch.manual_seed(0)

    def tiny() -> VideoNet:
        net = nn.Sequential(
            nn.Conv3d(3, 8, 1),
            nn.SiLU(),
            nn.Conv3d(8, 8, 3, padding=1, groups=8),
            nn.AdaptiveAvgPool3d(1),
            nn.Flatten(),
            nn.Linear(8, 3),
        )
        return VideoNet(net, "tiny", channels_last=True, pointwise_matmul="auto", depthwise_fp32=True)

    eager, compiled = tiny(), tiny()
    compiled.load_state_dict(eager.state_dict())
    prepare_to_run(compiled, {"compile": True, "compile_cache_dir": str(tmp_path / "inductor")})
    assert list(compiled.state_dict()) == list(eager.state_dict())
    clip = torch.randn(2, 3, 2, 8, 8)
    for net in (eager, compiled):
        net(clip).square().sum().backward()
    torch.testing.assert_close(compiled(clip), eager(clip), rtol=1e-4, atol=1e-5)
    for (name, a), (_, b) in zip(eager.named_parameters(), compiled.named_parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-4, atol=1e-5, msg=name)
    assert any((tmp_path / "inductor").rglob("*")), "compiled kernels are kept for the next job"


# --- known-bad torch / cuDNN combinations -------------------------------------------------------


@pytest.mark.parametrize(("number", "expected"), [(91002, (9, 10, 2)), (90800, (9, 8, 0)), (91500, (9, 15, 0))])
def test_cudnn_version_numbers_decode(number, expected):
    assert cudnn_check.cudnn_version(number) == expected
    assert cudnn_check.cudnn_version(None) is None


@pytest.mark.parametrize(
    ("cudnn", "precision", "slow"),
    [
        ((9, 10, 2), "bf16-mixed", True),  # the cuDNN torch 2.8 shipped: the pinned torch bypasses it, slowly
        ((9, 8, 0), "16-mixed", True),
        ((9, 13, 0), "bf16-true", True),
        ((9, 10, 2), "32-true", False),  # float32 convolutions are not affected
        ((9, 7, 1), "bf16-mixed", False),
        ((9, 15, 0), "bf16-mixed", False),
        (None, "bf16-mixed", False),  # no cuDNN in use
        ((9, 10, 2), None, True),  # precision unknown: checked as reduced
    ],
)
def test_known_problems_by_version(cudnn, precision, slow):
    problems = cudnn_check.known_problems(cudnn, precision)
    assert len(problems) == slow
    assert all("4x slower" in problem and ".".join(map(str, cudnn)) in problem for problem in problems)


def test_run_start_warns_on_a_gpu_with_a_known_bad_cudnn(monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 91002)
    with caplog.at_level(logging.WARNING, logger="ar_experiments.training.cudnn_check"):
        problems = cudnn_check.warn_known_problems("bf16-mixed", "gpu")
    assert problems and "pytorch/pytorch#166122" in caplog.text
    assert cudnn_check.warn_known_problems("bf16-mixed", "cpu") == []  # a CPU run uses no cuDNN
    assert cudnn_check.warn_known_problems("32-true", "gpu") == []


def test_results_record_the_cuda_and_cudnn_that_torch_uses():
    from ar_experiments.training.run_record import package_versions

    versions = package_versions()
    assert versions["torch"] == torch.__version__.split("+")[0]
    expected = cudnn_check.runtime_versions()
    assert versions.get("cudnn") == expected["cudnn"] and versions.get("cuda") == expected["cuda"]
    if torch.backends.cudnn.is_available():
        assert versions["cudnn"].count(".") == 2
