"""Which runs of a sweep to compare, the statistics of each comparison, and one sentence for each.

Two settings are compared when they differ in the model alone or in the frames alone (every other
swept override equal; split and seed are the replicates that pair their runs):
- on each split (and seed) where both ran and left test_predictions.csv, over the test videos both runs
  evaluated (a run leaves out the videos it could not read, so two runs may differ in a few);
- across all splits and seeds where both ran, over the matched runs' headline accuracies.
The setting with the higher mean accuracy is named first, so a negative difference on one split
means that split disagrees with the average.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from .stats import (
    CONFIDENCE,
    DEFAULT_RESAMPLES,
    MIN_RUNS_TO_CONCLUDE,
    compare_on_videos,
    compare_over_runs,
    format_p,
    holm_adjusted,
    significance,
)
from .sweep_results import SETTING_KEYS, Job, Sweep, replicate_label, setting_label

ON_VIDEOS = "videos"
OVER_RUNS = "runs"


@dataclass
class Comparison:
    kind: str  # ON_VIDEOS (one split, paired over its test videos) or OVER_RUNS (paired over splits/seeds)
    factor: str  # the one setting that differs
    a: str
    b: str
    replicates: str  # "split 1" for ON_VIDEOS; the splits/seeds used for OVER_RUNS
    n: int  # test videos both runs evaluated, or matched runs
    accuracy_a: float
    accuracy_b: float
    difference: float  # accuracy_a - accuracy_b, a fraction (mean of the run differences for OVER_RUNS)
    ci_low: float
    ci_high: float
    test: str
    p_value: float
    p_holm: float = float("nan")
    only_a_right: int | None = None
    only_b_right: int | None = None
    std_difference: float | None = None
    videos_a: int | None = None  # ON_VIDEOS: test videos each run evaluated; n counts those both evaluated
    videos_b: int | None = None
    sentence: str = ""

    @property
    def videos_differ(self) -> bool:
        return self.kind == ON_VIDEOS and (self.videos_a != self.n or self.videos_b != self.n)


def points(fraction: float) -> str:
    return f"{100 * fraction:+.1f}"


def video_sentence(c: Comparison) -> str:
    return (
        f"{c.a} vs {c.b}, {c.replicates}, {c.n} test videos: {points(c.difference)} points "
        f"[{CONFIDENCE:.0%} CI {points(c.ci_low)}, {points(c.ci_high)}], McNemar {format_p(c.p_value)} "
        f"({c.only_a_right} vs {c.only_b_right} discordant videos): {significance(c.p_value)}"
    )


def runs_sentence(c: Comparison) -> str:
    head = f"{c.a} vs {c.b} over {c.replicates}"
    if c.n == 1:
        return f"{head}: {points(c.difference)} points; one matched run cannot be tested, too few to conclude anything"
    if c.std_difference == 0.0:
        text = f"{head}: every paired difference is {points(c.difference)} points, too little spread for a t-test"
    else:
        text = (
            f"{head}: mean difference {points(c.difference)} points (sd {100 * c.std_difference:.1f}) "
            f"[{CONFIDENCE:.0%} CI {points(c.ci_low)}, {points(c.ci_high)}], paired t-test {format_p(c.p_value)}"
        )
        if c.n >= MIN_RUNS_TO_CONCLUDE:
            return f"{text}: {significance(c.p_value)}"
    if c.n < MIN_RUNS_TO_CONCLUDE:
        text += f"; {c.n} matched runs are too few to conclude anything (run more splits or seeds)"
    return text


def replicates_text(replicates: list[tuple], keys: list[str]) -> str:
    """The matched runs in words: "splits 1, 2, 3", "seed 0", or "4 runs (split 1, seed 0; ...)"."""
    if len(keys) == 1:
        values = ", ".join(str(dict(r)[keys[0]]) for r in replicates)
        return f"{keys[0]}{'s' if len(replicates) > 1 else ''} {values}"
    return f"{len(replicates)} runs ({'; '.join(replicate_label(r, keys) for r in replicates)})"


def setting_pairs(sweep: Sweep) -> list[tuple[tuple, tuple, str]]:
    """(better setting, other setting, "model" or "frames") for settings that differ in that alone."""
    accuracies: dict[tuple, list[float]] = {}
    for job in sweep.completed:
        if job.top1 is not None:
            accuracies.setdefault(sweep.setting(job), []).append(job.top1)
    settings = sorted(accuracies, key=lambda s: (-float(np.mean(accuracies[s])), setting_label(s)))
    pairs = []
    for first, second in itertools.combinations(settings, 2):
        differing = [key for (key, x), (_, y) in zip(first, second) if x != y]
        # Only model and frames: an Optuna search varies other overrides trial by trial, and comparing
        # every pair of its trials would bury the report in hundreds of post-hoc tests.
        if len(differing) == 1 and differing[0] in SETTING_KEYS:
            pairs.append((first, second, differing[0]))
    return pairs


def runs_by_setting(sweep: Sweep) -> dict[tuple, dict[tuple, Job]]:
    """setting -> replicate -> completed job with an accuracy; a repeated replicate keeps its first job."""
    table: dict[tuple, dict[tuple, Job]] = {}
    for job in sweep.completed:
        if job.top1 is not None:
            table.setdefault(sweep.setting(job), {}).setdefault(sweep.replicate(job), job)
    return table


def compare_sweep(
    sweep: Sweep,
    predictions: dict[str, pd.Series],
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> list[Comparison]:
    """Every comparison of the sweep, video-level ones first; `predictions` maps job name -> correctness."""
    table = runs_by_setting(sweep)
    replicate_keys = sweep.replicate_keys_varied
    on_videos, over_runs = [], []
    for first, second, factor in setting_pairs(sweep):
        pair = {"factor": factor, "a": setting_label(first), "b": setting_label(second)}
        shared = [r for r in table[first] if r in table[second]]
        for replicate in shared:
            job_a, job_b = table[first][replicate], table[second][replicate]
            if job_a.name not in predictions or job_b.name not in predictions:
                continue
            # only the videos both runs evaluated: either may have left out videos it could not read
            joined = pd.concat([predictions[job_a.name], predictions[job_b.name]], axis=1, join="inner")
            if joined.empty:
                continue
            result = compare_on_videos(joined.iloc[:, 0], joined.iloc[:, 1], n_resamples=n_resamples, seed=seed)
            on_videos.append(
                Comparison(
                    kind=ON_VIDEOS,
                    **pair,
                    # the split names the test videos, so it is always said
                    replicates=replicate_label(replicate, ["split", *(k for k in replicate_keys if k != "split")]),
                    n=result.videos,
                    test="McNemar exact",
                    videos_a=len(predictions[job_a.name]),
                    videos_b=len(predictions[job_b.name]),
                    **{key: value for key, value in asdict(result).items() if key != "videos"},
                )
            )
        if replicate_keys and shared:
            accuracies_a = [table[first][r].top1 for r in shared]
            accuracies_b = [table[second][r].top1 for r in shared]
            result = compare_over_runs(accuracies_a, accuracies_b)
            over_runs.append(
                Comparison(
                    kind=OVER_RUNS,
                    **pair,
                    replicates=replicates_text(shared, replicate_keys),
                    n=result.runs,
                    accuracy_a=float(np.mean(accuracies_a)),
                    accuracy_b=float(np.mean(accuracies_b)),
                    difference=result.mean_difference,
                    ci_low=result.ci_low,
                    ci_high=result.ci_high,
                    test="paired t-test",
                    p_value=result.p_value,
                    std_difference=result.std_difference,
                )
            )
    for family in (on_videos, over_runs):
        for comparison, adjusted in zip(family, holm_adjusted([c.p_value for c in family])):
            comparison.p_holm = adjusted
    for comparison in on_videos:
        comparison.sentence = video_sentence(comparison)
    for comparison in over_runs:
        comparison.sentence = runs_sentence(comparison)
    return on_videos + over_runs


def comparisons_table(comparisons: list[Comparison]) -> pd.DataFrame:
    columns = list(Comparison.__dataclass_fields__)
    table = pd.DataFrame([asdict(c) for c in comparisons], columns=columns)
    return table.astype({key: "Int64" for key in ("n", "only_a_right", "only_b_right", "videos_a", "videos_b")})
