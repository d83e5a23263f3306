"""Turn a sweep folder into report.md, report.csv, comparisons.csv and PNG plots, written into that folder.

    python -m ar_experiments.report multirun/2025-01-31/12-00-00
    python -m ar_experiments.report --latest     # the newest multirun/<date>/<time> under the current folder
    python -m ar_experiments.report --progress multirun/2025-01-31/12-00-00   # how far a (running) sweep has got

Works on a sweep that is still running or partly failed: runs without results.json, or whose status is
not completed, are listed with their error and left out of the statistics.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .build import analyse, write_report
from .stats import DEFAULT_RESAMPLES
from .sweep_results import Sweep, latest_sweep

MIN_RESAMPLES = 1000


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
    try:
        folder = latest_sweep(Path.cwd()) if args.latest else args.sweep
    except FileNotFoundError as err:
        parser.error(str(err))
    if args.progress:
        from ..sweeps.job_status import PROGRESS_FILE, read_json
        from .progress import progress_text

        progress = read_json(folder / PROGRESS_FILE)
        if progress is None:
            parser.error(f"no {PROGRESS_FILE} in {folder}; it appears when a sweep starts")
        print(progress_text(progress))
        return 0
    if args.resamples < MIN_RESAMPLES:
        parser.error(f"--resamples {args.resamples} is too few for a 95% interval; use at least {MIN_RESAMPLES}")
    try:
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
