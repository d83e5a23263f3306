"""Analyse a sweep folder: per-run intervals, comparisons and plots; write report.md, report.csv, PNGs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..record.results import KEYS, KINDS
from ..safety.atomic import atomic_write_bytes, atomic_write_text
from . import plots as report_plots
from .comparisons import compare_sweep, comparisons_table
from .document import SweepReport, best_optuna_job
from .stats import DEFAULT_RESAMPLES, accuracy_with_ci
from .sweep_results import (
    PREDICTIONS_FILE,
    Sweep,
)

# report.csv's first columns: every key of the record, in its order (objects such as `versions` are flattened)
RECORD_COLUMNS = tuple(key for key in KEYS if KINDS[key] is not dict)


def runs_csv(report: SweepReport) -> pd.DataFrame:
    """report.csv: every results.json key flattened, `override.<key>` per Hydra override, and the CI columns."""
    rows = []
    for job in report.sweep.jobs:
        flat = pd.json_normalize(job.results or {"status": job.status}).iloc[0].to_dict()
        row = {"job": job.name, **dict.fromkeys(RECORD_COLUMNS), **flat}
        if not job.completed:
            row["error"] = job.error
        row.update({f"override.{key}": value for key, value in (job.overrides or {}).items()})
        estimate = report.estimates.get(job.name)
        if estimate:
            row.update(
                # not `test_videos`: that is the results.json key, counted by the run itself
                predictions_videos=estimate.videos,
                predictions_top1=estimate.accuracy,
                predictions_top1_ci_low=estimate.ci_low,
                predictions_top1_ci_high=estimate.ci_high,
            )
        rows.append(row)
    return pd.DataFrame(rows)


def analyse(sweep: Sweep, *, n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> SweepReport:
    notes = []
    predictions, estimates = {}, {}
    for job in sweep.completed:
        try:
            correct = job.predictions()
        except (ValueError, OSError, pd.errors.ParserError) as err:
            notes.append(f"{job.name}: {PREDICTIONS_FILE} unreadable, left out of the per-video statistics: {err}")
            continue
        if correct is None or correct.empty:
            continue
        predictions[job.name] = correct
        estimates[job.name] = accuracy_with_ci(correct.to_numpy())
    without = [job.name for job in sweep.completed if job.name not in predictions]
    if without:
        notes.append(
            f"{len(without)} completed run(s) have no {PREDICTIONS_FILE}, so no confidence interval or per-video "
            f"comparison: {', '.join(without)}."
        )
    report = SweepReport(sweep, estimates, compare_sweep(sweep, predictions, n_resamples=n_resamples, seed=seed), notes)
    report.plots = draw_plots(report)
    return report


def draw_plots(report: SweepReport) -> dict[str, bytes]:
    runs = report.completed_runs()
    sweep = report.sweep
    settings = {row.job: row.setting for row in runs.itertuples()}
    curves = {
        job.name: curve for job in sweep.jobs if job.name in settings and (curve := job.validation_curve()) is not None
    }
    plots = {
        "top1_vs_frames.png": report_plots.top1_vs_frames(runs),
        "top1_vs_cost.png": report_plots.top1_vs_cost(runs),
        "val_curves.png": report_plots.validation_curves(curves, settings),
    }
    if sweep.optuna:
        trials = pd.DataFrame(
            {
                "trial": [job.number if job.number is not None else i for i, job in enumerate(sweep.jobs)],
                "objective": [job.get("best_val_acc") if job.completed else None for job in sweep.jobs],
            }
        ).astype({"objective": float})
        best = best_optuna_job(sweep)
        plots["optuna_history.png"] = report_plots.optimisation_history(trials, best.number if best else None)
    return {name: png for name, png in plots.items() if png is not None}


def write_report(report: SweepReport) -> list[Path]:
    folder = report.sweep.folder
    written = []
    for name, png in report.plots.items():
        atomic_write_bytes(folder / name, png)
        written.append(folder / name)
    atomic_write_text(folder / "report.csv", runs_csv(report).to_csv(index=False))
    atomic_write_text(folder / "comparisons.csv", comparisons_table(report.comparisons).to_csv(index=False))
    atomic_write_text(folder / "report.md", report.markdown())
    return [folder / "report.md", folder / "report.csv", folder / "comparisons.csv", *written]
