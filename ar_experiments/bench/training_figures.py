"""The training part's figures: per model and variant the loop's rates (each variant also over the seed's),
the seed's evaluation, and the projected hours of the seed's grid on real UCF101."""

from __future__ import annotations

from .clocks import LoopTiming, VariantResult
from .figures import GPU_GOALS, GPU_SPEEDUP_GOAL, SEED_H200_LOOP_CLIPS_PER_S, Measurement, Pooled
from .plans import SEED
from .projection import grid_hours, run_seconds, test_seconds


def pooled(timings: list[LoopTiming], units: str = "steps", factor: float = 1.0) -> Pooled:
    """Steps (times `factor`: clips) or idle seconds over the loop's seconds, a round per timing."""
    return Pooled([getattr(t, units) * factor for t in timings], [t.seconds for t in timings])


def measured(result: VariantResult) -> bool:
    return bool(result.fit and result.plain) and result.error is None


def _goal(name: str, on_gpu: bool, model: str | None = None) -> tuple[str, float] | None:
    if not on_gpu:
        return None
    if name == "train_loop_clips_per_s" and model in SEED_H200_LOOP_CLIPS_PER_S:
        return (">=", round(GPU_SPEEDUP_GOAL * SEED_H200_LOOP_CLIPS_PER_S[model], 1))
    return GPU_GOALS.get(name)


def _loop_figures(result: VariantResult, seed: VariantResult | None, on_gpu: bool) -> dict[str, Measurement]:
    setting = result.setting if result.variant == SEED else f"{result.setting} ({result.variant})"
    fit, plain = pooled(result.fit), pooled(result.plain)
    loop = pooled(result.fit, factor=result.batch_size)
    goal = _goal("train_loop_clips_per_s", on_gpu, result.model)
    figures = {
        "train_loop_clips_per_s": Measurement.pooled(loop, setting, goal=goal),
        "train_model_clips_per_s": Measurement.pooled(pooled(result.plain, factor=result.batch_size), setting),
        "train_vs_model_bound": Measurement.ratio(fit, plain, setting, goal=_goal("train_vs_model_bound", on_gpu)),
        "train_idle_fraction": Measurement.pooled(
            pooled(result.fit, "idle_seconds"), setting, goal=_goal("train_idle_fraction", on_gpu)
        ),
        "train_compile_s": Measurement(result.fit[0].compile_s, [t.compile_s for t in result.fit], setting),
    }
    if seed is not None and result is not seed:
        figures["train_loop_vs_seed"] = Measurement.ratio(loop, pooled(seed.fit, factor=seed.batch_size), setting)
    peaks = [t.peak_gpu_bytes / 2**30 for t in result.fit if t.peak_gpu_bytes is not None]
    if peaks:
        figures["peak_gpu_gib"] = Measurement(max(peaks), peaks, setting)
    return figures


def _evaluation_figures(seed: VariantResult, on_gpu: bool) -> tuple[dict[str, Measurement], float]:
    """val and test rates of the seed's setting, and the seconds of one UCF101 run at its rates."""
    evaluation = seed.evaluation
    val = Pooled().add(evaluation.val_clips, evaluation.val_seconds)
    test = Pooled().add(evaluation.test_videos, evaluation.test_seconds)
    views = f"{seed.setting}, {evaluation.views} views"
    seconds = test_seconds(test.rate)
    figures = {
        "val_clips_per_s": Measurement.pooled(val, seed.setting),
        "test_videos_per_s": Measurement.pooled(test, views),
        "test_seconds_per_run": Measurement(seconds, [seconds], views, goal=_goal("test_seconds_per_run", on_gpu)),
    }
    loop_rate = pooled(seed.fit, factor=seed.batch_size).rate
    return figures, run_seconds(loop_rate, val.rate, test.rate, seed.fit[0].compile_s)


def training_figures(results: list[VariantResult], on_gpu: bool) -> dict[str, list[Measurement]]:
    """Figures per model and variant, the seed's evaluation, and the seed grid's projected hours."""
    figures: dict[str, list[Measurement]] = {}
    runs: dict[str, float] = {}
    seeds = {r.model: r for r in results if r.variant == SEED and measured(r)}
    for result in filter(measured, results):
        named = _loop_figures(result, seeds.get(result.model), on_gpu)
        if result.evaluation is not None:
            evaluation, runs[result.model] = _evaluation_figures(result, on_gpu)
            named |= evaluation
        for name, measurement in named.items():
            figures.setdefault(name, []).append(measurement)
    if runs:
        hours = grid_hours(runs)
        setting = f"seed: 18 runs x 20 epochs, UCF101 split-1 sizes, at {'+'.join(runs)}'s rates"
        figures["grid_hours"] = [Measurement(hours, [hours], setting, goal=_goal("grid_hours", on_gpu))]
    return figures
