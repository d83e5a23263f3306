"""Per-run evaluation files, written into the run folder after testing: every test video's prediction, accuracy
per class, the confusion matrix (numbers and figure) and the pairs of classes confused most, for a paper's
error analysis; the figures and the per-class table go to W&B too when a W&B logger is active.

Mutation testing (docs/testing.md) covers the numbers and the order of the classes, not the figures'
drawing (sizes, fonts, colours): the two plot functions are marked `no mutate`, as no test reads pixels.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from ..data.splits import VideoRecord
from ..safety.atomic import atomic_write_text
from .video_level import VideoLevelAccumulator

log = logging.getLogger(__name__)

PREDICTION_COLUMNS = (
    "video",
    "label",
    "label_name",
    "predicted",
    "predicted_name",
    "top5",
    "prob_true",
    "prob_predicted",
    "views",
)
TOP_CONFUSED_PAIRS = 20


def write_run_artifacts(
    run_dir: str | Path,
    predictions: VideoLevelAccumulator,
    test_records: Sequence[VideoRecord],
    class_names: Sequence[str],
    loggers: Iterable = (),
) -> dict[str, Path]:
    """Write the per-video and per-class files of a test (nothing when it saw no video); their paths by name.
    `predictions` holds one entry per test video, keyed by its position in `test_records`."""
    indices, probabilities, labels = predictions.predictions()
    if not indices:
        log.warning("no test predictions: per-run metrics files are not written")
        return {}
    run_dir = Path(run_dir)
    names = list(class_names)
    predicted = probabilities.argmax(1)
    confusion = confusion_matrix(labels, predicted, len(names))
    per_class = per_class_rows(confusion, names)
    paths = {
        "test_predictions": run_dir / "test_predictions.csv",
        "per_class_accuracy": run_dir / "per_class_accuracy.csv",
        "confusion_matrix_csv": run_dir / "confusion_matrix.csv",
        "confusion_matrix": run_dir / "confusion_matrix.png",
        "confused_pairs": run_dir / "confused_pairs.png",
    }
    views = [predictions.views[i] for i in indices]
    videos = [test_records[i].path for i in indices]
    write_csv(
        paths["test_predictions"], PREDICTION_COLUMNS, prediction_rows(videos, probabilities, labels, views, names)
    )
    write_csv(paths["per_class_accuracy"], ("class", "support", "accuracy"), per_class)
    write_csv(
        paths["confusion_matrix_csv"],
        ("true \\ predicted", *names),
        [[n, *row] for n, row in zip(names, confusion.tolist())],
    )
    title = f"{len(indices)} test videos, {_views_label(views)}"
    plot_confusion_matrix(confusion, names, paths["confusion_matrix"], title)
    plot_confused_pairs(confusion, names, paths["confused_pairs"], title)
    _log_to_wandb(loggers, paths, per_class)
    return paths


def prediction_rows(videos, probabilities: torch.Tensor, labels: torch.Tensor, views, names) -> list[list]:
    """One `PREDICTION_COLUMNS` row per video."""
    top = probabilities.topk(min(5, probabilities.shape[1]), dim=1).indices  # (dim=-1 is 1 too: equivalent)
    return [
        [video, label, names[label], k[0], names[k[0]], " ".join(map(str, k)), f"{p[label]:.6f}", f"{p[k[0]]:.6f}", n]
        for video, p, label, k, n in zip(videos, probabilities.tolist(), labels.tolist(), top.tolist(), views)
    ]


def confusion_matrix(labels: torch.Tensor, predicted: torch.Tensor, num_classes: int) -> np.ndarray:
    """Counts (num_classes, num_classes): rows are true classes, columns predicted ones."""
    flat = (labels * num_classes + predicted).long()
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes).numpy()


def per_class_rows(confusion: np.ndarray, names: Sequence[str]) -> list[list]:
    """(class, support, accuracy) per class; the accuracy is empty for a class with no test video."""
    support = confusion.sum(1)
    return [
        [name, int(n), f"{confusion[c, c] / n:.6f}" if n else ""] for c, (name, n) in enumerate(zip(names, support))
    ]


def _views_label(views: Sequence[int]) -> str:
    low, high = min(views), max(views)
    if high == 1:
        return "single central view"
    return f"{high} views averaged" if low == high else f"{low}-{high} views averaged"


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def _row_normalised(confusion: np.ndarray) -> np.ndarray:
    support = confusion.sum(1, keepdims=True)
    return np.where(support > 0, confusion / np.maximum(support, 1), np.nan)


def plot_confusion_matrix(
    confusion: np.ndarray, names: Sequence[str], path: Path, title: str
) -> None:  # pragma: no mutate block
    """Row-normalised confusion matrix, classes sorted by accuracy (best first: the weak ones, and what they are
    mistaken for, together at the bottom), on a square-root colour scale (a few percent stand out next to 1)."""
    from matplotlib.colors import PowerNorm
    from matplotlib.figure import Figure

    fractions = _row_normalised(confusion)
    accuracy = np.diag(fractions)
    order = classes_by_accuracy(accuracy, names)
    shown = fractions[np.ix_(order, order)]
    count = len(names)
    side = max(6.0, 0.15 * count + 3.0)
    font = 8 if count <= 30 else 5
    fig = Figure(figsize=(side + 1.5, side), layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(
        np.ma.masked_invalid(shown), cmap="Blues", norm=PowerNorm(0.5, vmin=0, vmax=1), interpolation="nearest"
    )
    ax.set_xticks(range(count), [names[c] for c in order], rotation=90, fontsize=font)
    ax.set_yticks(range(count), [f"{names[c]} ({_percent(accuracy[c])})" for c in order], fontsize=font)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class (accuracy)")
    ax.set_title(f"Confusion matrix, row-normalised\n{title}")
    if count <= 20:
        for row, col in zip(*np.nonzero(confusion[np.ix_(order, order)])):
            value = shown[row, col]
            color = "white" if value > 0.5 else "black"
            ax.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=font, color=color)
    bar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    bar.set_label("share of the true class's videos (square-root colour scale)", fontsize=8)
    fig.savefig(path, dpi=150)


def classes_by_accuracy(accuracy: np.ndarray, names: Sequence[str]) -> list[int]:
    """Class numbers, best accuracy first, then by name; classes without test videos (NaN) last."""
    return sorted(range(len(names)), key=lambda c: (np.isnan(accuracy[c]), -np.nan_to_num(accuracy[c]), names[c]))


def _percent(value: float) -> str:
    return "no videos" if np.isnan(value) else f"{100 * value:.0f}%"


def confused_pairs(confusion: np.ndarray, limit: int = TOP_CONFUSED_PAIRS) -> list[tuple[int, int, int]]:
    """(true, predicted, count) of the most frequent mistakes, most frequent first."""
    off_diagonal = confusion.copy()
    np.fill_diagonal(off_diagonal, 0)
    fractions = np.nan_to_num(_row_normalised(off_diagonal))
    pairs = [(int(t), int(p), int(off_diagonal[t, p])) for t, p in zip(*np.nonzero(off_diagonal))]
    # (np.nonzero gives the pairs in (true, predicted) order already: the last key's mutants are equivalent)
    pairs.sort(key=lambda pair: (-pair[2], -fractions[pair[0], pair[1]], pair[0], pair[1]))
    return pairs[:limit]


def plot_confused_pairs(
    confusion: np.ndarray, names: Sequence[str], path: Path, title: str
) -> None:  # pragma: no mutate block
    """Horizontal bars of the most confused true -> predicted pairs, with the share of the true class."""
    from matplotlib.figure import Figure

    pairs = confused_pairs(confusion)
    support = confusion.sum(1)
    fig = Figure(figsize=(9, max(2.5, 0.35 * len(pairs) + 1.5)))
    ax = fig.subplots()
    if pairs:
        labels = [f"{names[t]} \u2192 {names[p]}" for t, p, _ in pairs]
        counts = [n for _, _, n in pairs]
        ax.barh(range(len(pairs)), counts, color="tab:red")
        ax.set_yticks(range(len(pairs)), labels, fontsize=8)
        ax.invert_yaxis()
        for row, (t, _, n) in enumerate(pairs):
            ax.text(n, row, f" {n} ({100 * n / support[t]:.0f}% of {names[t]})", va="center", fontsize=7)
        ax.set_xlim(0, max(counts) * 1.45)
        ax.set_xlabel("test videos of the true class predicted as the other")
    else:
        ax.text(0.5, 0.5, "no confusions: every test video was classified correctly", ha="center", va="center")
        ax.set_axis_off()
    ax.set_title(f"Most confused pairs, true \u2192 predicted (top {TOP_CONFUSED_PAIRS}; {title})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=150)


def _log_to_wandb(loggers: Iterable, paths: dict[str, Path], per_class: list[list]) -> None:
    """Figures as images and the per-class accuracy as a table; a W&B failure only warns."""
    from pytorch_lightning.loggers import WandbLogger

    for logger in loggers:
        if not isinstance(logger, WandbLogger):
            continue
        try:
            import wandb

            rows = [[name, support, float(acc) if acc else None] for name, support, acc in per_class]
            logger.experiment.log(
                {
                    "test/confusion_matrix": wandb.Image(str(paths["confusion_matrix"])),
                    "test/confused_pairs": wandb.Image(str(paths["confused_pairs"])),
                    "test/per_class_accuracy": wandb.Table(columns=["class", "support", "accuracy"], data=rows),
                }
            )
        except Exception as err:  # noqa: BLE001 - W&B must never fail a run that has finished testing
            log.warning("could not log the test figures to W&B (%s: %s)", type(err).__name__, err)
