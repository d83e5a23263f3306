"""The training part's figures from given timings: each variant against its own model's seed, the seed's evaluation."""

from __future__ import annotations

import pytest

from ar_experiments.bench.figures import Pooled, grid_hours, run_seconds
from ar_experiments.bench.training import DEFAULT_VARIANTS, VARIANTS, VariantResult, training_figures


def _result(model: str, variant: str, batch: int, step_seconds: float, error: str | None = None) -> VariantResult:
    """Two rounds of 10 steps at `step_seconds` each (the plain loop twice as fast), the seed evaluated."""
    result = VariantResult(model, variant, batch, f"{model} batch {batch}", error=error)
    for _ in range(2):
        result.fit.add(10 * batch, 10 * step_seconds)
        result.idle.add(step_seconds, 10 * step_seconds)
        result.plain.add(10 * batch, 5 * step_seconds)
        result.compile_s.append(3.0)
    if variant == "seed":
        result.val, result.test, result.views = Pooled().add(100, 2.0), Pooled().add(10, 5.0), "2x1"
    return result


def test_each_variant_is_set_against_its_own_models_seed_and_only_seeds_are_evaluated():
    results = [
        _result("x3d_m", "seed", 8, 0.1),
        _result("slowfast", "seed", 8, 0.4),
        _result("x3d_m", "batch16", 16, 0.15),
        _result("slowfast", "batch16", 16, 0.5),
        _result("x3d_m", "compile", 8, 0.1, error="RuntimeError: out of memory"),
    ]
    figures = {
        name: {m.setting: m.value for m in measurements}
        for name, measurements in training_figures(results, on_gpu=False).items()
    }
    loop = figures["train_loop_clips_per_s"]
    assert loop["x3d_m batch 8"] == pytest.approx(80) and loop["x3d_m batch 16 (batch16)"] == pytest.approx(16 / 0.15)
    assert figures["train_loop_vs_seed"] == pytest.approx(
        {"x3d_m batch 16 (batch16)": (16 / 0.15) / 80, "slowfast batch 16 (batch16)": (16 / 0.5) / 20}
    )
    assert list(figures["train_vs_model_bound"].values()) == pytest.approx([0.5] * 4)
    assert figures["train_model_clips_per_s"]["x3d_m batch 8"] == pytest.approx(160)
    assert figures["train_idle_fraction"]["x3d_m batch 8"] == pytest.approx(0.1)
    assert figures["train_compile_s"]["x3d_m batch 8"] == pytest.approx(3.0)
    assert not any("compile" in setting for settings in figures.values() for setting in settings)  # it failed
    assert list(figures["val_clips_per_s"]) == ["x3d_m batch 8", "slowfast batch 8"]
    assert figures["test_videos_per_s"]["x3d_m batch 8, 2x1 views"] == pytest.approx(2.0)
    runs = {"x3d_m": run_seconds(80, 50, 2, 3.0), "slowfast": run_seconds(20, 50, 2, 3.0)}
    assert list(figures["grid_hours"].values()) == [pytest.approx(grid_hours(runs))]


def test_the_default_variants_are_in_the_table():
    assert all(set(names) <= set(VARIANTS) for names in DEFAULT_VARIANTS.values())
