"""Which runs a sweep compares and how their p-values are corrected, on runs built in memory (no files)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ar_experiments.report.comparisons import ON_VIDEOS, OVER_RUNS, compare_sweep
from ar_experiments.report.sweep_results import Job, Sweep
from tests.report.test_stats import exact_mcnemar

VIDEOS = 100


def job(number: int, model: str, split: int, top1: float, extra: dict | None = None) -> Job:
    results = {"status": "completed", "model": model, "frames": 8, "split": split, "seed": 0, "test_top1": top1}
    return Job(Path(f"{number}-{model}-8f-split{split}"), results, {"model": model, **(extra or {})})


def outcomes(right: range) -> pd.Series:
    return pd.Series([i in right for i in range(VIDEOS)], index=[f"v{i}" for i in range(VIDEOS)])


def holm_by_hand(p_values: list[float]) -> list[float]:
    order = sorted(range(len(p_values)), key=p_values.__getitem__)
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, (len(p_values) - rank) * p_values[i])
        adjusted[i] = min(1.0, running)
    return adjusted


# x3d_m is right on videos 0-59 of every split; slowfast on 0-59 plus `more` videos, minus `fewer`
SPLITS = {1: (12, 2), 2: (9, 3), 3: (20, 1)}


@pytest.fixture
def sweep_and_predictions() -> tuple[Sweep, dict[str, pd.Series]]:
    jobs, predictions = [], {}
    for split, (more, fewer) in SPLITS.items():
        for model, right in (("x3d_m", range(60)), ("slowfast", range(fewer, 60 + more))):
            run = job(len(jobs), model, split, len(right) / VIDEOS, {"optimizer": "adamw"})
            jobs.append(run)
            predictions[run.name] = outcomes(right)
    return Sweep(Path("sweep"), jobs), predictions


def test_each_split_is_paired_video_by_video_with_mcnemars_exact_p(sweep_and_predictions):
    comparisons = compare_sweep(*sweep_and_predictions, n_resamples=200)
    on_videos = [c for c in comparisons if c.kind == ON_VIDEOS]
    assert [c.replicates for c in on_videos] == ["split 1", "split 2", "split 3"]
    for c, (more, fewer) in zip(on_videos, SPLITS.values()):
        assert (c.a, c.b, c.factor, c.n) == ("slowfast-8f", "x3d_m-8f", "model", VIDEOS)
        assert (c.only_a_right, c.only_b_right) == (more, fewer)
        assert c.difference == pytest.approx((more - fewer) / VIDEOS)
        assert c.p_value == pytest.approx(exact_mcnemar(more, fewer), rel=1e-12)


def test_holm_corrects_the_paired_video_and_the_paired_run_families_separately(sweep_and_predictions):
    comparisons = compare_sweep(*sweep_and_predictions, n_resamples=200)
    on_videos = [c for c in comparisons if c.kind == ON_VIDEOS]
    over_runs = [c for c in comparisons if c.kind == OVER_RUNS]
    assert len(on_videos) == 3 and len(over_runs) == 1
    # three split-level tests form one family; mixing in the over-splits t-test would multiply by 4, not 3
    assert [c.p_holm for c in on_videos] == pytest.approx(holm_by_hand([c.p_value for c in on_videos]), rel=1e-12)
    # the t-test over splits is a family of one: its p-value is its own
    assert over_runs[0].n == 3 and over_runs[0].p_holm == pytest.approx(over_runs[0].p_value, rel=1e-12)
    assert over_runs[0].difference == pytest.approx(sum(m - f for m, f in SPLITS.values()) / 3 / VIDEOS)


def test_only_settings_that_differ_in_model_or_frames_alone_are_compared(sweep_and_predictions):
    sweep, predictions = sweep_and_predictions
    # a third setting that differs from x3d_m-8f in an optimiser override only, and from slowfast in both
    for split in SPLITS:
        run = job(10 + split, "x3d_m", split, 0.5, {"optimizer": "sgd"})
        sweep.jobs.append(run)
        predictions[run.name] = outcomes(range(50))
    sweep.varied = ["optimizer"]
    pairs = {(c.a, c.b) for c in compare_sweep(sweep, predictions, n_resamples=200)}
    assert pairs == {("slowfast-8f optimizer=adamw", "x3d_m-8f optimizer=adamw")}
