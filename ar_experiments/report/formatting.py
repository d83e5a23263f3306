"""How the report writes numbers, intervals and tables as text."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .comparisons import Comparison
from .stats import AccuracyEstimate
from .sweep_results import (
    Job,
)

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


def format_interval(estimate: AccuracyEstimate | None) -> str:
    return f"{percent(estimate.ci_low)} to {percent(estimate.ci_high)}" if estimate else ""


def evaluated_videos_text(job: Job) -> str:
    """The test videos a run was evaluated on: "3781 (2 skipped)" when it left out unreadable ones."""
    videos, skipped = job.get("test_videos"), job.get("skipped_test_videos")
    if videos is None:
        return ""  # a results.json written before runs counted them
    return f"{videos} ({skipped} skipped)" if skipped else str(videos)


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
