"""`report` on a damaged sweep (issue 18, item 4): a broken results.json costs its run, never the report."""

from __future__ import annotations

import json

import pytest

from ar_experiments.report.cli import main
from tests.report.test_report import FAST, write_job

DAMAGE = {
    "not JSON": ('{"status": "completed", "test_top1": 0.6', "is not JSON"),
    "empty": ("", "is empty"),
    "a string where a number goes": (None, "test_top1 is '0.6', not a number"),
    "a percentage": (None, "test_top1 is 57.3, outside [0, 1]"),
    "a list": ("[1, 2]", "holds a list, not a JSON object"),
}


def damage(job, kind):
    path = job / "results.json"
    text, _ = DAMAGE[kind]
    if text is None:
        record = json.loads(path.read_text())
        if kind == "a percentage":
            record.update(test_top1=57.3, test_top1_multiview=57.3)
        else:
            record["test_top1"] = record["test_top1_multiview"] = "0.6"
        text = json.dumps(record)
    path.write_text(text)


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_a_damaged_results_file_is_listed_with_file_and_reason_and_the_report_goes_on(tmp_path, capsys, kind):
    sweep = tmp_path / "sweep"
    write_job(sweep, 0, "x3d_m", 8, right=120)
    damaged = write_job(sweep, 1, "slowfast", 8, right=130)
    damage(damaged, kind)
    assert main([str(sweep), *FAST]) == 0
    markdown = (sweep / "report.md").read_text()
    failures = markdown.split("## Failed or unfinished runs")[1]
    assert damaged.name in failures and "unreadable" in failures
    assert str(damaged / "results.json") in failures and DAMAGE[kind][1] in failures
    tables = markdown.split("## Failed or unfinished runs")[0]
    row = next(line for line in tables.splitlines() if line.startswith(f"| {damaged.name} |"))
    assert row.split("|")[2].strip() == "unreadable" and not "".join(row.split("|")[3:]).strip(), "no value shown"
    assert "| slowfast-8f |" not in tables and "5730" not in markdown
    assert "| 0-x3d_m-8f-split1 | completed | 60.0 |" in tables  # the sound run is reported (120 of 200 right)
