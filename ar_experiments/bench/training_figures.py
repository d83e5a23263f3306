"""The training part's figures: per model at the seed's setting and its fastest variant, every variant as
ratios against the seed, and the projected hours of the seed's grid on real UCF101."""

from __future__ import annotations

from .figures import GPU_GOALS, GPU_SPEEDUP_GOAL, SEED_H200_LOOP_CLIPS_PER_S, Measurement, Pooled, aligned, number
from .projection import UCF101_SPLIT1, grid_hours, run_seconds, test_seconds
from .training import LoopTiming, VariantResult


def steps(timings: list[LoopTiming]) -> Pooled:
    pooled = Pooled()
    for timing in timings:
        pooled.add(timing.steps, timing.seconds)
    return pooled


def idle(timings: list[LoopTiming]) -> Pooled:
    pooled = Pooled()
    for timing in timings:
        pooled.add(timing.idle_seconds, timing.seconds)
    return pooled


def peak_gib(timings: list[LoopTiming]) -> float | None:
    """The highest GPU memory allocated by the fit loop in any round (None off the GPU)."""
    peaks = [t.peak_gpu_bytes for t in timings if t.peak_gpu_bytes is not None]
    return max(peaks) / 2**30 if peaks else None


def measured(result: VariantResult) -> bool:
    return bool(result.fit and result.plain) and result.error is None


def loop_rate(result: VariantResult) -> float:
    return steps(result.fit).rate * result.batch_size


def model_rate(result: VariantResult) -> float:
    return steps(result.plain).rate * result.batch_size


def projected_run_seconds(result: VariantResult) -> float | None:
    """One UCF101 run at this result's rates (projection.run_seconds), None without an evaluation."""
    if not measured(result) or result.evaluation is None:
        return None
    evaluation = result.evaluation
    return run_seconds(
        loop_rate(result),
        evaluation.val_clips / evaluation.val_seconds,
        evaluation.test_videos / evaluation.test_seconds,
        result.fit[0].compile_s,
    )


def _goal(name: str, on_gpu: bool, model: str | None = None) -> tuple[str, float] | None:
    if not on_gpu:
        return None
    if name == "train_loop_clips_per_s" and model in SEED_H200_LOOP_CLIPS_PER_S:
        return (">=", round(GPU_SPEEDUP_GOAL * SEED_H200_LOOP_CLIPS_PER_S[model], 1))
    return GPU_GOALS.get(name)


def _loop_figures(result: VariantResult, setting: str, on_gpu: bool) -> dict[str, Measurement]:
    fit, plain = steps(result.fit), steps(result.plain)
    figures = {
        "train_loop_clips_per_s": Measurement.pooled(
            fit.scaled(result.batch_size), setting, goal=_goal("train_loop_clips_per_s", on_gpu, result.model)
        ),
        "train_model_clips_per_s": Measurement.pooled(plain.scaled(result.batch_size), setting),
        "train_vs_model_bound": Measurement.ratio(fit, plain, setting, goal=_goal("train_vs_model_bound", on_gpu)),
        "train_idle_fraction": Measurement.pooled(idle(result.fit), setting, goal=_goal("train_idle_fraction", on_gpu)),
    }
    peak = peak_gib(result.fit)
    if peak is not None:
        figures["peak_gpu_gib"] = Measurement(peak, [peak], setting)
    return figures


