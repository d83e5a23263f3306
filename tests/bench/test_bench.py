"""The bench: it runs and writes its figures, and each figure moves the right way when one side is slowed.

Speed itself is measured by the bench, not asserted here: the tests slow one
path on purpose (a sleep) and check that the figure built on it falls or rises.
"""

from __future__ import annotations

import json
import time

import pytest
import pytorch_lightning as pl
import torch

from ar_experiments.bench.__main__ import main, parse_args
from ar_experiments.bench.figures import (
    GOALS,
    TRAIN_VIDEOS,
    VAL_VIDEOS,
    Measurement,
    Pooled,
    figure_entry,
    goal,
    grid_hours,
    run_seconds,
    table,
)
from tests.conftest import tiny_data

# --- figures from pooled rates --------------------------------------------------------------------


def test_a_ratio_is_of_pooled_rates_with_the_rounds_as_its_spread():
    # one quick round and one slow round on each side: the median of per-round ratios would say 1.5
    loop = Pooled().add(10, 1.0).add(10, 10.0)
    model = Pooled().add(10, 0.5).add(10, 20.0)
    ratio = Measurement.ratio(loop, model, "setting")
    assert ratio.value == pytest.approx(loop.rate / model.rate) == pytest.approx(20 / 11 / (20 / 20.5))
    assert sorted(ratio.rounds) == pytest.approx([0.5, 2.0])
    assert Measurement.pooled(loop).value == pytest.approx(20 / 11)
    assert Measurement.pooled(Pooled().add(1.0, 4.0).add(0.0, 6.0)).value == pytest.approx(0.1)  # idle share


def test_a_figure_entry_takes_the_worst_setting_and_meets_its_goal_only_if_every_setting_does():
    good = Measurement(3.0, [2.5, 3.5], "crop 112", goal=GOALS["data_vs_pytorchvideo"])
    bad = Measurement(1.5, [1.0, 2.0], "crop 224", goal=GOALS["data_vs_pytorchvideo"])
    entry = figure_entry([good, bad])
    assert entry["value"] == 1.5 and entry["goal"] == ">= 2" and entry["met"] is False
    assert entry["by_setting"]["crop 112"]["spread"] == [2.5, 3.5]
    assert figure_entry([Measurement(4.0, [4.0], goal=GOALS["startup_s"])])["met"] is True
    assert figure_entry([Measurement(4.0, [4.0])])["met"] is None  # informational
    assert figure_entry([Measurement(4.0, [4.0], goal=goal("grid_hours", on_gpu=True))])["met"] is False
    assert goal("grid_hours", on_gpu=False) is None and goal("train_vs_model_bound", on_gpu=True) == (">=", 0.9)
    assert goal("train_vs_model_bound", on_gpu=False) == (">=", 0.85)
    assert goal("train_loop_clips_per_s", on_gpu=True, model="x3d_m") == (">=", 275.2)
    text = table({"data_vs_pytorchvideo": [good, bad]})
    assert "2.50-3.50" in text and "NO" in text and "yes" in text


def test_projection_of_the_seed_grid():
    seconds = run_seconds(fit_clips_per_s=100, val_clips_per_s=500, test_videos_per_s=10, compile_s=60)
    train = TRAIN_VIDEOS - VAL_VIDEOS
    assert seconds == pytest.approx(20 * (train / 100 + 1590 / 500) + 3783 / 10 + 60)
    assert grid_hours({"x3d_m": 3600.0, "slowfast": 7200.0}) == pytest.approx(9 * 1 + 9 * 2)
    assert grid_hours({"x3d_m": 3600.0}) == pytest.approx(18)  # one model measured: all 18 runs at its rate


def test_variants_put_the_seed_first():
    assert list(parse_args(["--variants", "batch32,compile"]).variants) == ["seed", "batch32", "compile"]
    assert parse_args(["--variants", "batch32,seed"]).variants == {"seed": (), "batch32": ("data.batch_size=32",)}
    assert list(parse_args(["--device", "cuda"]).variants) == [
        "seed",
        "batch32",
        "compile",
        "fp32",
        "no-channels-last",
        "pointwise-matmul",
    ]


# --- the command --------------------------------------------------------------------------------


