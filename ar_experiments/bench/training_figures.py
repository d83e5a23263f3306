"""The training part's figures: per model and variant the loop's rates (each variant also over the seed's),
the seed's evaluation, and the projected hours of the seed's grid on real UCF101.

The projection, one run at UCF101 split 1's sizes (the other splits are within 1% of them):

    run_s = epochs * (train_videos / fit_clips_per_s + val_videos / val_clips_per_s)
            + test_videos / test_videos_per_s + compile_s

train_videos is the trainlist less the held-out validation groups (9,537 - ~1,590),
one clip per video per epoch; validation is one central clip per video each epoch;
the test is the multi-view pass of `trainer.test` (10 temporal x 3 spatial views on
UCF101) measured as videos/s; compile_s is paid once per run (a sweep's disk cache
can make it smaller after the first job). The grid is 2 models x 3 frame counts x
3 splits; each model's 9 runs are costed at that model's measured setting, which
for the bench's frames (16 for X3D-M, 32 for SlowFast) is the most expensive of
its grid, so the projection is an upper bound in that respect. Early stopping can
end runs before `epochs`, which would also shorten them.
"""

from __future__ import annotations

from .clocks import LoopTiming, VariantResult
from .figures import Measurement, Pooled, goal
from .plans import SEED

# UCF101 split 1: the trainlist (held-out validation groups included), the validation groups
# (3 of 18 per class), the testlist; the grid's epochs and runs (2 models x 3 frame counts x 3 splits)
TRAIN_VIDEOS, VAL_VIDEOS, TEST_VIDEOS = 9537, 1590, 3783
SEED_EPOCHS, SEED_GRID_RUNS = 20, 18


def run_seconds(fit_clips_per_s: float, val_clips_per_s: float, test_videos_per_s: float, compile_s: float) -> float:
    """Seconds of one run: the seed's epochs of training and validation, one multi-view test, one compile."""
    per_epoch = (TRAIN_VIDEOS - VAL_VIDEOS) / fit_clips_per_s + VAL_VIDEOS / val_clips_per_s
    return SEED_EPOCHS * per_epoch + TEST_VIDEOS / test_videos_per_s + compile_s


def grid_hours(run_seconds_by_model: dict[str, float]) -> float:
    """Hours of the grid's runs, one after another on one GPU, shared evenly among the measured models.

    With both models measured, each runs 9 times at its own rate; with one (the CPU bench), all 18 at its rate.
    """
    return sum(run_seconds_by_model.values()) * SEED_GRID_RUNS / len(run_seconds_by_model) / 3600


def pooled(timings: list[LoopTiming], units: str = "steps", factor: float = 1.0) -> Pooled:
    """Steps (times `factor`: clips) or idle seconds over the loop's seconds, a round per timing."""
    return Pooled([getattr(t, units) * factor for t in timings], [t.seconds for t in timings])


def _loop_figures(result: VariantResult, seed: VariantResult | None, on_gpu: bool) -> dict[str, Measurement]:
    setting = result.setting if result.variant == SEED else f"{result.setting} ({result.variant})"
    loop = pooled(result.fit, factor=result.batch_size)
    figures = {
        "train_loop_clips_per_s": Measurement.pooled(
            loop, setting, goal=goal("train_loop_clips_per_s", on_gpu, result.model)
        ),
        "train_model_clips_per_s": Measurement.pooled(pooled(result.plain, factor=result.batch_size), setting),
        "train_vs_model_bound": Measurement.ratio(
            pooled(result.fit), pooled(result.plain), setting, goal=goal("train_vs_model_bound", on_gpu)
        ),
        "train_idle_fraction": Measurement.pooled(
            pooled(result.fit, "idle_seconds"), setting, goal=goal("train_idle_fraction", on_gpu)
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
    seconds = TEST_VIDEOS / test.rate
    figures = {
        "val_clips_per_s": Measurement.pooled(val, seed.setting),
        "test_videos_per_s": Measurement.pooled(test, views),
        "test_seconds_per_run": Measurement(seconds, [seconds], views, goal=goal("test_seconds_per_run", on_gpu)),
    }
    loop_rate = pooled(seed.fit, factor=seed.batch_size).rate
    return figures, run_seconds(loop_rate, val.rate, test.rate, seed.fit[0].compile_s)


def training_figures(results: list[VariantResult], on_gpu: bool) -> dict[str, list[Measurement]]:
    """Figures per model and variant, the seed's evaluation, and the seed grid's projected hours."""
    figures: dict[str, list[Measurement]] = {}
    runs: dict[str, float] = {}
    measured = [r for r in results if r.fit and r.plain and r.error is None]
    seeds = {r.model: r for r in measured if r.variant == SEED}
    for result in measured:
        named = _loop_figures(result, seeds.get(result.model), on_gpu)
        if result.evaluation is not None:
            evaluation, runs[result.model] = _evaluation_figures(result, on_gpu)
            named |= evaluation
        for name, measurement in named.items():
            figures.setdefault(name, []).append(measurement)
    if runs:
        hours = grid_hours(runs)
        setting = f"seed: 18 runs x 20 epochs, UCF101 split-1 sizes, at {'+'.join(runs)}'s rates"
        figures["grid_hours"] = [Measurement(hours, [hours], setting, goal=goal("grid_hours", on_gpu))]
    return figures
