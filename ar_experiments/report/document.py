"""The report of one sweep: its run table, settings table, comparisons and notes as markdown."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from . import plots as report_plots
from .comparisons import ON_VIDEOS, OVER_RUNS, Comparison
from .formatting import (
    RESULT_COLUMNS,
    evaluated_videos_text,
    first_present,
    format_interval,
    markdown_table,
    percent,
    provenance,
    shorten,
    uneven_videos_note,
)
from .stats import ALPHA, CONFIDENCE, MIN_RUNS_TO_CONCLUDE, AccuracyEstimate
from .sweep_results import (
    HEADLINE,
    PREDICTIONS_FILE,
    REPLICATE_KEYS,
    Job,
    Sweep,
    format_value,
    series_label,
    setting_label,
)


@dataclass
class SweepReport:
    sweep: Sweep
    estimates: dict[str, AccuracyEstimate]  # job name -> top-1 with its interval, from its test predictions
    comparisons: list[Comparison]
    notes: list[str] = field(default_factory=list)
    plots: dict[str, bytes] = field(default_factory=dict)  # file name -> PNG

    def run_table(self) -> str:
        jobs = self.sweep.jobs
        columns: list[tuple[str, Callable[[Job], str]]] = [
            ("run", lambda job: job.name),
            ("status", lambda job: job.status),
        ]
        for header, key, fmt in RESULT_COLUMNS:
            if key in ("gflops", "device") and all(job.get(key) is None for job in jobs):
                continue
            columns.append((header, lambda job, key=key, fmt=fmt: fmt(job.get(key))))
            if key == HEADLINE and self.estimates:
                columns.append(
                    (f"top-1 {CONFIDENCE:.0%} CI", lambda job: format_interval(self.estimates.get(job.name)))
                )
            if key == HEADLINE and self.shows_test_videos:
                columns.append(("test videos", evaluated_videos_text))
        columns += [
            (key, lambda job, key=key: format_value((job.overrides or {}).get(key, ""))) for key in self.sweep.varied
        ]
        return markdown_table([header for header, _ in columns], [[cell(job) for _, cell in columns] for job in jobs])

    @property
    def shows_test_videos(self) -> bool:
        return any(job.get("test_videos") is not None for job in self.sweep.jobs)

    def columns_explained(self) -> str:
        text = (
            "Accuracies are test-set percentages. top-1 is the single central view; "
            "top-1 multi-view averages the test views (the same as top-1 when one view was used) and is the "
            f"accuracy ({HEADLINE}) that the summary, the comparisons and the plots use."
        )
        if self.estimates:
            text += (
                f" top-1 {CONFIDENCE:.0%} CI: the Clopper-Pearson interval of top-1 multi-view over the videos "
                f"of the run's {PREDICTIONS_FILE}."
            )
        if self.shows_test_videos:
            text += " test videos: the test videos a run was evaluated on, and how many it left out as unreadable."
        return text

    def completed_runs(self) -> pd.DataFrame:
        """One row per completed run with what the summary table and the plots need."""
        rows = []
        for job in self.sweep.completed:
            if job.top1 is None:
                continue
            setting = self.sweep.setting(job)
            rows.append(
                {
                    "job": job.name,
                    "setting": setting_label(setting),
                    "series": series_label(setting),
                    "model": job.get("model"),
                    "frames": job.get("frames"),
                    "split": job.get("split"),
                    "seed": job.get("seed"),
                    "top1": job.top1,
                    "top5": first_present(job.get("test_top5_multiview"), job.get("test_top5")),
                    "best_val_acc": job.get("best_val_acc"),
                    "gflops": job.get("gflops"),
                    "train_clips_per_s": job.get("train_clips_per_s"),
                }
            )
        columns = "job setting series model frames split seed top1 top5 best_val_acc gflops train_clips_per_s".split()
        return pd.DataFrame(rows, columns=columns).astype(
            {"gflops": float, "train_clips_per_s": float, "top5": float, "best_val_acc": float}
        )

    def settings_table(self) -> str:
        runs = self.completed_runs()
        if runs.empty:
            return "No completed runs yet."
        replicate_keys = [key for key in REPLICATE_KEYS if key == "split" or key in self.sweep.replicate_keys_varied]
        summary = runs.groupby("setting").agg(
            top1=("top1", "mean"),
            top1_std=("top1", "std"),
            top5=("top5", "mean"),
            best_val=("best_val_acc", "mean"),
            runs=("top1", "size"),
            **{key: (key, lambda values: ", ".join(str(v) for v in sorted(set(values)))) for key in replicate_keys},
        )
        summary = summary.sort_values(["top1", "runs"], ascending=[False, False])
        rows = [
            [
                setting,
                f"{percent(row.top1)} ± {percent(row.top1_std)}" if row.runs > 1 else percent(row.top1),
                percent(row.top5),
                percent(row.best_val),
                str(row.runs),
                *(row[key] for key in replicate_keys),
            ]
            for setting, row in summary.iterrows()
        ]
        headers = ["setting", "top-1 (mean ± std)", "top-5", "best val", "runs", *(f"{key}s" for key in replicate_keys)]
        return markdown_table(headers, rows)

    def comparison_section(self) -> list[str]:
        on_videos = [c for c in self.comparisons if c.kind == ON_VIDEOS]
        over_runs = [c for c in self.comparisons if c.kind == OVER_RUNS]
        lines = ["## Comparisons", ""]
        lines += [
            "Settings that differ in the model alone or in the frames alone are compared; "
            "the one with the higher mean top-1 is named first; differences are in percentage points of test top-1.",
            "",
            "### On the same test videos (one split at a time)",
            "",
        ]
        if on_videos:
            lines += [
                f"{CONFIDENCE:.0%} CI: paired bootstrap over test videos; p: McNemar's exact test on the videos "
                "only one of the two runs classified right.",
                "",
            ]
            lines += [f"- {c.sentence}" for c in on_videos]
            uneven = [c for c in on_videos if c.videos_differ]
            if uneven:
                lines += ["", uneven_videos_note(uneven)]
        else:
            lines.append(
                f"None: this needs two runs on the same split that differ in model or frames alone, "
                f"both with {PREDICTIONS_FILE}."
            )
        lines += ["", "### Across splits and seeds (paired over matched runs)", ""]
        if over_runs:
            lines += [
                f"Each split (and seed) gives one accuracy difference; the test is a paired t-test on those, and fewer "
                f"than {MIN_RUNS_TO_CONCLUDE} matched runs are too few to conclude anything.",
                "",
            ]
            lines += [f"- {c.sentence}" for c in over_runs]
        else:
            lines.append(
                "None: the sweep has a single split and seed, or no two settings differ in model or frames alone."
            )
        tested = [c for c in self.comparisons if not math.isnan(c.p_value)]
        if len(tested) > 1:
            lines += [
                "",
                f"These p-values are each for one comparison: with {len(tested)} tests, about "
                f"{ALPHA * len(tested):.1f} would fall below {ALPHA:g} by chance alone if nothing differed. "
                "comparisons.csv holds Holm-adjusted p-values (column p_holm, within each kind).",
            ]
        return lines

    def optuna_section(self) -> list[str]:
        optuna = self.sweep.optuna
        if not optuna:
            return []
        best_params = optuna.get("best_params") or {}
        best_job = best_optuna_job(self.sweep)
        params = ", ".join(f"{key}={format_value(value)}" for key, value in best_params.items())
        lines = ["## Optuna search", ""]
        lines.append(
            f"Best trial: {f'`{best_job.name}`' if best_job else 'not found among the job folders'}, "
            f"objective {percent(optuna.get('best_value'))} (best validation top-1, %), "
            f"with {params or 'no parameters'}."
        )
        if "optuna_history.png" in self.plots:
            lines += ["", "![Optuna optimisation history](optuna_history.png)"]
        return lines

    def failures_section(self) -> list[str]:
        failed = [job for job in self.sweep.jobs if not job.completed]
        if not failed:
            return []
        rows = [[job.name, job.status, shorten(job.error)] for job in failed]
        return ["## Failed or unfinished runs", "", markdown_table(["run", "status", "error"], rows)]

    def markdown(self) -> str:
        sweep = self.sweep
        counts = pd.Series([job.status for job in sweep.jobs]).value_counts()
        lines = [
            f"# Sweep report: {sweep.folder.parent.name}/{sweep.folder.name}",
            "",
            f"Sweep folder `{sweep.folder}`: {len(sweep.jobs)} jobs ("
            + ", ".join(f"{count} {status}" for status, count in counts.items())
            + ").",
            "",
            self.columns_explained(),
            *provenance(sweep.completed),
            "",
            "## Runs",
            "",
            self.run_table(),
            "",
            "## By model and frames",
            "",
            "Mean ± sample standard deviation over splits and seeds, best first.",
            "",
            self.settings_table(),
            "",
            *self.comparison_section(),
            "",
        ]
        for section in (self.optuna_section(), self.failures_section()):
            if section:
                lines += [*section, ""]
        titles = {
            "top1_vs_frames.png": "Test top-1 vs frames",
            "top1_vs_cost.png": f"Test top-1 vs {report_plots.cost_axis(self.completed_runs())[1]}",
            "val_curves.png": "Validation top-1 per epoch",
        }
        figures = [(title, name) for name, title in titles.items() if name in self.plots]
        if figures:
            lines += ["## Plots", ""]
            lines += [f"![{title}]({name})\n" for title, name in figures]
        if self.notes:
            lines += ["## Notes", "", *(f"- {note}" for note in self.notes), ""]
        return "\n".join(lines).rstrip() + "\n"


def values_match(written: Any, wanted: Any) -> bool:
    try:
        return math.isclose(float(written), float(wanted), rel_tol=1e-9)
    except (TypeError, ValueError):
        return str(written) == str(wanted)


def best_optuna_job(sweep: Sweep) -> Job | None:
    """The completed job whose overrides hold Optuna's best_params (the best objective among several)."""
    best_params = (sweep.optuna or {}).get("best_params") or {}
    matches = [
        job
        for job in sweep.completed
        if job.overrides is not None and all(values_match(job.overrides.get(k), v) for k, v in best_params.items())
    ]
    return max(matches, key=lambda job: job.get("best_val_acc") or -1.0, default=None)
