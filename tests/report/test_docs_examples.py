"""Every line of report output quoted in README.md and docs/report.md is what the report writes.

The quoted lines come from one example sweep, built here from stated counts: slowfast-16f and x3d_m-16f
on UCF101's three splits (3783, 3734 and 3696 test videos), with x3d_m-16f leaving out two unreadable
test videos of split 2. `report.analyse` turns it into report.md, as `python -m ar_experiments.report`
would, and each quoted line must appear there and in the docs, character for character.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ar_experiments.report.build import analyse
from ar_experiments.report.formatting import format_interval
from ar_experiments.report.stats import accuracy_with_ci
from ar_experiments.report.sweep_results import Sweep
from tests.conftest import REPO

README = REPO / "README.md"
REPORT_DOC = REPO / "docs" / "report.md"
CLASSES = 101

# split -> (videos both runs got right, only slowfast-16f right, only x3d_m-16f right, neither right)
OUTCOMES = {1: (3420, 131, 109, 123), 2: (3392, 142, 97, 103), 3: (3370, 92, 118, 116)}
SKIPPED_BY_X3D = {2: 2}  # x3d_m-16f could not read two split-2 videos (two that slowfast-16f got right)


def write_example_job(sweep: Path, number: int, model: str, split: int, correct: np.ndarray, skipped: int) -> None:
    """A completed job whose test_predictions.csv holds the videos it evaluated, right where `correct` says."""
    job = sweep / f"{number}-{model}-16f-split{split}"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"model={model}", "frames=16", f"split={split}"]))
    videos = np.arange(correct.size + skipped)[skipped:]  # the skipped ones are the split's first videos
    labels = videos % CLASSES
    pd.DataFrame(
        {
            "video": [f"v_{label:03d}_{video:04d}.avi" for label, video in zip(labels, videos)],
            "label": labels,
            "predicted": np.where(correct, labels, (labels + 1) % CLASSES),
        }
    ).to_csv(job / "test_predictions.csv", index=False)
    accuracy = float(correct.mean())
    record = {
        "status": "completed",
        "model": model,
        "frames": 16,
        "split": split,
        "seed": 0,
        "test_top1": accuracy,
        "test_top1_multiview": accuracy,
        "test_videos": int(correct.size),
        "skipped_test_videos": skipped,
    }
    (job / "results.json").write_text(json.dumps(record))


@pytest.fixture(scope="module")
def example_report(tmp_path_factory) -> str:
    sweep = tmp_path_factory.mktemp("multirun") / "2026-12-04" / "09-00-00"
    number = 0
    for split, (both, only_slowfast, only_x3d, neither) in OUTCOMES.items():
        slowfast = np.repeat([True, True, False, False], [both, only_slowfast, only_x3d, neither])
        x3d = np.repeat([True, False, True, False], [both, only_slowfast, only_x3d, neither])
        skipped = SKIPPED_BY_X3D.get(split, 0)
        write_example_job(sweep, number, "slowfast", split, slowfast, 0)
        write_example_job(sweep, number + 1, "x3d_m", split, x3d[skipped:], skipped)
        number += 2
    return analyse(Sweep.read(sweep)).markdown()


def report_line(markdown: str, start: str) -> str:
    """The one line of report.md that starts with `start`, without its list marker."""
    lines = [line.removeprefix("- ") for line in markdown.splitlines() if line.removeprefix("- ").startswith(start)]
    assert len(lines) == 1, f"report.md has {len(lines)} lines starting {start!r}"
    return lines[0]


def run_table_cells(markdown: str, header: str) -> dict[str, str]:
    """run -> its cell in the column `header` of report.md's run table."""
    rows = [line.split(" | ") for line in markdown.split("## Runs")[1].split("## ")[0].splitlines() if "|" in line]
    column = rows[0].index(header)
    return {row[0].removeprefix("| "): row[column] for row in rows[2:]}


# (doc, start of the report line it quotes): each doc must hold that line, alone on its line
QUOTED = [
    (README, "slowfast-16f vs x3d_m-16f, split 1,"),
    (REPORT_DOC, "slowfast-16f vs x3d_m-16f, split 1,"),
    (REPORT_DOC, "Runs that evaluated different test videos"),
    (REPORT_DOC, "slowfast-16f vs x3d_m-16f over splits"),
]


@pytest.mark.parametrize(("doc", "start"), QUOTED, ids=[f"{doc.name}: {start}" for doc, start in QUOTED])
def test_docs_quote_the_lines_the_report_writes(example_report, doc, start):
    assert report_line(example_report, start) in doc.read_text().splitlines()


def test_the_example_is_realistic_and_consistent(example_report):
    # what the docs say of it: split 1 is not significant, and x3d_m-16f left out two split-2 videos
    assert report_line(example_report, "slowfast-16f vs x3d_m-16f, split 1,").endswith(
        "(131 vs 109 discordant videos): not significant at 0.05"
    )
    assert "split 2, 3732 test videos" in report_line(example_report, "slowfast-16f vs x3d_m-16f, split 2,")


# A line of report output: a comparison sentence (its verdict or its McNemar/t-test p-value) or the note.
REPORT_OUTPUT = re.compile(
    r"McNemar p [=<]|t-test p [=<]|\d+ vs \d+ discordant|\d+ test videos: [+-]|mean difference [+-]|: \d+ shared \("
)


@pytest.mark.parametrize("doc", [README, REPORT_DOC], ids=lambda doc: doc.name)
def test_every_quoted_report_line_is_one_the_report_writes(example_report, doc):
    written = {line.removeprefix("- ") for line in example_report.splitlines()}
    quoted = [line for line in doc.read_text().splitlines() if REPORT_OUTPUT.search(line)]
    assert quoted, f"{doc.name} quotes no report line; the patterns here are out of date"
    stale = [line for line in quoted if line not in written]
    assert not stale, f"{doc.name} quotes report lines the example sweep does not produce: {stale}"


def test_run_table_cells_quoted_in_the_report_doc(example_report):
    videos = run_table_cells(example_report, "test videos")
    assert videos["3-x3d_m-16f-split2"] == "3732 (2 skipped)" and videos["2-slowfast-16f-split2"] == "3734"
    sentence = (
        f"x3d_m-16f on split 2 shows `{videos['3-x3d_m-16f-split2']}` and "
        f"slowfast-16f on split 2 `{videos['2-slowfast-16f-split2']}`"
    )
    assert sentence in " ".join(REPORT_DOC.read_text().split())


def test_intervals_at_100_percent_quoted_in_the_report_doc():
    every_video, synthetic_split = (format_interval(accuracy_with_ci(np.ones(n, dtype=bool))) for n in (3783, 235))
    sentence = f"All 3783 videos of UCF101's split 1 right gives `{every_video}`; 235 of 235 gives `{synthetic_split}`."
    assert sentence in " ".join(REPORT_DOC.read_text().split())
