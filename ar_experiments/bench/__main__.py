"""python -m ar_experiments.bench: measure, print a table, write bench.json.

The full run fits in 10 minutes on 2 cores; --quick (tiny videos and datasets, one or two repeats)
only checks that every part runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from .figures import GOALS, Measurement, figure_entry, table
from .training import DEFAULT_VARIANTS, SEED, VARIANTS
from .videos import QUICK_SHAPE, VideoShape, ucf101_layout, write_videos

PARTS = ("data", "train", "multirun")
REAL_SIZE_FRAMES = {"x3d_m": 16, "slowfast": 32}  # the models the training part measures, at real size
TINY_SYNTHETIC = ["data.synthetic.classes=[MoveRight,MoveLeft,RotateClockwise]", "data.synthetic.clips_per_group=[1,1]"]


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
    add("--parts", type=_names("part", PARTS), default=PARTS, help=f"a subset of {','.join(PARTS)} (default: all)")
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
    args.variants = {name: VARIANTS[name] for name in dict.fromkeys([SEED, *(args.variants or default)])}
    return args


def _videos(args: argparse.Namespace, folder: Path) -> tuple[list[Path], VideoShape]:
    shape = QUICK_SHAPE if args.quick else VideoShape()
    return write_videos(folder, 2 if args.quick else 4, shape), shape


def data_figures(args: argparse.Namespace, workdir: Path) -> tuple[dict[str, list[Measurement]], dict]:
    from .data_path import measure_data_path

    videos, shape = _videos(args, workdir / "videos")
    figures: dict[str, list[Measurement]] = {"data_vs_pytorchvideo": [], "data_vs_decode_floor": []}
    rates_by_setting = {}
    for crop, short_side in ((112, 128),) if args.quick else ((112, 128), (224, 256)):
        setting = f"crop {crop}"
        repeats, clips = (2, 2) if args.quick else (5, 16)
        timings = measure_data_path(videos, crop, short_side, shape.fps, repeats, clips)
        rates = {f"{name}_clips_per_s": round(pooled.rate, 2) for name, pooled in timings.items()}
        rates_by_setting[setting] = rates
        for figure, baseline in (("data_vs_pytorchvideo", "pytorchvideo"), ("data_vs_decode_floor", "decode_floor")):
            ratio = Measurement.ratio(timings["project"], timings[baseline], setting, detail=rates, goal=GOALS[figure])
            figures[figure].append(ratio)
    return figures, {"videos": {"count": len(videos), **vars(shape)}, "clips_per_s": rates_by_setting}


def training_figures(args: argparse.Namespace, workdir: Path) -> tuple[dict[str, list[Measurement]], dict]:
    import torch

    from .training import measure_training, training_figures

    # a fresh Inductor cache: a compiled variant's first compile is cold, as a sweep's first job's is
    base = [f"paths.output_dir={workdir / 'train'}", f"model.compile_cache_dir={workdir / 'inductor'}"]
    if args.layout:
        videos, _ = _videos(args, workdir / "videos")
        base += ["experiment=ucf101", f"data.root={ucf101_layout(workdir / 'ucf101', videos)}"]
    else:
        base += _dataset_overrides(args)
    rounds, steps, warmup = (1, 2, 1) if args.quick else (3, 10, 2)
    if args.device == "cuda":
        base.append("trainer=gpu")
        if not args.quick:  # a GPU of one's own: one round; 5 warm-up steps cover compilation
            rounds, steps, warmup = 1, 30, 5
    frames = {name: [f"frames={REAL_SIZE_FRAMES[name]}"] if args.layout else [] for name in args.models}
    models = {name: [*base, f"model={name}", *frames[name], *args.overrides] for name in args.models}
    results = measure_training(models, args.variants, rounds, steps, warmup, torch.device(args.device))
    errors = {f"{r.model} {r.variant}": r.error for r in results if r.error}
    context = {"overrides_by_model": models, "variants": args.variants, "rounds": rounds, "steps": steps}
    return training_figures(results, args.device == "cuda"), context | {"warmup": warmup, "errors": errors}


def multirun_figures(args: argparse.Namespace, workdir: Path) -> tuple[dict[str, list[Measurement]], dict]:
    from .multirun import prepare_dataset, run_multirun

    jobs, dataset = 2 if args.quick else 6, _dataset_overrides(args)
    prepare_dataset([f"paths.output_dir={workdir}", *dataset])
    fresh_startup, records = run_multirun(workdir / "sweep", jobs, dataset)
    peaks = [r["peak_rss_mb"] for r in records]
    warm = [r["startup_s"] for r in records[1:]]
    detail = {
        "startup_s_fresh_process": round(fresh_startup, 2),
        "startup_s_by_job": [round(r["startup_s"], 2) for r in records],
        "peak_rss_mb_by_job": [round(p) for p in peaks],
    }
    first_job = "first job, fresh process, imports included"
    return {
        "startup_s": [Measurement(fresh_startup, [fresh_startup], first_job, goal=GOALS["startup_s"])],
        "startup_s_warm": [Measurement(sum(warm) / len(warm), warm, f"jobs 2-{jobs}, mean")],
        "rss_growth": [
            Measurement(
                peaks[-1] / peaks[0],
                [peaks[-1] / peaks[0]],
                f"{jobs} jobs, default loggers",
                detail,
                GOALS["rss_growth"],
            )
        ],
    }, detail


def _dataset_overrides(args: argparse.Namespace) -> list[str]:
    cache = [f"paths.cache_dir={args.cache_dir.resolve()}"] if args.cache_dir else []
    return ["experiment=demo", *cache, *(TINY_SYNTHETIC if args.quick else [])]


def machine(device: str) -> dict:
    import av
    import torch

    from ..training.cudnn_check import runtime_problems, runtime_versions

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        **runtime_versions(),  # torch, cuda, cudnn
        "torch_threads": torch.get_num_threads(),
        "av": av.__version__,
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        # the bench's variants run in bf16 and in float32: every known problem of reduced precision applies
        "warnings": runtime_problems(None, device),
    }


def write_output(path: Path, figures: dict[str, list[Measurement]], context: dict, info: dict, seconds: float) -> str:
    """bench.json (atomically) and the printed text: warnings, the figures' table, what failed."""
    from ..safety.atomic import atomic_write_json

    blocks = [f"WARNING: {warning}" for warning in info["warnings"]] + ([table(figures)] if figures else [])
    text = "\n\n".join(blocks)
    for name, error in context.get("train", {}).get("errors", {}).items():
        text += f"\n{name} failed: {error}"
    entries = {name: figure_entry(measurements) for name, measurements in figures.items()}
    output = {"figures": entries, "table": text.splitlines(), "context": context, "machine": info}
    atomic_write_json(path, output | {"seconds": round(seconds, 1)})
    return text


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            built = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise SystemExit(
                f"--device cuda: no CUDA device is available (torch {torch.__version__}, {built}); "
                "run on a machine with an NVIDIA GPU and a CUDA build of torch, or use --device cpu"
            )
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
            part_started = time.perf_counter()
            part_figures, part_context = measure[part](args, Path(tmp) / part)
            figures.update(part_figures)
            context[part] = {**part_context, "seconds": round(time.perf_counter() - part_started, 1)}
            write_output(
                args.output, figures, context, info, time.perf_counter() - started
            )  # a bench cut short keeps it
    text = write_output(args.output, figures, context, info, time.perf_counter() - started)
    print(f"{text}\n\nwrote {args.output} ({time.perf_counter() - started:.0f} s)")
    return 1 if any(name.endswith(f" {SEED}") for name in context.get("train", {}).get("errors", {})) else 0


if __name__ == "__main__":
    sys.exit(main())
