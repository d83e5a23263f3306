"""A figure: a ratio of pooled rates (or a pooled rate, share or duration), its per-round spread and its goal.

Every path is timed over several rounds. A rate is *pooled*: all the work it
did (clips, steps, videos) over all the seconds it took, across rounds, so a
ratio of two paths is the ratio of their pooled rates and agrees with the rate
rows printed beside it. The same figure computed round by round gives the
spread, which shows how much the machine's load moved it.

The training figures end with the seed grid's projected hours on real UCF101 (`run_seconds`,
`grid_hours`); docs/benchmarks.md ("The projection") gives the formula and why it is an upper bound.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tabulate import tabulate

GOALS = {
    "data_vs_pytorchvideo": (">=", 2.0),
    "data_vs_decode_floor": (">=", 0.6),
    "train_vs_model_bound": (">=", 0.85),
    "startup_s": ("<=", 5.0),
    "rss_growth": ("<=", 1.10),
}
"""Figure name -> (comparison, goal). Ratios are project over baseline: higher is better."""

# On a GPU at real size (issue 14), against the seed's figures measured on one H200 (torch 2.11,
# bf16-mixed, batch 8): fit loop 68.8 clips/s for X3D-M 16x224, 77.1 for SlowFast R50 32x224.
SEED_H200_LOOP_CLIPS_PER_S = {"x3d_m": 68.8, "slowfast": 77.1}
GPU_GOALS = {
    "train_vs_model_bound": (">=", 0.9),
    "train_idle_fraction": ("<=", 0.05),
    "test_seconds_per_run": ("<=", 300.0),  # 3,783 test videos x 10x3 views
    "grid_hours": ("<=", 3.0),
}
GPU_SPEEDUP_GOAL = 4.0  # fit-loop clips/s over the seed's, per model

# UCF101 split 1: the trainlist (held-out validation groups included), the validation groups
# (3 of 18 per class), the testlist; the grid's epochs and runs (2 models x 3 frame counts x 3 splits)
TRAIN_VIDEOS, VAL_VIDEOS, TEST_VIDEOS = 9537, 1590, 3783
SEED_EPOCHS, SEED_GRID_RUNS = 20, 18


def goal(name: str, on_gpu: bool, model: str | None = None) -> tuple[str, float] | None:
    """The figure's goal: on a GPU its GPU goal (per model for the fit loop's clips/s), else GOALS's."""
    if on_gpu and name == "train_loop_clips_per_s" and model in SEED_H200_LOOP_CLIPS_PER_S:
        return (">=", round(GPU_SPEEDUP_GOAL * SEED_H200_LOOP_CLIPS_PER_S[model], 1))
    return GPU_GOALS.get(name, GOALS.get(name)) if on_gpu else GOALS.get(name)


@dataclass
class Pooled:
    """Work done (clips, steps, videos; or idle seconds) and the seconds it took, one entry per round."""

    units: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def add(self, units: float, seconds: float) -> Pooled:
        self.units.append(units)
        self.seconds.append(seconds)
        return self

    @property
    def rate(self) -> float:
        return sum(self.units) / sum(self.seconds)

    @property
    def round_rates(self) -> list[float]:
        return [units / seconds for units, seconds in zip(self.units, self.seconds)]


@dataclass
class Measurement:
    """One figure under one setting: its value, the same figure round by round (its spread) and its goal."""

    value: float
    rounds: list[float]
    setting: str = ""
    detail: dict = field(default_factory=dict)
    goal: tuple[str, float] | None = None

    @classmethod
    def ratio(cls, numerator: Pooled, denominator: Pooled, setting: str = "", **extra) -> Measurement:
        rounds = [a / b for a, b in zip(numerator.round_rates, denominator.round_rates)]
        return cls(numerator.rate / denominator.rate, rounds, setting, **extra)

    @classmethod
    def pooled(cls, pooled: Pooled, setting: str = "", **extra) -> Measurement:
        return cls(pooled.rate, pooled.round_rates, setting, **extra)

    @property
    def met(self) -> bool | None:
        if self.goal is None:
            return None
        comparison, target = self.goal
        return self.value >= target if comparison == ">=" else self.value <= target

    def as_dict(self) -> dict:
        return {
            "value": round(self.value, 4),
            "spread": [round(min(self.rounds), 4), round(max(self.rounds), 4)] if self.rounds else None,
            "rounds": [round(r, 4) for r in self.rounds],
            "goal": _goal_text(self.goal),
            "met": self.met,
            **self.detail,
        }


def _goal_text(goal: tuple[str, float] | None) -> str | None:
    return f"{goal[0]} {goal[1]:g}" if goal is not None else None


def figure_entry(measurements: list[Measurement]) -> dict:
    """The bench.json entry: the worst setting's value is the figure's; `met` when every setting meets its goal."""
    goals = {m.goal for m in measurements}
    worst = min if (measurements[0].goal or (">=",))[0] == ">=" else max
    verdicts = [m.met for m in measurements]
    return {
        "value": round(worst(m.value for m in measurements), 4),
        "goal": _goal_text(measurements[0].goal) if len(goals) == 1 else "by setting",
        "met": None if all(v is None for v in verdicts) else all(v is not False for v in verdicts),
        "by_setting": {m.setting or "default": m.as_dict() for m in measurements},
    }


def table(figures: dict[str, list[Measurement]]) -> str:
    """One row per figure and setting."""
    rows = [
        (
            name,
            m.setting,
            f"{m.value:#.3g}",
            _spread(m.rounds),
            _goal_text(m.goal),
            {True: "yes", False: "NO"}.get(m.met),
        )
        for name, measurements in figures.items()
        for m in measurements
    ]
    headers = ("figure", "setting", "value", "per round (min-max)", "goal", "met")
    return tabulate(rows, headers, disable_numparse=True, missingval="")


def _spread(rounds: list[float]) -> str:
    return f"{min(rounds):#.3g}-{max(rounds):#.3g}" if len(rounds) > 1 else ""


def run_seconds(fit_clips_per_s: float, val_clips_per_s: float, test_videos_per_s: float, compile_s: float) -> float:
    """Seconds of one run at UCF101 split 1's sizes (the other splits are within 1% of them)."""
    per_epoch = (TRAIN_VIDEOS - VAL_VIDEOS) / fit_clips_per_s + VAL_VIDEOS / val_clips_per_s
    return SEED_EPOCHS * per_epoch + TEST_VIDEOS / test_videos_per_s + compile_s


def grid_hours(run_seconds_by_model: dict[str, float]) -> float:
    """Hours of the grid's runs one after another, shared evenly among the measured models.

    With both models measured, each runs 9 times at its own rate; with one (the CPU bench), all 18 at its rate.
    """
    return sum(run_seconds_by_model.values()) * SEED_GRID_RUNS / len(run_seconds_by_model) / 3600
