"""One session on a GPU machine: the GPU bench and a short real-size training with and without the speed options.

    make bench-gpu                                  # installs .whl/ into /tmp/site, then runs this
    python -m ar_experiments.bench.gpu_session      # the same, with the packages already importable
    python -m ar_experiments.bench.gpu_session --device cpu --quick   # every step, shrunk, on the CPU

Meant for a machine lent for minutes (about 8, installs included), without
network: it writes every figure into one folder (env OUT if set, else
gpu-results/) as it goes, so a session cut short still leaves what it measured:

- environment.json: Python, torch, CUDA, cuDNN, the GPU, known torch/cuDNN problems, nvidia-smi;
- bench.json, bench.txt, bench.log: `python -m ar_experiments.bench --device cuda --parts train`
  (both models, the training variants against the seed's setting, validation and the 10x3-view test
  through the trainer, the projected grid hours), within a time budget;
- train/<name>/: results.json, metrics.csv and train.log of `python -m ar_experiments.train` runs on
  generated 320x240 videos (UCF101 layout, 224 crops, X3D-M 16 frames) with the seed's setting and
  with the fastest setting the bench found, so their accuracies can be compared;
- summary.md: all of it in one page.

Checkpoints and videos stay in a temporary folder; nothing here needs hydra-core,
pytorchvideo or PyAV beyond what .whl/ installs.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# the training comparison: generated motion classes (learnable from scratch) at UCF101's frame size
REAL_SIZE_DATA = [
    "data=synthetic",
    "data.synthetic.width=320",
    "data.synthetic.height=240",
    "data.synthetic.clips_per_group=[2,2]",  # 6 classes x 25 groups x 2 clips: 300 videos, 180 for training
    "data.short_side=256",
    "data.crop_size=224",
    "data.num_workers=${ar.loader_workers:}",
    "model=x3d_m",
    "frames=16",
]
QUICK_DATA = [
    "data=synthetic",
    "data.synthetic.classes=[MoveRight,MoveLeft,RotateClockwise]",
    "data.synthetic.clips_per_group=[1,1]",
    "trainer.limit_train_batches=2",
    "trainer.limit_val_batches=1",
    "model=x3d_m",
]
QUICK_BENCH = ["data.crop_size=32", "data.short_side=36", "frames=4", "data.batch_size=2", "data.num_workers=1"]
QUICK_BENCH += ["test.temporal_views=2", "test.spatial_crops=1"]


class Session:
    """The clock and the output folder of one session."""

    def __init__(self, out: Path, seconds: float):
        self.out, self.started, self.seconds = out, time.monotonic(), seconds
        out.mkdir(parents=True, exist_ok=True)
        self.log = (out / "session.log").open("a")

    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.started)

    def note(self, text: str) -> None:
        line = f"[{time.monotonic() - self.started:6.0f} s] {text}"
        print(line, flush=True)
        self.log.write(line + "\n")
        self.log.flush()

    def run(self, name: str, command: list[str], timeout: float, log: Path, cwd: Path = REPO) -> int | None:
        """Run `command`, its output into `log`; None when it ran out of time."""
        self.note(f"{name}: {' '.join(command)} (up to {timeout:.0f} s)")
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as output:
            try:
                code = subprocess.run(command, cwd=cwd, stdout=output, stderr=subprocess.STDOUT, timeout=timeout)
            except subprocess.TimeoutExpired:
                self.note(f"{name}: stopped after {timeout:.0f} s")
                return None
        self.note(f"{name}: exit {code.returncode}")
        return code.returncode


def environment(device: str) -> dict:
    import platform

    import torch

    from ..training.cudnn_check import runtime_problems, runtime_versions

    info = {"python": platform.python_version(), **runtime_versions(), "cpus": os.cpu_count()}
    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        info.update(gpu=properties.name, gpu_memory_gib=round(properties.total_memory / 2**30, 1))
    info["known_problems"] = runtime_problems(None, device)
    try:
        smi = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=20)
        info["nvidia_smi"] = smi.stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        info["nvidia_smi"] = None
    return info


def prepare_dataset(overrides: list[str]) -> subprocess.Popen:
    """Generate the training comparison's dataset in the background (one core; minutes at 320x240)."""
    code = (
        "import sys\n"
        "from hydra.utils import instantiate\n"
        "from ar_experiments.bench.training import compose_config\n"
        "instantiate(compose_config(sys.argv[1:]).data).prepare_data()\n"
    )
    return subprocess.Popen([sys.executable, "-c", code, *overrides], cwd=REPO)


