"""Turn a sweep folder into report.md, report.csv, comparisons.csv and PNG plots, written into that folder.

    python -m ar_experiments.report multirun/2025-01-31/12-00-00
    python -m ar_experiments.report --latest     # the newest multirun/<date>/<time> under the current folder
    python -m ar_experiments.report --progress multirun/2025-01-31/12-00-00   # how far a (running) sweep has got

Works on a sweep that is still running or partly failed: runs without results.json, or whose status is
not completed, are listed with their error and left out of the statistics.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from . import report_plots
from .atomic import atomic_write_bytes, atomic_write_text
from .comparisons import ON_VIDEOS, OVER_RUNS, Comparison, compare_sweep, comparisons_table
from .stats import ALPHA, CONFIDENCE, DEFAULT_RESAMPLES, MIN_RUNS_TO_CONCLUDE, AccuracyEstimate, accuracy_with_ci
from .sweep_results import (
    HEADLINE,
    PREDICTIONS_FILE,
    REPLICATE_KEYS,
    Job,
    Sweep,
    format_value,
    latest_sweep,
    series_label,
    setting_label,
)

MIN_RESAMPLES = 1000
ERROR_CHARS_IN_TABLE = 300


def percent(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}"


def number(digits: int) -> Callable[[Any], str]:
    return lambda value: "" if value is None else f"{value:,.{digits}f}"


def significant(value: Any) -> str:
    """Three significant digits: a 32-pixel view costs 0.0216 GFLOPs, a 224-pixel one 4.73."""
    return "" if value is None else f"{value:.3g}"


def millions(value: Any) -> str:
    return "" if value is None else f"{value / 1e6:.2f}M"


def first_present(*values: Any) -> Any:
    return next((value for value in values if value is not None), None)


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    def cell(text: Any) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


# (header, results.json key, formatter) of the run table after run and status, in order.
RESULT_COLUMNS: list[tuple[str, str, Callable[[Any], str]]] = [
    ("top-1", "test_top1", percent),
    ("top-1 multi-view", "test_top1_multiview", percent),
    ("top-5", "test_top5", percent),
    ("mean class acc", "test_mean_class_acc", percent),
    ("best val", "best_val_acc", percent),
    ("epochs", "epochs", number(0)),
    ("train s", "train_seconds", number(0)),
    ("clips/s", "train_clips_per_s", number(1)),
    ("params", "params", millions),
    ("GFLOPs", "gflops", significant),
    ("device", "device", lambda value: "" if value is None else str(value)),
]


def format_interval(estimate: AccuracyEstimate) -> str:
    return f"{percent(estimate.ci_low)} to {percent(estimate.ci_high)}"


def evaluated_videos_text(job: Job) -> str:
    """The test videos a run was evaluated on: "3781 (2 skipped)" when it left out unreadable ones."""
    videos, skipped = job.get("test_videos"), job.get("skipped_test_videos")
    if videos is None:
        return ""  # a results.json written before runs counted them
    return f"{videos} ({skipped} skipped)" if skipped else str(videos)


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
                columns.append((f"top-1 {CONFIDENCE:.0%} CI", self.interval_text))
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

    def interval_text(self, job: Job) -> str:
        estimate = self.estimates.get(job.name)
        return format_interval(estimate) if estimate else ""

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
        failed = self.sweep.not_completed
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


def uneven_videos_note(comparisons: list[Comparison]) -> str:
    """One line naming the per-video comparisons whose two runs evaluated different test videos."""
    pairs = "; ".join(
        f"{c.a} vs {c.b}, {c.replicates}: {c.n} shared ({c.a} evaluated {c.videos_a}, {c.b} {c.videos_b})"
        for c in comparisons
    )
    return f"Runs that evaluated different test videos are compared on the videos both evaluated: {pairs}."


def shorten(text: str, limit: int = ERROR_CHARS_IN_TABLE) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def provenance(jobs: list[Job]) -> list[str]:
    """One line naming the code the runs came from, flagging mixed commits or uncommitted changes."""
    commits = sorted({str(job.get("git_commit"))[:8] for job in jobs if job.get("git_commit")})
    if not commits:
        return []
    dirty = sum(1 for job in jobs if job.get("git_dirty"))
    line = f"Code: commit {', '.join(commits)}" + (" (runs differ in commit)" if len(commits) > 1 else "")
    if dirty:
        line += f"; {dirty} run(s) had uncommitted changes"
    return ["", line + "."]


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


def flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in record.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def runs_csv(report: SweepReport) -> pd.DataFrame:
    """report.csv: every results.json key flattened, `override.<key>` per Hydra override, and the CI columns."""
    rows = []
    for job in report.sweep.jobs:
        row = {"job": job.name, **flatten(job.results or {"status": job.status})}
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ar_experiments.report", description=__doc__.split("\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("sweep", nargs="?", type=Path, help="a sweep folder, multirun/<date>/<time>")
    where.add_argument(
        "--latest", action="store_true", help="the newest multirun/<date>/<time> under the current folder"
    )
    parser.add_argument(
        "--resamples",
        type=int,
        default=DEFAULT_RESAMPLES,
        help="bootstrap resamples of paired differences (at least 1000)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resampling")
    parser.add_argument("--progress", action="store_true", help="print the sweep's progress.json and write nothing")
    args = parser.parse_args(argv)
    if args.progress:
        from .sweep_progress import print_progress

        return print_progress(args.sweep, parser)
    if args.resamples < MIN_RESAMPLES:
        parser.error(f"--resamples {args.resamples} is too few for a 95% interval; use at least {MIN_RESAMPLES}")
    try:
        folder = latest_sweep(Path.cwd()) if args.latest else args.sweep
        sweep = Sweep.read(folder)
    except FileNotFoundError as err:
        parser.error(str(err))
    if not sweep.jobs:
        parser.error(
            f"no job folders (with .hydra/ or results.json) in {folder}; is it a multirun/<date>/<time> folder?"
        )
    report = analyse(sweep, n_resamples=args.resamples, seed=args.seed)
    written = write_report(report)
    print(f"Sweep {sweep.folder}\n\n{report.run_table()}\n\n{report.settings_table()}\n")
    print("Wrote " + ", ".join(path.name for path in written) + f" in {sweep.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
