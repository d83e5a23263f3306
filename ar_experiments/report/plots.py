"""The report's PNG plots, drawn on matplotlib Figures (no pyplot state, no display needed).

Every function takes the completed runs as a DataFrame with the columns job, setting, series (the
setting without frames), frames, top1, gflops, train_clips_per_s (accuracies as fractions) and
returns the PNG's bytes, or None when there is nothing to draw.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

FIGSIZE = (7.5, 4.8)
DPI = 130
MAX_LEGEND_ENTRIES = 16


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _new_axes(title: str, xlabel: str, ylabel: str):
    figure = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    axes = figure.subplots()
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    return figure, axes


def _legend(axes, title: str | None = None) -> None:
    handles, labels = axes.get_legend_handles_labels()
    if 0 < len(labels) <= MAX_LEGEND_ENTRIES:
        axes.legend(title=title, fontsize="small", ncol=2 if len(labels) > 6 else 1)


def _colors(labels) -> dict[str, str]:
    return {label: f"C{i % 10}" for i, label in enumerate(sorted(set(labels)))}


def _mean_and_std(axes, x, mean: pd.Series, std: pd.Series, color: str, label: str, **style) -> None:
    """Mean top-1 (%) with the std over splits and seeds as error bars (none for a single run)."""
    axes.errorbar(x, 100 * mean, yerr=100 * std.fillna(0.0), capsize=4, color=color, label=label, **style)


def top1_vs_frames(runs: pd.DataFrame) -> bytes | None:
    """Mean test top-1 per frames with the std over splits/seeds as error bars; faint dots are single runs."""
    if runs.empty:
        return None
    figure, axes = _new_axes(
        "Test top-1 vs frames per clip\n(mean ± std over splits and seeds; dots are single runs)",
        "frames per clip",
        "test top-1 (%)",
    )
    colors = _colors(runs["series"])
    frames = np.sort(runs["frames"].unique())
    # Models side by side around each frames value, so their error bars do not hide each other.
    gap = np.diff(frames).min() if len(frames) > 1 else 2.0
    step = 0.05 * gap
    groups = list(runs.groupby("series"))
    for i, (series, rows) in enumerate(groups):
        offset = (i - (len(groups) - 1) / 2) * step
        summary = rows.groupby("frames")["top1"].agg(["mean", "std"]).sort_index()
        _mean_and_std(axes, summary.index + offset, summary["mean"], summary["std"], colors[series], series, marker="o")
        axes.scatter(rows["frames"] + offset, 100 * rows["top1"], color=colors[series], alpha=0.35, s=16)
    axes.set_xticks(frames)
    axes.set_xlim(frames[0] - gap / 2, frames[-1] + gap / 2)
    _legend(axes, "model")
    return _png(figure)


def cost_axis(runs: pd.DataFrame) -> tuple[str, str]:
    """(column, axis label) of the cost plot: GFLOPs when every run has them, else training throughput."""
    if len(runs) and runs["gflops"].notna().all():
        return "gflops", "GFLOPs per view"
    return "train_clips_per_s", "training throughput (clips/s)"


def top1_vs_cost(runs: pd.DataFrame) -> bytes | None:
    """Mean top-1 per setting against GFLOPs, or against training throughput where any run lacks GFLOPs."""
    cost, xlabel = cost_axis(runs)
    if runs.empty or runs[cost].isna().all():
        return None
    figure, axes = _new_axes(
        f"Test top-1 vs {xlabel.split(' (')[0]}\n(mean ± std over splits and seeds; labels: frames)",
        xlabel,
        "test top-1 (%)",
    )
    colors = _colors(runs["series"])
    summary = (
        runs.groupby(["series", "frames"])
        .agg(top1=("top1", "mean"), top1_std=("top1", "std"), cost=(cost, "mean"))
        .reset_index()
    )
    for series, rows in summary.groupby("series"):
        _mean_and_std(axes, rows["cost"], rows["top1"], rows["top1_std"], colors[series], series, fmt="o")
        for _, row in rows.iterrows():
            axes.annotate(
                f"{row['frames']}f", (row["cost"], 100 * row["top1"]), textcoords="offset points", xytext=(6, 4)
            )
    positive = summary["cost"][summary["cost"] > 0]
    if len(positive) and positive.max() / positive.min() > 10:
        axes.set_xscale("log")
    _legend(axes, "model")
    return _png(figure)


def validation_curves(curves: dict[str, pd.Series], settings: dict[str, str]) -> bytes | None:
    """val/top1 per epoch of every run; runs of one setting share a colour (one legend entry per setting)."""
    if not curves:
        return None
    figure, axes = _new_axes(
        f"Validation top-1 per epoch ({len(curves)} runs; one colour per setting)", "epoch", "validation top-1 (%)"
    )
    colors = _colors(settings[job] for job in curves)
    labelled = set()
    for job, curve in curves.items():
        setting = settings[job]
        axes.plot(
            curve.index + 1,  # Lightning counts epochs from 0
            100 * curve.to_numpy(),
            marker="." if len(curve) < 30 else None,
            color=colors[setting],
            alpha=0.8,
            label=None if setting in labelled else setting,
        )
        labelled.add(setting)
    axes.xaxis.get_major_locator().set_params(integer=True)
    _legend(axes)
    return _png(figure)


def optimisation_history(trials: pd.DataFrame, best_trial: int | None) -> bytes | None:
    """The objective (best validation top-1) of each trial in job order, and the best so far."""
    trials = trials.dropna(subset=["objective"])
    if trials.empty:
        return None
    figure, axes = _new_axes(
        "Optuna optimisation history", "trial (job number)", "objective: best validation top-1 (%)"
    )
    axes.scatter(trials["trial"], 100 * trials["objective"], color="C0", label="trial", zorder=3)
    axes.step(
        trials["trial"],
        100 * np.maximum.accumulate(trials["objective"].to_numpy()),
        where="post",
        color="C1",
        label="best so far",
    )
    if best_trial is not None and best_trial in set(trials["trial"]):
        best = trials[trials["trial"] == best_trial].iloc[0]
        axes.scatter(
            [best_trial], [100 * best["objective"]], marker="*", s=220, color="C3", label="best trial", zorder=4
        )
    axes.xaxis.get_major_locator().set_params(integer=True)
    _legend(axes)
    return _png(figure)