def fastest_setting(bench_json: Path, model: str) -> tuple[str, list[str]] | None:
    """(name, overrides) of the measured variant with the most fit-loop clips/s for `model`."""
    try:
        rows = json.loads(bench_json.read_text())["context"]["train"]["variants"]
    except (OSError, KeyError, ValueError):
        return None
    measured = [r for r in rows if r["model"] == model and "loop_clips_per_s" in r]
    if not measured:
        return None
    best = max(measured, key=lambda r: r["loop_clips_per_s"])
    return best["variant"], best["overrides"]


def epoch_rows(metrics_csv: Path) -> list[dict]:
    """Per epoch: train loss and top-1, validation top-1 (the last value logged for each)."""
    if not metrics_csv.is_file():
        return []
    epochs: dict[int, dict] = {}
    with metrics_csv.open() as handle:
        for row in csv.DictReader(handle):
            if not row.get("epoch"):
                continue
            entry = epochs.setdefault(int(float(row["epoch"])), {"epoch": int(float(row["epoch"]))})
            for key in ("train/loss", "train/top1", "val/top1", "val/loss"):
                if row.get(key):
                    entry[key] = round(float(row[key]), 4)
    return [epochs[k] for k in sorted(epochs) if len(epochs[k]) > 1]  # the test's row has no per-epoch metric


def train_run(session: Session, name: str, base: list[str], setting: list[str], runs: Path, timeout: float) -> dict:
    """One `python -m ar_experiments.train` run of `base` + `setting`; what it leaves, kept in the output folder."""
    run_dir = runs / name
    command = [sys.executable, "-m", "ar_experiments.train", *base, *setting, f"hydra.run.dir={run_dir}"]
    started = time.monotonic()
    code = session.run(f"train {name}", command, timeout, session.out / "train" / f"{name}.log")
    kept = session.out / "train" / name
    kept.mkdir(parents=True, exist_ok=True)
    for source in (run_dir / "results.json", run_dir / "csv" / "metrics.csv", run_dir / "train.log"):
        if source.is_file():
            shutil.copy(source, kept / source.name)
    record = json.loads((kept / "results.json").read_text()) if (kept / "results.json").is_file() else {}
    keys = ("status", "epochs", "best_val_acc", "test_top1", "test_top1_multiview", "train_clips_per_s", "error")
    return {
        "name": name,
        "setting": setting,
        "exit": code,
        "wall_s": round(time.monotonic() - started, 1),
        **{key: round(v, 4) if isinstance(v := record.get(key), float) else v for key in keys},
        "per_epoch": epoch_rows(kept / "metrics.csv"),
    }


