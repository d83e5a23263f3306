"""`python -m ar_experiments.summary`: parameters and compute per view, as the model zoos count them."""

import pytest

from ar_experiments.models import build_model
from ar_experiments.models.builders import count_gflops
from ar_experiments.summary import main
from tests.models.test_pretrained import published_state, save_published


@pytest.mark.parametrize(
    "name, frames, expected",
    [("slowfast", 32, 65.71), ("x3d_m", 16, 6.2)],  # pytorchvideo's model zoo; the X3D paper (both at 256x256)
)
def test_gflops_match_the_published_figures(name, frames, expected):
    net = build_model(name, num_classes=400, frames=frames, crop_size=256)
    assert count_gflops(net, frames, 256) == pytest.approx(expected, rel=0.01)
    assert all(p.device.type == "cpu" for p in net.parameters())  # counted on a copy


@pytest.mark.parametrize(
    "args, expected",
    [
        (["model=x3d_m", "frames=16", "data.crop_size=224", "model.num_classes=400"], "3.79 M"),
        (["model=slowfast", "frames=32", "data.crop_size=224"], "34.57 M"),
    ],
)
def test_summary_prints_model_zoo_sizes(capsys, args, expected):
    main(args)
    out = capsys.readouterr().out
    assert f"parameters   {expected}" in out and "400 classes" in out
    assert "GFLOPs/view" in out and "x224x224" in out


def test_summary_reports_the_weights_it_loaded(capsys, tmp_path):
    checkpoint = save_published("x3d_m", tmp_path / "X3D_M.pyth")
    main(["model=x3d_m", "frames=16", "model.num_classes=101", f"model.weights_path={checkpoint}"])
    out = capsys.readouterr().out
    assert f"{checkpoint}: {len(published_state('x3d_m')) - 2} tensors loaded, 2 skipped" in out
    assert "101 classes" in out