def test_quick_data_bench_writes_every_figure_with_its_goal(tmp_path, capsys):
    output = tmp_path / "bench.json"
    assert main(["--quick", "--parts", "data", "--output", str(output)]) == 0
    report = json.loads(output.read_text())
    figures = report["figures"]
    assert set(figures) == {"data_vs_pytorchvideo", "data_vs_decode_floor"}
    for name, baseline in (("data_vs_pytorchvideo", "pytorchvideo"), ("data_vs_decode_floor", "decode_floor")):
        figure = figures[name]
        assert figure["value"] > 0 and figure["goal"].startswith(">=") and isinstance(figure["met"], bool), name
        for setting in figure["by_setting"].values():
            assert len(setting["rounds"]) == 2 and all(r > 0 for r in setting["rounds"])  # --quick: 2 timed rounds
            # the figure is the ratio of the pooled rates printed beside it
            pooled = setting["project_clips_per_s"] / setting[f"{baseline}_clips_per_s"]
            assert setting["value"] == pytest.approx(pooled, rel=0.01)
    assert report["machine"]["torch"] == torch.__version__ and "cudnn" in report["machine"]
    text = capsys.readouterr().out
    assert "data_vs_pytorchvideo" in text and ">= 0.6" in text


def test_a_known_bad_cudnn_is_warned_about_in_the_bench_output(tmp_path, monkeypatch, capsys):
    from ar_experiments.training import cudnn_check

    warning = "cuDNN 9.10.2 with torch 2.9.0: bf16/fp16 3D convolutions bypass cuDNN"
    monkeypatch.setattr(cudnn_check, "runtime_problems", lambda precision, accelerator: [warning])
    output = tmp_path / "bench.json"
    assert main(["--quick", "--parts", "data", "--output", str(output)]) == 0
    report = json.loads(output.read_text())
    assert report["machine"]["warnings"] == [warning] and report["table"][0] == f"WARNING: {warning}"
    captured = capsys.readouterr()
    assert captured.out.startswith(f"WARNING: {warning}") and warning in captured.err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown where CUDA is missing")
def test_cuda_bench_without_cuda_says_so(tmp_path):
    with pytest.raises(SystemExit, match="no CUDA device is available"):
        main(["--device", "cuda", "--output", str(tmp_path / "bench.json")])
    assert not (tmp_path / "bench.json").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--parts", "data,gpu"], "unknown part(s) ['gpu']"),
        (["--variants", "seed,batch99"], "unknown variant(s) ['batch99']"),
        (["--models", "resnet"], "unknown model(s) ['resnet']"),
    ],
)
def test_unknown_names_are_named(args, message, capsys):
    with pytest.raises(SystemExit):
        main(args)
    assert message in capsys.readouterr().err


@pytest.mark.slow  # the whole command: two settings, each with its full validation and test passes
def test_quick_train_bench_compares_loop_kernels_and_variants_with_their_baselines(tmp_path):
    output = tmp_path / "bench.json"
    args = ["--quick", "--parts", "train", "--variants", "batch16", "--output", str(output)]
    assert main([*args, "--cache-dir", str(tmp_path / "cache")]) == 0
    report = json.loads(output.read_text())
    figures = {name: figure["by_setting"] for name, figure in report["figures"].items()}
    expected = {"train_vs_model_bound", "train_loop_clips_per_s", "train_model_clips_per_s", "train_idle_fraction"}
    assert expected | {"train_compile_s", "val_clips_per_s", "test_videos_per_s", "grid_hours"} <= set(figures)
    seed = "cpu: x3d_m 8f 32px batch 8 32-true"
    batch16 = "cpu: x3d_m 8f 32px batch 16 32-true (batch16)"
    loop, model = figures["train_loop_clips_per_s"], figures["train_model_clips_per_s"]
    bound = figures["train_vs_model_bound"][seed]["value"]
    assert bound == pytest.approx(loop[seed]["value"] / model[seed]["value"], rel=0.01)
    vs_seed = figures["train_loop_vs_seed"][batch16]["value"]
    assert vs_seed == pytest.approx(loop[batch16]["value"] / loop[seed]["value"], rel=0.01)
    assert list(figures["val_clips_per_s"]) == [seed]  # the seed's setting alone is evaluated
    assert report["context"]["train"]["errors"] == {}


