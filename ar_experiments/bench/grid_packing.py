"""The GPU goal of sweep placement: the `experiment=grid` sweep one job at a time vs packed on the GPUs.

    python -m ar_experiments.bench.grid_packing                    # on a GPU machine: both, timed
    python -m ar_experiments.bench.grid_packing --jobs-per-gpu 6 --only packed
    python -m ar_experiments.bench.grid_packing --dry-run          # the two commands, nothing run
    make bench-packing                                             # the same as the first line

Runs the 18-job grid (X3D-M and SlowFast x 6/8/16 frames x splits 1-3, `trainer=gpu`) twice
through the real command line, each into its own sweep folder:

- one at a time: `hydra/launcher=basic`: every job alone on the first GPU;
- packed: `hydra/launcher=joblib hydra.launcher.n_jobs=G*k jobs_per_gpu=k`: k jobs on each of the
  G visible GPUs at once, each on its own GPU slot (ar_experiments/sweeps/gpu_placement.py).

The generated dataset is made once beforehand, so neither run pays for it. It writes into
$OUT (else bench-results/packing/): packing.json (wall seconds of each, the speed-up, per-job
train seconds, clips/s, devices and top-1, the GPU and the commands), packing.md (the same as a
table for docs/sweeps.md) and each command's console output. `--overrides` appends to both
commands, e.g. `trainer.max_epochs=5` to fit a short lease; the speed-up is then that of the
shorter jobs (start-up weighs more).
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

REPO = Path(__file__).resolve().parents[2]
GRID = ["-m", "experiment=grid", "trainer=gpu", "logger=csv"]


def commands(sweep_root: Path, gpus: int, jobs_per_gpu: int, overrides: list[str]) -> dict[str, list[str]]:
    """The two sweeps, as argument lists for `python -m ar_experiments.train`."""
    return {
        "one_at_a_time": [*GRID, "hydra/launcher=basic", f"hydra.sweep.dir={sweep_root / 'one_at_a_time'}", *overrides],
        "packed": [
            *GRID,
            "hydra/launcher=joblib",
            f"hydra.launcher.n_jobs={gpus * jobs_per_gpu}",
            f"jobs_per_gpu={jobs_per_gpu}",
            f"hydra.sweep.dir={sweep_root / 'packed'}",
            *overrides,
        ],
    }


def gpu_info() -> dict:
    import torch

    if not torch.cuda.is_available():
        return {"gpus": 0}
    names = [torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count())]
    return {"gpus": len(names), "gpu_names": names, "torch": torch.__version__, "cuda": torch.version.cuda}


def prepare_data(overrides: list[str]) -> None:
    """Generate the grid's dataset once (every split and frame count reads the same videos)."""
    code = (
        "import sys\n"
        "from hydra.utils import instantiate\n"
        "from ar_experiments.bench.training import compose_config\n"
        "instantiate(compose_config(sys.argv[1:]).data).prepare_data()\n"
    )
    subprocess.run([sys.executable, "-c", code, *overrides], cwd=REPO, check=True)


def run_sweep(name: str, arguments: list[str], out: Path, timeout_s: float) -> dict:
    """Run one sweep, its console into out/<name>.log; wall seconds and what its jobs recorded."""
    started = time.perf_counter()
    with (out / f"{name}.log").open("w") as log:
        code = subprocess.run(
            [sys.executable, "-m", "ar_experiments.train", *arguments],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=timeout_s,
            env={**os.environ, "WANDB_MODE": "disabled"},
        ).returncode
    wall = time.perf_counter() - started
    sweep = Path(next(arg.split("=", 1)[1] for arg in arguments if arg.startswith("hydra.sweep.dir=")))
    jobs = []
    for path in sorted(sweep.glob("*/results.json"), key=lambda p: int(p.parent.name.split("-", 1)[0])):
        record = json.loads(path.read_text())
        jobs.append(
            {
                "job": path.parent.name,
                "status": record.get("status"),
                "device": record.get("device"),
                "train_seconds": record.get("train_seconds"),
                "wall_seconds": record.get("wall_seconds"),
                "train_clips_per_s": record.get("train_clips_per_s"),
                "test_top1_multiview": record.get("test_top1_multiview"),
            }
        )
    progress = sweep / "progress.json"
    return {
        "command": ["python", "-m", "ar_experiments.train", *arguments],
        "returncode": code,
        "wall_seconds": round(wall, 1),
        "completed": sum(job["status"] == "completed" for job in jobs),
        "jobs": jobs,
        "progress": json.loads(progress.read_text()) if progress.is_file() else None,
    }


