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
