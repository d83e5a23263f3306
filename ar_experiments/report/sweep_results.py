"""A Hydra sweep folder read back: its jobs with their results, overrides, curves and test predictions.

A job is a sub-folder holding `.hydra/` or `results.json`. A job without results.json is unfinished
(still running, or killed before train() could write it). Jobs group into settings (model, frames and
any other override that varies across the sweep) and replicates (split and seed) of a setting.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from .results_validation import UNREADABLE, read_results

# The reported accuracy: video-level top-1, averaged over the test views when several were used.
HEADLINE = "test_top1_multiview"
REPLICATE_KEYS = ("split", "seed")
SETTING_KEYS = ("model", "frames")
UNFINISHED = "unfinished"
PREDICTIONS_FILE = "test_predictions.csv"
METRICS_FILE = Path("csv") / "metrics.csv"
OPTUNA_FILE = "optimization_results.yaml"


def latest_sweep(root: Path) -> Path:
    """The newest `multirun/<date>/<time>` folder under root (Hydra's names sort by time)."""
    sweeps = sorted(path for path in (Path(root) / "multirun").glob("*/*") if path.is_dir())
    if not sweeps:
        raise FileNotFoundError(
            f"no sweep folder multirun/<date>/<time> under {Path(root).resolve()}; "
            "run a sweep first (make sweep) or pass the sweep folder"
        )
    return sweeps[-1]


def parse_overrides(lines: list[str]) -> dict[str, str]:
    """Hydra's `key=value` override strings -> {key: value}; `+`/`++` prefixes dropped, deletions skipped."""
    overrides = {}
    for line in lines:
        key, sep, value = str(line).partition("=")
        if sep and not key.startswith("~"):
            overrides[key.lstrip("+")] = value
    return overrides


@dataclass
class Job:
    folder: Path
    results: dict[str, Any] | None
    overrides: dict[str, str] | None  # None when the job has no .hydra/overrides.yaml
    problem: str | None = None  # why its results.json or overrides.yaml cannot be believed (file and reason)

    @classmethod
    def read(cls, folder: Path) -> Job:
        results_path = folder / "results.json"
        overrides_path = folder / ".hydra" / "overrides.yaml"
        results, problem = read_results(results_path) if results_path.is_file() else (None, None)
        try:
            overrides = (
                parse_overrides(yaml.safe_load(overrides_path.read_text()) or []) if overrides_path.is_file() else None
            )
        except (OSError, UnicodeDecodeError, yaml.YAMLError, TypeError) as err:
            overrides, problem = None, problem or f"{overrides_path} cannot be read: {err}"
        return cls(folder, results, overrides, problem)

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def number(self) -> int | None:
        match = re.match(r"(\d+)-", self.name)
        return int(match.group(1)) if match else None

    @property
    def status(self) -> str:
        if self.problem:
            return UNREADABLE
        return self.results.get("status", UNFINISHED) if self.results else UNFINISHED

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    @property
    def error(self) -> str:
        if self.problem:
            return self.problem
        if self.results is None:
            last = self.last_log_line()
            return "no results.json: still running, or stopped before it could write one" + (
                f"; last log line: {last}" if last else ""
            )
        return self.results.get("error") or ("still running" if self.status == "running" else "")

    def last_log_line(self) -> str:
        log = self.folder / "train.log"
        if not log.is_file():
            return ""
        with log.open("rb") as handle:
            handle.seek(max(0, log.stat().st_size - 4096))
            lines = handle.read().decode("utf-8", "replace").strip().splitlines()
        return lines[-1].strip() if lines else ""

    def get(self, key: str) -> Any:
        return (self.results or {}).get(key)

    @property
    def top1(self) -> float | None:
        """The headline accuracy (falls back to single-view top-1 for records without it)."""
        value = self.get(HEADLINE)
        return self.get("test_top1") if value is None else value

    def validation_curve(self) -> pd.Series | None:
        """val/top1 per epoch from csv/metrics.csv (Lightning writes one row per logging call)."""
        path = self.folder / METRICS_FILE
        if not path.is_file():
            return None
        try:
            metrics = pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
            return None  # a sweep still running may be writing it
        if "val/top1" not in metrics or "epoch" not in metrics:
            return None
        rows = metrics.dropna(subset=["val/top1", "epoch"])
        curve = rows.groupby("epoch")["val/top1"].last()
        return curve if len(curve) else None

    def predictions(self) -> pd.Series | None:
        """Whether each test video was classified right, indexed by video; None without the file."""
        path = self.folder / PREDICTIONS_FILE
        if not path.is_file():
            return None
        table = pd.read_csv(path)
        missing = {"video", "label", "predicted"} - set(table.columns)
        if missing:
            raise ValueError(f"{path} lacks the column(s) {sorted(missing)}; it needs video, label and predicted")
        if table["video"].duplicated().any():
            raise ValueError(
                f"{path} lists a video more than once: {table['video'][table['video'].duplicated()].iloc[0]}"
            )
        return pd.Series((table["label"] == table["predicted"]).to_numpy(), index=table["video"], name=self.name)


@dataclass
class Sweep:
    folder: Path
    jobs: list[Job]
    optuna: dict[str, Any] | None = None
    varied: list[str] = field(default_factory=list)  # overrides besides model/frames/split/seed that differ

    @classmethod
    def read(cls, folder: Path) -> Sweep:
        folder = Path(folder).resolve()
        if not folder.is_dir():
            raise FileNotFoundError(f"sweep folder not found: {folder}; pass a multirun/<date>/<time> folder")
        candidates = [
            path
            for path in folder.iterdir()
            if path.is_dir()
            and not path.name.startswith(".")
            and ((path / ".hydra").is_dir() or (path / "results.json").is_file())
        ]
        jobs = [Job.read(path) for path in candidates]
        jobs.sort(key=lambda job: (job.number is None, job.number or 0, job.name))
        optuna_path = folder / OPTUNA_FILE
        optuna = yaml.safe_load(optuna_path.read_text()) if optuna_path.is_file() else None
        return cls(folder, jobs, optuna, varied_overrides(jobs))

    @property
    def completed(self) -> list[Job]:
        return [job for job in self.jobs if job.completed]

    def setting(self, job: Job) -> tuple[tuple[str, Any], ...]:
        """What a job tests: model, frames and the other varied overrides (not split or seed)."""
        core = tuple((key, job.get(key)) for key in SETTING_KEYS)
        return core + tuple((key, (job.overrides or {}).get(key)) for key in self.varied)

    def replicate(self, job: Job) -> tuple[tuple[str, Any], ...]:
        return tuple((key, job.get(key)) for key in REPLICATE_KEYS)

    @property
    def replicate_keys_varied(self) -> list[str]:
        """split and/or seed, where the completed runs use more than one value."""
        return [key for key in REPLICATE_KEYS if len({job.get(key) for job in self.completed}) > 1]


def varied_overrides(jobs: list[Job]) -> list[str]:
    """Override keys (other than model/frames/split/seed, read from results.json) whose value differs between jobs."""
    with_overrides = [job.overrides for job in jobs if job.overrides is not None]
    keys = sorted({key for overrides in with_overrides for key in overrides} - set(SETTING_KEYS) - set(REPLICATE_KEYS))
    return [key for key in keys if len({overrides.get(key) for overrides in with_overrides}) > 1]


def setting_label(setting: tuple[tuple[str, Any], ...]) -> str:
    """("model", "x3d_m"), ("frames", 16), ("optimizer", "sgd") -> "x3d_m-16f optimizer=sgd"."""
    values = dict(setting)
    extra = [f"{key}={format_value(value)}" for key, value in setting if key not in SETTING_KEYS]
    return " ".join([f"{values['model']}-{values['frames']}f", *extra])


def series_label(setting: tuple[tuple[str, Any], ...]) -> str:
    """The setting without its frames, the line that a plot over frames draws: "x3d_m optimizer=sgd"."""
    return " ".join(
        str(value) if key == "model" else f"{key}={format_value(value)}" for key, value in setting if key != "frames"
    )


def replicate_label(replicate: tuple[tuple[str, Any], ...], keys: list[str]) -> str:
    """The replicate in words, naming only the keys that vary: "split 1", "split 1, seed 2"."""
    values = dict(replicate)
    return ", ".join(f"{key} {values[key]}" for key in keys) or "the only run"


def format_value(value: Any) -> str:
    """Optuna's floats (0.0012345678) shortened to 4 significant digits; anything else as written."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isfinite(number) and not str(value).lstrip("-").isdigit():
        return f"{number:.4g}"
    return str(value)
