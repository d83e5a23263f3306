"""Look at a split before training on it: sizes, class balance and clips as the model sees them.

    python -m ar_experiments.explore                       # the embedded synthetic data, split 1
    python -m ar_experiments.explore data=ucf101 data.root=/data/ucf101 split=2 explore.classes=8

Prints videos, classes and groups of train / val / test (val is the group
holdout the datamodule uses) and writes into the run folder
(outputs/explore/<date>/<time>/, or explore.output_dir):
class_distribution.png and .csv (videos per class in each part) and
frame_strips.png (one training clip per class for explore.classes classes,
frames left to right, after clip sampling, scaling and cropping).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import hydra
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from omegaconf import DictConfig

from .data.clips import clip_span
from .data.splits import VideoRecord
from .data.transforms import KINETICS_MEAN, KINETICS_STD
from .safety.atomic import atomic_write_text

PART_COLOURS = {"train": "tab:blue", "val": "tab:orange", "test": "tab:green"}


def summary_table(parts: dict[str, list[VideoRecord]]) -> str:
    lines = [f"{'part':<6} {'videos':>7} {'classes':>8} {'groups':>7}  videos per class"]
    for part, records in parts.items():
        per_class = Counter(r.label for r in records)
        spread = f"{min(per_class.values())}-{max(per_class.values())}" if per_class else "-"
        groups = len({r.group for r in records})
        lines.append(f"{part:<6} {len(records):>7} {len(per_class):>8} {groups:>7}  {spread}")
    return "\n".join(lines)


def plot_class_distribution(counts: pd.DataFrame, path: Path, title: str) -> None:
    """Grouped bars: for every class (a row of `counts`), its videos in train, val and test (its columns)."""
    fig = Figure(figsize=(max(6.0, 0.3 * len(counts) + 2.0), 4.5), layout="tight")
    ax = fig.subplots()
    counts.rename(columns=lambda part: f"{part} ({counts[part].sum()} videos)").plot.bar(
        ax=ax, width=0.8, color=[PART_COLOURS[part] for part in counts], rot=90 if len(counts) > 8 else 0, xlabel=""
    )
    ax.tick_params(axis="x", labelsize=8 if len(counts) <= 30 else 6)
    ax.set_ylim(0, 1.25 * counts.to_numpy().max() + 0.5)  # room for the legend
    ax.set_ylabel("videos")
    ax.set_title(title)
    ax.legend(loc="upper center", ncol=counts.shape[1], fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.savefig(path, dpi=150)


def strip_classes(num_classes: int, wanted: int) -> list[int]:
    """`wanted` class labels spread evenly over the class list (all of them when there are fewer)."""
    wanted = max(1, min(wanted, num_classes))
    return sorted({int(round(x)) for x in np.linspace(0, num_classes - 1, wanted)})


def display_frames(clip) -> np.ndarray:
    """A normalised (C, T, H, W) clip back to (T, H, W, C) floats in [0, 1] for display."""
    mean = np.asarray(KINETICS_MEAN).reshape(-1, 1, 1, 1)
    std = np.asarray(KINETICS_STD).reshape(-1, 1, 1, 1)
    return np.clip(clip.numpy() * std + mean, 0.0, 1.0).transpose(1, 2, 3, 0)


def plot_frame_strips(dataset, labels: Sequence[int], names: Sequence[str], seed: int, path: Path, title: str) -> None:
    """A row per class: the frames of one randomly chosen training clip, left to right.

    The clips come from the training dataset itself (epoch 0), so they are
    sampled, scaled and cropped exactly as the model receives them.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for label in labels:
        choices = [i for i, record in enumerate(dataset.records) if record.label == label]
        if choices:
            item = dataset[(int(rng.choice(choices)), 0)]
            rows.append((label, dataset.records[item["index"]].path, display_frames(item["video"])))
    frames = dataset.frames
    cell = min(1.4, 20.0 / frames)
    fig = Figure(figsize=(frames * cell + 1.8, len(rows) * cell + 0.8), layout="tight")
    axes = fig.subplots(len(rows), frames, squeeze=False)
    for row, (label, video, clip) in enumerate(rows):
        for t in range(frames):
            ax = axes[row, t]
            ax.imshow(clip[t], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"+{t * dataset.stride}", fontsize=7)
        axes[row, 0].set_ylabel(f"{names[label]}\n{Path(video).name}", rotation=0, ha="right", va="center", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=150)


def explore(cfg: DictConfig) -> dict[str, Path]:
    """Print the split's sizes and write the distribution plot and frame strips; returns the files."""
    from hydra.utils import instantiate

    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    parts = {"train": datamodule.train_records, "val": datamodule.val_records, "test": datamodule.index.test}
    names = datamodule.classes
    out = Path(cfg.explore.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    print(f"{cfg.data.name}, split {cfg.split}: {len(names)} classes in {datamodule.root}")
    print(f"val holds out {datamodule.val_groups_per_class} training groups per class (data.val_groups_per_class)")
    print(summary_table(parts))

    counts = pd.DataFrame(
        {part: np.bincount([r.label for r in records], minlength=len(names)) for part, records in parts.items()},
        index=pd.Index(names, name="class"),
    )
    files = {
        "class_distribution": out / "class_distribution.png",
        "class_distribution_csv": out / "class_distribution.csv",
        "frame_strips": out / "frame_strips.png",
    }
    atomic_write_text(files["class_distribution_csv"], counts.to_csv())
    plot_class_distribution(counts, files["class_distribution"], f"Videos per class, {cfg.data.name} split {cfg.split}")

    frames, stride = datamodule.frames, datamodule.stride
    flip = ", random flip" if datamodule.train_flip else ""
    title = (
        f"Training clips as the model sees them: {frames} frames every {stride} (span {clip_span(frames, stride)}), "
        f"short side scaled to {datamodule.short_side}, random {datamodule.crop_size}x{datamodule.crop_size} crop{flip}"
    )
    labels = strip_classes(len(names), int(cfg.explore.classes))
    plot_frame_strips(datamodule.train_set, labels, names, int(cfg.seed), files["frame_strips"], title)
    for path in files.values():
        print(f"wrote {path}")
    return files


@hydra.main(version_base="1.3", config_path="../conf", config_name="explore")
def main(cfg: DictConfig) -> None:
    explore_or_exit(cfg)


def explore_or_exit(cfg: DictConfig) -> None:
    """`explore`, or exit 1 with one `error:` message for a config or split-file problem."""
    from .config.checks import ConfigError, data_problems, resolve
    from .data.splits import DatasetIndexError

    try:
        problems = data_problems(resolve(cfg))
        if problems:
            raise ConfigError(problems)
        explore(cfg)
    except (ConfigError, DatasetIndexError) as err:
        # as train and check_data: the message names the file, line and fix; a traceback would bury it
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main()