@pytest.mark.slow  # a 20-class folder's full validation and test passes; the fast tests below time the same loops
def test_quick_bench_runs_the_real_size_path_on_a_ucf101_layout(tmp_path):
    """--layout is the path --device cuda takes (experiment=ucf101 on generated 320x240 videos); shrunk to run here."""
    output = tmp_path / "bench.json"
    shrink = ["data.crop_size=32", "data.short_side=36", "frames=4", "data.batch_size=4", "data.num_workers=1"]
    views = ["test.temporal_views=2", "test.spatial_crops=1"]
    args = ["--quick", "--parts", "train", "--layout", "--models", "slowfast", "--variants", "seed"]
    assert main([*args, "--output", str(output), *shrink, *views]) == 0
    report = json.loads(output.read_text())
    assert report["context"]["train"]["errors"] == {}
    (setting,) = report["figures"]["test_videos_per_s"]["by_setting"]
    assert setting.startswith("cpu: slowfast 4f 32px") and report["figures"]["test_videos_per_s"]["value"] > 0
    assert "experiment=ucf101" in report["context"]["train"]["overrides_by_model"]["slowfast"]


# --- each figure moves the right way when one side is slowed --------------------------------------


def _sleeping(method, seconds: float, first_extra: float = 0.0):
    def slowed(self, *args, **kwargs):
        time.sleep(seconds + (first_extra if not getattr(slowed, "called", False) else 0.0))
        slowed.called = True
        return method(self, *args, **kwargs)

    return slowed


@pytest.mark.slow  # timed decodes with half-second sleeps: timings need a quiet machine (xdist shares the cores)
def test_data_figures_fall_with_a_slower_project_path_and_rise_with_a_slower_baseline(tmp_path, monkeypatch):
    from ar_experiments.bench import data_path
    from ar_experiments.bench.videos import QUICK_SHAPE, write_videos
    from ar_experiments.data.dataset import VideoClipDataset

    videos = write_videos(tmp_path / "videos", 2, QUICK_SHAPE)

    def ratios() -> dict[str, float]:
        timings = data_path.measure_data_path(videos, 112, 128, QUICK_SHAPE.fps, repeats=1, clips=3)
        return {
            base: Measurement.ratio(timings["project"], timings[base]).value
            for base in ("pytorchvideo", "decode_floor")
        }

    baseline = ratios()
    with monkeypatch.context() as patch:  # workers are forked: they inherit the patched class
        patch.setattr(VideoClipDataset, "__getitem__", _sleeping(VideoClipDataset.__getitem__, 0.5))
        slower_project = ratios()
    floor = data_path.decode_floor
    monkeypatch.setattr(data_path, "decode_floor", lambda *args: time.sleep(0.5) or floor(*args))
    slower_floor = ratios()
    assert slower_project["pytorchvideo"] < baseline["pytorchvideo"]
    assert slower_project["decode_floor"] < baseline["decode_floor"]
    assert slower_floor["decode_floor"] > baseline["decode_floor"]


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory, cache_dir, tiny_dataset) -> dict[str, list[str]]:
    return {"x3d_m": [f"paths.output_dir={tmp_path_factory.mktemp('bench-train')}", *tiny_data(cache_dir)]}


def _measure(models: dict[str, list[str]]):
    from ar_experiments.bench.training import measure_training, training_figures

    results = measure_training(models, {"seed": ()}, rounds=1, steps=3, warmup=1, device=torch.device("cpu"))
    return {name: measurements[0].value for name, measurements in training_figures(results, on_gpu=False).items()}


@pytest.fixture(scope="module")
def unslowed(tiny_models):
    return _measure(tiny_models)


