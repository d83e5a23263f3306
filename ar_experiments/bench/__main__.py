"""python -m ar_experiments.bench: measure, print a table, write bench.json."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .figures import Measurement, figure_entry, table
from .videos import QUICK_SHAPE, VideoShape, ucf101_layout, write_videos

PARTS = ("data", "train", "multirun")


@dataclass(frozen=True)
class Plan:
    """How much to measure: the full plan fits the 10-minute budget on 2 cores; quick only checks that it runs."""

    videos: int
    shape: VideoShape
    crops: tuple[tuple[int, int], ...]  # (crop size, short side)
    data_repeats: int
    clips_per_repeat: int
    train_repeats: int
    train_steps: int
    train_warmup: int
    multirun_jobs: int
    tiny_synthetic: bool  # a 3-class synthetic dataset instead of the sweep's


FULL = Plan(4, VideoShape(), ((112, 128), (224, 256)), 5, 16, 3, 10, 2, 6, False)
QUICK = Plan(2, QUICK_SHAPE, ((112, 128),), 2, 2, 1, 2, 1, 2, True)
GPU_TRAINING = ["data=ucf101", "trainer=gpu", "frames=16"]
GPU_STEPS, GPU_WARMUP, GPU_CLASSES = 30, 5, 20  # 20 classes x 15 training groups: 37 batches of 8
TINY_SYNTHETIC = [
    "data.synthetic.classes=[MoveRight,MoveLeft,Grow]",
    "data.synthetic.clips_per_group=[1,1]",
]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ar_experiments.bench",
        description="Throughput and overhead figures, each a ratio against a baseline with its goal; "
        "prints a table and writes bench.json. See docs/benchmarks.md.",
    )
    parser.add_argument(
        "--output", type=Path, default=Path("bench.json"), help="where to write the figures (default: ./bench.json)"
    )
    parser.add_argument(
        "--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)} (default: all)"
    )
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu", help="where the training part runs (default: cpu)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny videos and one or two repeats: checks every part runs; figures are not meaningful",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        help="synthetic dataset cache for the train and multirun parts (default: paths.cache_dir)",
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for the training part, e.g. data.batch_size=16")
    args = parser.parse_args(argv)
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(args.parts) - set(PARTS))
    if unknown:
        parser.error(f"--parts: unknown part(s) {unknown}; choose from {','.join(PARTS)}")
    return args


def data_figures(plan: Plan, args: argparse.Namespace, workdir: Path) -> tuple[dict[str, list[Measurement]], dict]:
    from .data_path import ClipSetting, measure_data_path

    videos = write_videos(workdir / "videos", plan.videos, plan.shape)
    figures: dict[str, list[Measurement]] = {"data_vs_pytorchvideo": [], "data_vs_decode_floor": []}
    rates_by_setting = {}
    for crop, short_side in plan.crops:
        setting = ClipSetting(crop, short_side)
        rates = measure_data_path(videos, setting, plan.shape.fps, plan.data_repeats, plan.clips_per_repeat)
        medians = {f"{name}_clips_per_s": round(statistics.median(r), 2) for name, r in rates.items()}
        rates_by_setting[setting.label] = medians
        for figure, baseline in (("data_vs_pytorchvideo", "pytorchvideo"), ("data_vs_decode_floor", "decode_floor")):
            ratios = [p / b for p, b in zip(rates["project"], rates[baseline])]
            figures[figure].append(Measurement(ratios, setting.label, medians))
    return figures, {"videos": asdict(plan.shape) | {"count": plan.videos}, "clips_per_s": rates_by_setting}


def training_figures(plan: Plan, args: argparse.Namespace, workdir: Path) -> tuple[dict[str, list[Measurement]], dict]:
    import torch

    from .training import compose_config, measure_training

    overrides = [f"paths.output_dir={workdir / 'train'}", *_dataset_overrides(plan, args)]
    steps, warmup = plan.train_steps, plan.train_warmup
    if args.device == "cuda":
        layout = ucf101_layout(
            workdir / "ucf101", write_videos(workdir / "videos", plan.videos, plan.shape), GPU_CLASSES
        )
        overrides = [*overrides, *GPU_TRAINING, f"data.root={layout}"]
        if not args.quick:
            steps, warmup = GPU_STEPS, GPU_WARMUP
    cfg = compose_config([*overrides, *args.overrides])
    rounds = measure_training(cfg, plan.train_repeats, steps, warmup, torch.device(args.device))
    batch = cfg.data.batch_size
    model_name, frames, crop = cfg.model.name, cfg.data.frames, cfg.data.crop_size
    setting = f"{args.device}: {model_name} {frames}f {crop}px batch {batch} {cfg.trainer.precision}"
    loop = [r.loop_steps_per_s * batch for r in rounds]
    model = [r.model_steps_per_s * batch for r in rounds]
    figures = {
        "train_vs_model_bound": [Measurement([r.loop_steps_per_s / r.model_steps_per_s for r in rounds], setting)],
        "train_loop_clips_per_s": [Measurement(loop, setting)],
        "train_model_clips_per_s": [Measurement(model, setting)],
        "train_idle_fraction": [Measurement([r.idle_fraction for r in rounds], setting)],
        "kernels_vs_stock": [Measurement([r.model_steps_per_s / r.stock_steps_per_s for r in rounds], setting)],
    }
    return figures, {"training_overrides": [*overrides, *args.overrides], "steps": steps, "warmup": warmup}


def multirun_figures(plan: Plan, args: argparse.Namespace, workdir: Path) -> tuple[dict[str, list[Measurement]], dict]:
    from hydra.utils import instantiate

    from .multirun import run_multirun
    from .training import compose_config

    dataset = _dataset_overrides(plan, args)
    instantiate(compose_config([f"paths.output_dir={workdir}", *dataset]).data).prepare_data()  # generated beforehand
    records = run_multirun(workdir / "sweep", plan.multirun_jobs, dataset)
    setting = f"{plan.multirun_jobs} jobs, default loggers"
    peaks = [r["peak_rss_mb"] for r in records]
    detail = {
        "startup_s_by_job": [round(r["startup_s"], 2) for r in records],
        "peak_rss_mb_by_job": [round(p) for p in peaks],
    }
    figures = {
        "startup_s": [Measurement([r["startup_s"] for r in records], setting, detail)],
        "rss_growth": [Measurement([peaks[-1] / peaks[0]], setting, detail)],
    }
    return figures, detail


def _dataset_overrides(plan: Plan, args: argparse.Namespace) -> list[str]:
    overrides = [f"paths.cache_dir={args.cache_dir.resolve()}"] if args.cache_dir else []
    return overrides + (TINY_SYNTHETIC if plan.tiny_synthetic else [])


def machine() -> dict:
    import av
    import torch

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "av": av.__version__,
        "cuda_device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device == "cuda":
        from .training import require_cuda

        require_cuda()
    plan = QUICK if args.quick else FULL
    started = time.perf_counter()
    info = machine()
    figures: dict[str, list[Measurement]] = {}
    context: dict = {"plan": "quick" if args.quick else "full", "device": args.device}
    steps = {"data": data_figures, "train": training_figures, "multirun": multirun_figures}
    with tempfile.TemporaryDirectory(prefix="ar-bench-") as tmp:
        for part in args.parts:
            print(f"bench: {part} ...", file=sys.stderr, flush=True)
            workdir = Path(tmp) / part
            part_started = time.perf_counter()
            part_figures, part_context = steps[part](plan, args, workdir)
            figures.update(part_figures)
            context[part] = {**part_context, "seconds": round(time.perf_counter() - part_started, 1)}
    text = table(figures)
    from ..atomic import atomic_write_json

    atomic_write_json(
        args.output,
        {
            "figures": {name: figure_entry(name, measurements) for name, measurements in figures.items()},
            "table": text.splitlines(),
            "context": context,
            "machine": info,
            "seconds": round(time.perf_counter() - started, 1),
        },
    )
    print(text)
    print(f"\nwrote {args.output} ({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
