"""The bench command runs and writes its figures; speed itself is measured by the bench, not asserted here."""

import json

import pytest
import torch

from ar_experiments.bench.__main__ import main


def test_quick_data_bench_writes_every_figure_with_its_goal(tmp_path, capsys):
    output = tmp_path / "bench.json"
    assert main(["--quick", "--parts", "data", "--output", str(output)]) == 0
    figures = json.loads(output.read_text())["figures"]
    assert set(figures) == {"data_vs_pytorchvideo", "data_vs_decode_floor"}
    for name, figure in figures.items():
        assert figure["value"] > 0 and figure["goal"].startswith(">=") and isinstance(figure["met"], bool), name
        for setting in figure["by_setting"].values():
            assert setting["samples"] and all(sample > 0 for sample in setting["samples"])
            for path in ("project", "pytorchvideo", "decode_floor"):
                assert setting[f"{path}_clips_per_s"] > 0
    table = capsys.readouterr().out
    assert "data_vs_pytorchvideo" in table and ">= 0.6" in table


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown where CUDA is missing")
def test_cuda_bench_without_cuda_says_so(tmp_path):
    with pytest.raises(SystemExit, match="no CUDA device is available"):
        main(["--device", "cuda", "--output", str(tmp_path / "bench.json")])
    assert not (tmp_path / "bench.json").exists()


def test_unknown_part_is_named(capsys):
    with pytest.raises(SystemExit):
        main(["--parts", "data,gpu"])
    assert "unknown part(s) ['gpu']" in capsys.readouterr().err


def test_quick_train_bench_compares_the_loop_and_the_kernels_with_their_baselines(tmp_path):
    output = tmp_path / "bench.json"
    assert main(["--quick", "--parts", "train", "--output", str(output), "--cache-dir", str(tmp_path / "cache")]) == 0
    figures = json.loads(output.read_text())["figures"]
    assert {"train_vs_model_bound", "kernels_vs_stock", "train_model_clips_per_s"} <= set(figures)
    for name in ("train_vs_model_bound", "kernels_vs_stock"):
        assert figures[name]["value"] > 0 and figures[name]["goal"].startswith(">="), name


def test_stock_baseline_undoes_the_matmul_pointwise_convolutions():
    from ar_experiments.models import build_model
    from ar_experiments.models.builders import PointwiseConv3d, use_stock_conv3d

    model = build_model("x3d_m", num_classes=3, frames=4, crop_size=32).eval()
    clip = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        fast = model(clip)
        restored = use_stock_conv3d(model)
        stock = model(clip)
    assert restored > 0 and not any(isinstance(m, PointwiseConv3d) for m in model.modules())
    torch.testing.assert_close(stock, fast, rtol=1e-4, atol=1e-5)