def summary(session: Session, info: dict, trainings: list[dict]) -> None:
    lines = ["# GPU session", "", f"{info.get('gpu', 'no GPU')}, torch {info['torch']}, CUDA {info['cuda']}"]
    lines[-1] += f", cuDNN {info['cudnn']}, Python {info['python']}"
    lines += [f"- WARNING: {problem}" for problem in info["known_problems"]]
    bench = json.loads((session.out / "bench.json").read_text()) if (session.out / "bench.json").is_file() else {}
    lines += ["", "## bench", "", "```", *(bench.get("table") or ["(no bench.json)"]), "```"]
    lines += ["", "## training runs (same seed; accuracy on the generated test split)", ""]
    lines += ["| run | exit | epochs | best val top-1 | test top-1 | multi-view | train clips/s | wall s | error |"]
    lines += ["| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for run in trainings:
        cells = [run["name"], run["exit"], run["epochs"], run["best_val_acc"], run["test_top1"]]
        cells += [run["test_top1_multiview"], run["train_clips_per_s"], run["wall_s"], run["error"] or ""]
        lines.append("| " + " | ".join("" if c is None else str(c) for c in cells) + " |")
    for run in trainings:
        lines += ["", f"{run['name']} ({' '.join(run['setting']) or 'the seed setting'}), per epoch:"]
        lines += [f"    {row}" for row in run["per_epoch"]]
    (session.out / "summary.md").write_text("\n".join(lines) + "\n")
    (session.out / "training.json").write_text(json.dumps(trainings, indent=2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ar_experiments.bench.gpu_session", description=__doc__)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks every step runs (for the CPU)")
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("SESSION_SECONDS", 420)))
    parser.add_argument("--epochs", type=int, default=int(os.environ.get("EPOCHS", 6)))
    parser.add_argument("--variants", default=os.environ.get("VARIANTS"), help="the bench's --variants")
    args = parser.parse_args(argv)
    out = Path(os.environ.get("OUT") or REPO / "gpu-results")
    session = Session(out, args.seconds)
    os.environ.setdefault("WANDB_MODE", "disabled")
    info = environment(args.device)
    (out / "environment.json").write_text(json.dumps(info, indent=2))
    session.note(f"{info.get('gpu', 'no GPU')}, torch {info['torch']}, cuDNN {info['cudnn']}; output in {out}")
    for problem in info["known_problems"]:
        session.note(f"WARNING: {problem}")
    scratch = Path(tempfile.mkdtemp(prefix="ar-gpu-session-"))
    common = [f"paths.cache_dir={scratch / 'cache'}", "logger=csv"]
    data = [*common, *(QUICK_DATA if args.quick else REAL_SIZE_DATA)]
    generating = prepare_dataset(data)

    bench = [sys.executable, "-m", "ar_experiments.bench", "--device", args.device, "--parts", "train", "--layout"]
    bench += ["--output", str(out / "bench.json")]
    if args.variants:
        bench += ["--variants", args.variants]
    if args.quick:
        bench += ["--quick", "--models", "x3d_m", *QUICK_BENCH]
    # the bench stops starting measurements when a third of the session is left for training
    bench += ["--time-budget", str(max(0.0, session.left() * 0.55))]
    session.run("bench", bench, max(10.0, session.left() - 150), out / "bench.log")
    if (out / "bench.json").is_file():  # complete, or the figures measured before the time ran out
        (out / "bench.txt").write_text("\n".join(json.loads((out / "bench.json").read_text())["table"]) + "\n")

    try:
        generating.wait(timeout=max(1.0, session.left() - 60))
    except subprocess.TimeoutExpired:
        generating.kill()
        session.note("dataset generation did not finish in time; no training runs")
    trainings = []
    if generating.returncode == 0:
        device = ["trainer=gpu"] if args.device == "cuda" else []
        epochs = [f"trainer.max_epochs={1 if args.quick else args.epochs}"]
        runs = scratch / "runs"
        fastest = fastest_setting(out / "bench.json", "x3d_m")
        plans = [("seed", [])]
        if fastest and fastest[0] != "seed":
            plans.append((fastest[0], fastest[1]))
        for number, (name, extra) in enumerate(plans):
            share = session.left() / (len(plans) - number)  # what is left, shared by the runs still to go
            if share < 30:
                session.note(f"train {name}: skipped, {session.left():.0f} s left")
                continue
            trainings.append(train_run(session, name, [*data, *device, *epochs], extra, runs, share - 5))
            summary(session, info, trainings)
    summary(session, info, trainings)
    shutil.rmtree(scratch, ignore_errors=True)
    session.note(f"done; see {out / 'summary.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