def markdown(result: dict) -> str:
    lines = [
        f"Measured {result['date']} on {result['gpu'].get('gpus', 0)} x "
        f"{', '.join(sorted(set(result['gpu'].get('gpu_names', ['no GPU']))))}, jobs_per_gpu={result['jobs_per_gpu']}:",
        "",
        "| sweep | jobs completed | wall time | mean clips/s per job |",
        "| --- | --- | --- | --- |",
    ]
    for name, sweep in result["sweeps"].items():
        rates = [job["train_clips_per_s"] for job in sweep["jobs"] if job.get("train_clips_per_s")]
        mean = f"{sum(rates) / len(rates):.0f}" if rates else ""
        lines.append(
            f"| {name.replace('_', ' ')} | {sweep['completed']} | {sweep['wall_seconds'] / 60:.1f} min | {mean} |"
        )
    if result.get("speedup"):
        lines += ["", f"Packed is {result['speedup']:.2f}x faster (wall time, one at a time / packed)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ar_experiments.bench.grid_packing", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--jobs-per-gpu", type=int, default=6, help="jobs packed on each GPU (default 6)")
    parser.add_argument("--gpus", type=int, default=None, help="GPUs to count on (default: those CUDA sees)")
    parser.add_argument("--only", choices=("one_at_a_time", "packed"), help="run one of the two sweeps")
    parser.add_argument("--overrides", nargs="*", default=[], help="appended to both commands")
    parser.add_argument("--timeout", type=float, default=4 * 3600, help="seconds per sweep")
    parser.add_argument("--dry-run", action="store_true", help="print the commands and exit")
    args = parser.parse_args(argv)
    out = Path(os.environ.get("OUT") or REPO / "bench-results" / "packing")
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d_%H-%M-%S")
    sweep_root = REPO / "multirun" / "bench-packing" / stamp
    gpus = args.gpus
    if gpus is None:
        from ..sweeps.gpu_slots import visible_gpus

        gpus = len(visible_gpus()) if args.dry_run else gpu_info()["gpus"]
    planned = commands(sweep_root, max(1, gpus), args.jobs_per_gpu, args.overrides)
    if args.only:
        planned = {args.only: planned[args.only]}
    if args.dry_run:
        for arguments in planned.values():
            print(" ".join(["python", "-m", "ar_experiments.train", *arguments]))
        return 0
    if gpus < 1:
        parser.error("no GPU visible: this measures GPU placement (use --dry-run to see the commands)")
    out.mkdir(parents=True, exist_ok=True)
    prepare_data(args.overrides)
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "gpu": gpu_info(),
        "jobs_per_gpu": args.jobs_per_gpu,
        "sweeps": {},
    }
    for name, arguments in planned.items():
        print(f"{name}: {' '.join(arguments)}", flush=True)
        result["sweeps"][name] = run_sweep(name, arguments, out, args.timeout)
        print(f"{name}: {result['sweeps'][name]['wall_seconds']:.0f} s", flush=True)
        (out / "packing.json").write_text(json.dumps(result, indent=2))  # a lease cut short keeps the first
    sweeps = result["sweeps"]
    if {"one_at_a_time", "packed"} <= set(sweeps) and sweeps["packed"]["wall_seconds"]:
        result["speedup"] = round(sweeps["one_at_a_time"]["wall_seconds"] / sweeps["packed"]["wall_seconds"], 2)
    (out / "packing.json").write_text(json.dumps(result, indent=2))
    (out / "packing.md").write_text(markdown(result))
    print(markdown(result))
    return 0 if all(sweep["returncode"] == 0 for sweep in sweeps.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
