"""A figure: repeated samples of one measured ratio or duration, its median, spread and goal."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

GOALS = {
    "data_vs_pytorchvideo": (">=", 2.0),
    "data_vs_decode_floor": (">=", 0.6),
    "train_vs_model_bound": (">=", 0.85),
    "kernels_vs_stock": (">=", 1.0),
    "startup_s": ("<=", 5.0),
    "rss_growth": ("<=", 1.10),
}
"""Figure name -> (comparison, goal). Ratios are project over baseline: higher is better."""


@dataclass
class Measurement:
    """Samples of one figure under one setting (e.g. one crop size), one sample per repeat."""

    samples: list[float]
    setting: str = ""
    detail: dict = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def as_dict(self) -> dict:
        return {
            "value": round(self.median, 4),
            "spread": [round(min(self.samples), 4), round(max(self.samples), 4)],
            "samples": [round(s, 4) for s in self.samples],
            **self.detail,
        }


def meets(name: str, value: float) -> bool | None:
    if name not in GOALS:
        return None
    comparison, goal = GOALS[name]
    return value >= goal if comparison == ">=" else value <= goal


def figure_entry(name: str, measurements: list[Measurement]) -> dict:
    """The bench.json entry: the worst setting's median is the figure's value, judged against its goal."""
    worst = min if GOALS.get(name, (">=",))[0] == ">=" else max
    value = worst(m.median for m in measurements)
    comparison, goal = GOALS.get(name, ("", None))
    return {
        "value": round(value, 4),
        "goal": f"{comparison} {goal:g}" if goal is not None else None,
        "met": meets(name, value),
        "by_setting": {m.setting or "default": m.as_dict() for m in measurements},
    }


def table(figures: dict[str, list[Measurement]]) -> str:
    """A plain-text table, one row per figure and setting."""
    rows = [("figure", "setting", "median", "spread (min-max)", "goal", "met")]
    for name, measurements in figures.items():
        for m in measurements:
            comparison, goal = GOALS.get(name, ("", None))
            met = meets(name, m.median)
            rows.append(
                (
                    name,
                    m.setting,
                    f"{m.median:#.3g}",
                    f"{min(m.samples):#.3g}-{max(m.samples):#.3g}",
                    f"{comparison} {goal:g}" if goal is not None else "",
                    "" if met is None else ("yes" if met else "NO"),
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)
