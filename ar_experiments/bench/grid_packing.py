"""The GPU goal of sweep placement: the `experiment=grid` sweep one job at a time vs packed on the GPUs.

    python -m ar_experiments.bench.grid_packing                    # on a GPU machine: both, timed
    python -m ar_experiments.bench.grid_packing --jobs-per-gpu 6 --overrides trainer.max_epochs=5
    python -m ar_experiments.bench.grid_packing --dry-run          # the two commands, nothing run

What it runs and writes: docs/sweeps.md ("Every GPU of one machine"). Both sweeps use a dataset
generated beforehand, so neither pays for it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from tabulate import tabulate

from ..config.resolvers import REPO_DIR
from ..report.sweep_results import Sweep
from .multirun import prepare_dataset, train_command

GRID = ["-m", "experiment=grid", "trainer=gpu", "logger=csv"]
JOB_KEYS = ("status", "device", "train_seconds", "wall_seconds", "train_clips_per_s", "test_top1_multiview")
TIMEOUT_S = 4 * 3600  # per sweep


def run_sweep(arguments: list[str], sweep: Path, log: Path) -> dict:
    """Run one sweep into `sweep`, its console into `log`; wall seconds and what its jobs recorded."""
    started = time.perf_counter()
    with log.open("w") as console:
        code = train_command(arguments, TIMEOUT_S, stdout=console, stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - started
    done = [job for job in Sweep.read(sweep).jobs if job.results] if sweep.is_dir() else []
    jobs = [{"job": job.folder.name, **{key: job.results.get(key) for key in JOB_KEYS}} for job in done]
    return {
        "command": ["python", "-m", "ar_experiments.train", *arguments],
        "returncode": code,
        "wall_seconds": round(wall, 1),
        "completed": sum(job["status"] == "completed" for job in jobs),
        "jobs": jobs,
    }


def markdown(result: dict) -> str:
    rows = []
    for name, sweep in result["sweeps"].items():
        rates = [job["train_clips_per_s"] for job in sweep["jobs"] if job.get("train_clips_per_s")]
        mean = f"{sum(rates) / len(rates):.0f}" if rates else ""
        rows.append((name.replace("_", " "), sweep["completed"], f"{sweep['wall_seconds'] / 60:.1f} min", mean))
    headers = ("sweep", "jobs completed", "wall time", "mean clips/s per job")
    gpus = f"{len(result['gpus'])} x {', '.join(sorted(set(result['gpus'])))}"
    text = f"Measured {result['date']} on {gpus}, jobs_per_gpu={result['jobs_per_gpu']}:\n\n"
    text += tabulate(rows, headers, tablefmt="github", disable_numparse=True)
    if result.get("speedup"):
        text += f"\n\nPacked is {result['speedup']:.2f}x faster (wall time, one at a time / packed)."
    return text + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ar_experiments.bench.grid_packing", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--jobs-per-gpu", type=int, default=6, help="jobs packed on each GPU (default 6)")
    parser.add_argument("--gpus", type=int, default=None, help="GPUs to count on (default: those CUDA sees)")
    parser.add_argument("--overrides", nargs="*", default=[], help="appended to both commands")
    parser.add_argument("--dry-run", action="store_true", help="print the commands and exit")
    args = parser.parse_args(argv)
    import torch

    gpus = torch.cuda.device_count() if args.gpus is None else args.gpus
    sweep_root = REPO_DIR / "multirun" / "bench-packing" / datetime.now(timezone.utc).strftime("%Y-%m-%d_%H-%M-%S")
    k = args.jobs_per_gpu
    packed = ["hydra/launcher=joblib", f"hydra.launcher.n_jobs={max(1, gpus) * k}", f"jobs_per_gpu={k}"]
    planned = {
        name: [*GRID, *launcher, f"hydra.sweep.dir={sweep_root / name}", *args.overrides]
        for name, launcher in (("one_at_a_time", ["hydra/launcher=basic"]), ("packed", packed))
    }
    if args.dry_run:
        for arguments in planned.values():
            print(" ".join(["python", "-m", "ar_experiments.train", *arguments]))
        return 0
    if gpus < 1:
        parser.error("no GPU visible: this measures GPU placement (use --dry-run to see the commands)")
    out = Path(os.environ.get("OUT") or REPO_DIR / "bench-results" / "packing")
    out.mkdir(parents=True, exist_ok=True)
    prepare_dataset(args.overrides)  # the grid's data: every split and frame count reads it
    names = [torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count())]
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "gpus": names}
    result |= {"torch": torch.__version__, "cuda": torch.version.cuda, "jobs_per_gpu": args.jobs_per_gpu}
    result["sweeps"] = {}
    for name, arguments in planned.items():
        print(f"{name}: {' '.join(arguments)}", flush=True)
        result["sweeps"][name] = run_sweep(arguments, sweep_root / name, out / f"{name}.log")
        print(f"{name}: {result['sweeps'][name]['wall_seconds']:.0f} s", flush=True)
    sweeps = result["sweeps"]
    result["speedup"] = round(sweeps["one_at_a_time"]["wall_seconds"] / sweeps["packed"]["wall_seconds"], 2)
    (out / "packing.json").write_text(json.dumps(result, indent=2))
    (out / "packing.md").write_text(markdown(result))
    print(markdown(result))
    return 0 if all(sweep["returncode"] == 0 for sweep in sweeps.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
