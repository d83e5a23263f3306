"""python -m ar_experiments.bench: measure, print a table, write bench.json."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from .figures import GOALS, Measurement, figure_entry, table
from .plans import (
    DEFAULT_VARIANTS,
    FULL,
    GPU_ROUNDS,
    GPU_STEPS,
    GPU_WARMUP,
    PARTS,
    QUICK,
    REAL_SIZE_FRAMES,
    SEED,
    TINY_SYNTHETIC,
    VARIANTS,
    Plan,
    pick,
)
from .videos import ucf101_layout, write_videos


def _names(kind: str, allowed) -> Callable[[str], list[str]]:
    """An argparse type: comma-separated names, each one of `allowed`."""

    def parse(text: str) -> list[str]:
        names = [name.strip() for name in text.split(",") if name.strip()]
        if unknown := sorted(set(names) - set(allowed)):
            raise argparse.ArgumentTypeError(f"unknown {kind}(s) {unknown}; choose from {','.join(allowed)}")
        return names

    return parse


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ar_experiments.bench",
        description="Throughput and overhead figures, each a ratio against a baseline with its goal; "
        "prints a table and writes bench.json. See docs/benchmarks.md.",
    )
    add = parser.add_argument
    add("--output", type=Path, default=Path("bench.json"), help="where to write the figures (default: ./bench.json)")
    add(
        "--parts", type=_names("part", PARTS), default=list(PARTS), help=f"a subset of {','.join(PARTS)} (default: all)"
    )
    add("--device", choices=("cpu", "cuda"), default="cpu", help="where the training part runs (default: cpu)")
    add(
        "--quick",
        action="store_true",
        help="tiny videos, one or two repeats: checks every part runs, figures mean nothing",
    )
    add(
        "--models",
        type=_names("model", REAL_SIZE_FRAMES),
        help="comma-separated models for the training part (default: x3d_m,slowfast at real size, x3d_m otherwise)",
    )
    add(
        "--variants",
        type=_names("variant", VARIANTS),
        help="comma-separated training settings to compare with the seed's (default: "
        f"{','.join(DEFAULT_VARIANTS['cpu'])} on cpu, {','.join(DEFAULT_VARIANTS['cuda'])} on cuda; "
        f"all: {','.join(VARIANTS)}); Hydra overrides measure any other setting",
    )
    add(
        "--layout",
        action="store_true",
        help="train on a UCF101-layout folder of generated 320x240 videos (experiment=ucf101, X3D-M 16 frames, "
        "SlowFast 32 frames, 224 crops) instead of the synthetic dataset; always with --device cuda",
    )
    add(
        "--cache-dir",
        type=Path,
        help="synthetic dataset cache of the train and multirun parts (default: paths.cache_dir)",
    )
    add("overrides", nargs="*", help="Hydra overrides for the training part, e.g. data.batch_size=16")
    args = parser.parse_args(argv)
    args.layout = args.layout or args.device == "cuda"
    args.models = args.models or (list(REAL_SIZE_FRAMES) if args.layout else ["x3d_m"])
    default = DEFAULT_VARIANTS["quick" if args.quick and args.device == "cpu" else args.device]
    args.variants = pick(args.variants or default)
    return args


def data_figures(plan: Plan, args: argparse.Namespace, workdir: Path) -> tuple[dict[str, list[Measurement]], dict]:
    from .data_path import ClipSetting, measure_data_path

    videos = write_videos(workdir / "videos", plan.videos, plan.shape)
    figures: dict[str, list[Measurement]] = {"data_vs_pytorchvideo": [], "data_vs_decode_floor": []}
    rates_by_setting = {}
    for crop, short_side in plan.crops:
        setting = ClipSetting(crop, short_side)
        timings = measure_data_path(videos, setting, plan.shape.fps, plan.data_repeats, plan.clips_per_repeat)
        rates = {f"{name}_clips_per_s": round(pooled.rate, 2) for name, pooled in timings.items()}
        rates_by_setting[setting.label] = rates
        for figure, baseline in (("data_vs_pytorchvideo", "pytorchvideo"), ("data_vs_decode_floor", "decode_floor")):
            ratio = Measurement.ratio(
                timings["project"], timings[baseline], setting.label, detail=rates, goal=GOALS[figure]
            )
            figures[figure].append(ratio)
    return figures, {"videos": asdict(plan.shape) | {"count": plan.videos}, "clips_per_s": rates_by_setting}


def training_figures(plan: Plan, args: argparse.Namespace, workdir: Path) -> tuple[dict[str, list[Measurement]], dict]:
    import torch

    from .training import measure_training
    from .training_figures import training_figures as figures_of

    # a fresh Inductor cache: a compiled variant's first compile is cold, as a sweep's first job's is
    base = [f"paths.output_dir={workdir / 'train'}", f"model.compile_cache_dir={workdir / 'inductor'}"]
    rounds, steps, warmup = plan.train_repeats, plan.train_steps, plan.train_warmup
    if args.layout:
        videos = write_videos(workdir / "videos", plan.videos, plan.shape)
        base += ["experiment=ucf101", f"data.root={ucf101_layout(workdir / 'ucf101', videos)}"]
    else:
        base += _dataset_overrides(plan, args)
    if args.device == "cuda":
        base.append("trainer=gpu")
        if not args.quick:
            rounds, steps, warmup = GPU_ROUNDS, GPU_STEPS, GPU_WARMUP
    frames = {name: [f"frames={REAL_SIZE_FRAMES[name]}"] if args.layout else [] for name in args.models}
    models = {name: [*base, f"model={name}", *frames[name], *args.overrides] for name in args.models}
    device = torch.device(args.device)
    on_gpu = args.device == "cuda"

    results = measure_training(models, args.variants, rounds, steps, warmup, device)
    context = {
        "overrides_by_model": models,
        "variants": args.variants,
        "rounds": rounds,
        "steps": steps,
        "warmup": warmup,
        "errors": {f"{r.model} {r.variant}": r.error for r in results if r.error},
    }
    return figures_of(results, on_gpu), context


def multirun_figures(plan: Plan, args: argparse.Namespace, workdir: Path) -> tuple[dict[str, list[Measurement]], dict]:
    from .multirun import run_multirun
    from .training import prepare_dataset

    dataset = _dataset_overrides(plan, args)
    prepare_dataset([f"paths.output_dir={workdir}", *dataset])
    fresh_startup, records = run_multirun(workdir / "sweep", plan.multirun_jobs, dataset)
    setting = f"{plan.multirun_jobs} jobs, default loggers"
    peaks = [r["peak_rss_mb"] for r in records]
    warm = [r["startup_s"] for r in records[1:]]
    detail = {
        "startup_s_fresh_process": round(fresh_startup, 2),
        "startup_s_by_job": [round(r["startup_s"], 2) for r in records],
        "peak_rss_mb_by_job": [round(p) for p in peaks],
    }
    figures = {
        "startup_s": [
            Measurement(
                fresh_startup, [fresh_startup], "first job, fresh process, imports included", goal=GOALS["startup_s"]
            )
        ],
        "startup_s_warm": [Measurement(sum(warm) / len(warm), warm, f"jobs 2-{plan.multirun_jobs}, mean")],
        "rss_growth": [Measurement(peaks[-1] / peaks[0], [peaks[-1] / peaks[0]], setting, detail, GOALS["rss_growth"])],
    }
    return figures, detail


def _dataset_overrides(plan: Plan, args: argparse.Namespace) -> list[str]:
    overrides = ["experiment=demo"] + ([f"paths.cache_dir={args.cache_dir.resolve()}"] if args.cache_dir else [])
    return overrides + (TINY_SYNTHETIC if plan.tiny_synthetic else [])


def machine(device: str) -> dict:
    import av
    import torch

    from ..training.cudnn_check import runtime_problems, runtime_versions

    versions = runtime_versions()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "torch": versions["torch"],
        "cuda": versions["cuda"],
        "cudnn": versions["cudnn"],
        "torch_threads": torch.get_num_threads(),
        "av": av.__version__,
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        # the bench's variants run in bf16 and in float32: every known problem of reduced precision applies
        "warnings": runtime_problems(None, device),
    }


def write_output(path: Path, figures: dict[str, list[Measurement]], context: dict, info: dict, seconds: float) -> str:
    """bench.json (atomically) and the printed text: warnings, the figures' table, what failed."""
    from ..safety.atomic import atomic_write_json

    blocks = [f"WARNING: {warning}" for warning in info["warnings"]]
    if figures:
        blocks.append(table(figures))
    text = "\n\n".join(blocks)
    for name, error in context.get("train", {}).get("errors", {}).items():
        text += f"\n{name} failed: {error}"
    atomic_write_json(
        path,
        {
            "figures": {name: figure_entry(measurements) for name, measurements in figures.items()},
            "table": text.splitlines(),
            "context": context,
            "machine": info,
            "seconds": round(seconds, 1),
        },
    )
    return text


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device == "cuda":
        from .training import require_cuda

        require_cuda()
    plan = QUICK if args.quick else FULL
    started = time.perf_counter()
    info = machine(args.device)
    for warning in info["warnings"]:
        print(f"bench: WARNING: {warning}", file=sys.stderr, flush=True)
    figures: dict[str, list[Measurement]] = {}
    context: dict = {"plan": "quick" if args.quick else "full", "device": args.device}
    measure = {"data": data_figures, "train": training_figures, "multirun": multirun_figures}
    with tempfile.TemporaryDirectory(prefix="ar-bench-") as tmp:
        for part in args.parts:
            print(f"bench: {part} ...", file=sys.stderr, flush=True)
            workdir = Path(tmp) / part
            part_started = time.perf_counter()
            part_figures, part_context = measure[part](plan, args, workdir)
            figures.update(part_figures)
            context[part] = {**part_context, "seconds": round(time.perf_counter() - part_started, 1)}
            write_output(args.output, figures, context, info, time.perf_counter() - started)
    text = write_output(args.output, figures, context, info, time.perf_counter() - started)
    print(text)
    print(f"\nwrote {args.output} ({time.perf_counter() - started:.0f} s)")
    errors = context.get("train", {}).get("errors", {})
    return 1 if any(name.endswith(f" {SEED}") for name in errors) else 0


if __name__ == "__main__":
    sys.exit(main())