@pytest.mark.slow  # timed fits of x3d_m, one set with seconds of sleeps; timings need a quiet machine
def test_training_figures_move_the_right_way_when_one_side_is_slowed(tiny_models, unslowed, monkeypatch):
    from ar_experiments.training.module import VideoClassifier

    # every fit-loop step 1 s slower, the first (the warm-up) 3 s more, as a compile would be
    monkeypatch.setattr(VideoClassifier, "training_step", _sleeping(VideoClassifier.training_step, 1.0, 3.0))
    monkeypatch.setattr(VideoClassifier, "validation_step", _sleeping(VideoClassifier.validation_step, 0.5))
    monkeypatch.setattr(VideoClassifier, "test_step", _sleeping(VideoClassifier.test_step, 0.3))
    slowed, before = _measure(tiny_models), unslowed
    assert slowed["train_loop_clips_per_s"] < before["train_loop_clips_per_s"]
    assert slowed["train_vs_model_bound"] < before["train_vs_model_bound"]
    assert slowed["val_clips_per_s"] < before["val_clips_per_s"]
    assert slowed["test_videos_per_s"] < before["test_videos_per_s"]
    assert slowed["test_seconds_per_run"] > before["test_seconds_per_run"]
    assert slowed["grid_hours"] > before["grid_hours"]
    assert slowed["train_compile_s"] > before["train_compile_s"] + 1.5


@pytest.mark.slow  # shares the timed fits above
def test_idle_fraction_rises_when_the_data_path_is_slowed(tiny_models, unslowed, monkeypatch):
    from ar_experiments.bench.training import VariantResult, fit_loop
    from ar_experiments.config.compose import compose_train_config
    from ar_experiments.data.dataset import VideoClipDataset

    monkeypatch.setattr(VideoClipDataset, "__getitem__", _sleeping(VideoClipDataset.__getitem__, 0.3))
    result = VariantResult("x3d_m", "seed", 8, "slowed data")
    fit_loop(compose_train_config(tiny_models["x3d_m"]), steps=3, warmup=1, device=torch.device("cpu"), result=result)
    assert result.idle.rate > unslowed["train_idle_fraction"] + 0.3


@pytest.mark.slow  # builds x3d_m twice and times steps with two-second sleeps
def test_the_plain_loop_times_every_step_it_is_asked_for(tiny_models, monkeypatch):
    from types import SimpleNamespace

    import torch.nn.functional as F

    from ar_experiments.bench import training
    from ar_experiments.config.compose import compose_train_config

    slowed = SimpleNamespace(cross_entropy=lambda *args, **kwargs: time.sleep(2.0) or F.cross_entropy(*args, **kwargs))
    monkeypatch.setattr(training, "F", slowed)  # the plain loop's loss only; the fit loop's module has its own
    cfg = compose_train_config(tiny_models["x3d_m"])
    one, three = (training.plain_loop(cfg, steps, warmup=1, device=torch.device("cpu")) for steps in (1, 3))
    assert three - one > 3.0, "two more timed steps of over two seconds each: the loop's total, not a step's mean"


class HoldMemoryPerJob(pl.Callback):
    """Keeps 200 MiB per multirun job alive in the process: what a leak between jobs looks like."""

    held: list[bytearray] = []

    def on_train_start(self, trainer, pl_module):
        HoldMemoryPerJob.held.append(bytearray(b"\x01") * (200 * 2**20))


@pytest.mark.slow  # two tiny multiruns in fresh processes
def test_startup_and_memory_figures_rise_with_a_slower_start_and_a_leak(tmp_path, cache_dir, tiny_dataset, monkeypatch):
    from ar_experiments.bench.multirun import run_multirun

    # the dataset already generated: otherwise the first multirun's start-up would include generating it
    cache = [*tiny_data(cache_dir), "logger=csv"]
    fresh, records = run_multirun(tmp_path / "plain", 2, cache)
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text("import time\ntime.sleep(10)\n")  # a slower interpreter start
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))
    leak = [f"+callbacks.hold._target_={__name__}.HoldMemoryPerJob"]
    slowed_fresh, slowed_records = run_multirun(tmp_path / "slowed", 2, [*cache, *leak])
    # 10 s more before Python runs anything: far beyond the few seconds load moves a start-up by
    assert slowed_fresh > fresh + 5, "startup_s counts from launching the command, interpreter start included"
    growth = records[-1]["peak_rss_mb"] / records[0]["peak_rss_mb"]
    slowed_growth = slowed_records[-1]["peak_rss_mb"] / slowed_records[0]["peak_rss_mb"]
    assert slowed_growth > growth + 0.05
