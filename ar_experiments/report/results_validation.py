"""A run's results.json checked before a report believes it.

train() writes it atomically, so a damaged one was edited or written elsewhere; the report lists such a run
as unreadable, with the file and the reason (docs/faults.md, "The report of a damaged sweep"). Each key is
checked by the type record/results.py gives it; keys it does not define (another version's) are kept.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..record.results import value_problem

UNREADABLE = "unreadable"


def read_results(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(the record, None) when `path` holds a sound results.json, else (None, why not, naming the file)."""
    try:
        # ("UTF-8" names the same codec, and the locale's default is UTF-8 where the tests run: equivalent mutants)
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
    return next(filter(None, (value_problem(key, value) for key, value in record.items())), None)
