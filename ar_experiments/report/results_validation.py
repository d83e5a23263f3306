"""A run's results.json checked before a report believes it.

results.json is written atomically by train(), so a damaged one was edited by
hand, copied in from elsewhere or written by another program. The report goes
on without such a run and lists it, with the file and the reason, among the
failed or unreadable runs: never a traceback, never a wrong number in a table.
Accuracies are fractions in [0, 1] (docs: "Accuracies are fractions"); a
percentage such as 57.3 is refused, not shown as 5730 %.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

UNREADABLE = "unreadable"
ACCURACY_KEYS = (
    "best_val_acc",
    "test_top1",
    "test_top5",
    "test_top1_multiview",
    "test_top5_multiview",
    "test_mean_class_acc",
)
NUMBER_KEYS = (
    "frames",
    "stride",
    "split",
    "seed",
    "epochs",
    "params",
    "gflops",
    "lr",
    "lr_effective",
    "train_seconds",
    "train_clips_per_s",
    "test_views",
    "test_videos",
    "skipped_test_videos",
    "val_videos",
    "skipped_val_videos",
    "skipped_videos",
    "peak_rss_mb",
    "peak_gpu_mb",
    "startup_s",
)
TEXT_KEYS = ("status", "error", "model", "run_name")


def read_results(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(the record, None) when `path` holds a sound results.json, else (None, why not, naming the file)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        return None, f"{path} cannot be read: {err}"
    if not text.strip():
        return None, f"{path} is empty"
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        return None, f"{path} is not JSON ({err})"
    problem = record_problem(record)
    return (None, f"{path}: {problem}") if problem else (record, None)


def record_problem(record: Any) -> str | None:
    """What is wrong with a parsed results.json (None when nothing)."""
    if not isinstance(record, dict):
        return f"holds a {type(record).__name__}, not a JSON object"
    for key in TEXT_KEYS:
        value = record.get(key)
        if value is not None and not isinstance(value, str):
            return f"{key} is {value!r}, not text"
    for key in (*ACCURACY_KEYS, *NUMBER_KEYS):
        value = record.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{key} is {value!r}, not a number"
        if key in ACCURACY_KEYS and not (math.isfinite(value) and 0.0 <= value <= 1.0):
            return f"{key} is {value!r}, outside [0, 1] (accuracies are fractions; a percentage?)"
        if key not in ACCURACY_KEYS and math.isnan(value):
            return f"{key} is NaN"
    return None