def training_figures(results: list[VariantResult], on_gpu: bool) -> dict[str, list[Measurement]]:
    """Figures per model at the seed's setting (and its fastest variant's), and the grid's projected hours."""
    figures: dict[str, list[Measurement]] = {}

    def add(name: str, measurement: Measurement) -> None:
        figures.setdefault(name, []).append(measurement)

    models = list(dict.fromkeys(r.model for r in results))
    for model in models:
        mine = [r for r in results if r.model == model and measured(r)]
        seed = next((r for r in mine if r.variant.name == "seed"), None)
        if seed is None:
            continue
        for name, measurement in _loop_figures(seed, seed.setting, on_gpu).items():
            add(name, measurement)
        if seed.stock:
            add("kernels_vs_stock", Measurement.ratio(steps(seed.plain), steps(seed.stock), seed.setting))
        if seed.evaluation is not None:
            evaluation = seed.evaluation
            val = Pooled().add(evaluation.val_clips, evaluation.val_seconds)
            test = Pooled().add(evaluation.test_videos, evaluation.test_seconds)
            add("val_clips_per_s", Measurement.pooled(val, seed.setting))
            views = f"{seed.setting}, {evaluation.views} views"
            add("test_videos_per_s", Measurement.pooled(test, views))
            seconds = test_seconds(test.rate)
            add(
                "test_seconds_per_run",
                Measurement(seconds, [seconds], views, goal=_goal("test_seconds_per_run", on_gpu)),
            )
        fastest = max(mine, key=loop_rate)
        if fastest is not seed:
            setting = f"{fastest.setting} ({fastest.variant.name})"
            for name in ("train_loop_clips_per_s", "train_vs_model_bound", "train_idle_fraction"):
                add(name, _loop_figures(fastest, setting, on_gpu)[name])
    for variant in dict.fromkeys(r.variant for r in results):
        runs = {r.model: projected_run_seconds(r) for r in results if r.variant == variant}
        if runs and all(seconds is not None for seconds in runs.values()):
            hours = grid_hours(runs)
            setting = f"{variant.name}: 18 runs x 20 epochs, UCF101 split-1 sizes, at {'+'.join(runs)}'s rates"
            add("grid_hours", Measurement(hours, [hours], setting, goal=_goal("grid_hours", on_gpu)))
    return figures


def variant_rows(results: list[VariantResult]) -> list[dict]:
    """One row per model and variant, rates pooled over rounds and set against the same model's seed."""
    seeds = {r.model: r for r in results if r.variant.name == "seed" and measured(r)}
    rows = []
    for result in results:
        row = {"model": result.model, "variant": result.variant.name, "what": result.variant.what}
        row["overrides"] = list(result.variant.overrides)
        row["batch_size"] = result.batch_size
        if not measured(result):
            row["error"] = result.error or "not measured"
            rows.append(row)
            continue
        seed = seeds.get(result.model)
        row.update(
            rounds=len(result.fit),
            loop_clips_per_s=loop_rate(result),
            model_clips_per_s=model_rate(result),
            loop_vs_model=steps(result.fit).rate / steps(result.plain).rate,
            idle_fraction=idle(result.fit).rate,
            compile_s=result.fit[0].compile_s,
            compile_again_s=result.plain[0].compile_s,  # a second compile in the same process, cache warm
            peak_gpu_gib=peak_gib(result.fit),
        )
        if seed is not None:
            row["loop_vs_seed"] = row["loop_clips_per_s"] / loop_rate(seed)
            row["model_vs_seed"] = row["model_clips_per_s"] / model_rate(seed)
        if result.evaluation is not None:
            evaluation = result.evaluation
            row["val_clips_per_s"] = evaluation.val_clips / evaluation.val_seconds
            row["test_videos_per_s"] = evaluation.test_videos / evaluation.test_seconds
            row["test_seconds_per_run"] = UCF101_SPLIT1.test_videos / row["test_videos_per_s"]
            row["projected_run_hours"] = projected_run_seconds(result) / 3600
        rows.append({key: round(value, 4) if isinstance(value, float) else value for key, value in row.items()})
    return rows


def variants_table(rows: list[dict]) -> str:
    """The variants side by side: rates, their ratio to the seed's, idle share, compile seconds, memory."""
    header = (
        "model",
        "variant",
        "loop clips/s",
        "x seed",
        "model clips/s",
        "x seed",
        "loop/model",
        "idle",
        "compile s",
        "peak GiB",
        "test videos/s",
        "run h",
    )
    lines = [header]
    for row in rows:
        if "error" in row:
            lines.append((row["model"], row["variant"], row["error"][:100], *[""] * (len(header) - 3)))
            continue
        lines.append(
            (
                row["model"],
                row["variant"],
                number(row["loop_clips_per_s"]),
                number(row.get("loop_vs_seed")),
                number(row["model_clips_per_s"]),
                number(row.get("model_vs_seed")),
                number(row["loop_vs_model"]),
                number(row["idle_fraction"]),
                number(row["compile_s"]),
                number(row["peak_gpu_gib"]),
                number(row.get("test_videos_per_s")),
                number(row.get("projected_run_hours")),
            )
        )
    return aligned(lines)
