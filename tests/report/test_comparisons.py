"""Which runs a sweep compares and how their p-values are corrected, on runs built in memory (no files)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ar_experiments.report.comparisons import (
    ON_VIDEOS,
    OVER_RUNS,
    Comparison,
    compare_sweep,
    comparisons_table,
    replicates_text,
    runs_sentence,
    video_sentence,
)
from ar_experiments.report.stats import compare_on_videos
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


def runs_comparison(**fields) -> Comparison:
    values = dict(
        kind=OVER_RUNS, factor="model", a="slowfast-8f", b="x3d_m-8f", replicates="splits 1, 2, 3", n=3,
        accuracy_a=0.9, accuracy_b=0.8, difference=0.1, ci_low=0.02, ci_high=0.18, test="paired t-test",
        p_value=0.03, std_difference=0.05,
    )  # fmt: skip
    return Comparison(**{**values, **fields})


def test_a_sentence_for_each_kind_and_size_of_comparison():
    video = runs_comparison(kind=ON_VIDEOS, replicates="split 1", n=200, p_value=0.0123)
    video.only_a_right, video.only_b_right = 14, 4
    assert video_sentence(video) == (
        "slowfast-8f vs x3d_m-8f, split 1, 200 test videos: +10.0 points [95% CI +2.0, +18.0], "
        "McNemar p = 0.012 (14 vs 4 discordant videos): significant at 0.05"
    )
    assert runs_sentence(runs_comparison()) == (
        "slowfast-8f vs x3d_m-8f over splits 1, 2, 3: mean difference +10.0 points (sd 5.0) [95% CI +2.0, +18.0], "
        "paired t-test p = 0.03: significant at 0.05"
    )
    assert runs_sentence(runs_comparison(n=2, replicates="splits 1, 2")) == (
        "slowfast-8f vs x3d_m-8f over splits 1, 2: mean difference +10.0 points (sd 5.0) [95% CI +2.0, +18.0], "
        "paired t-test p = 0.03; 2 matched runs are too few to conclude anything (run more splits or seeds)"
    )
    assert runs_sentence(runs_comparison(n=1, replicates="split 1")) == (
        "slowfast-8f vs x3d_m-8f over split 1: +10.0 points; one matched run cannot be tested, too few to conclude "
        "anything"
    )
    assert runs_sentence(runs_comparison(std_difference=0.0)) == (
        "slowfast-8f vs x3d_m-8f over splits 1, 2, 3: every paired difference is +10.0 points, too little spread "
        "for a t-test"
    )
    assert runs_sentence(runs_comparison(n=2, std_difference=0.0)).endswith(
        "too little spread for a t-test; 2 matched runs are too few to conclude anything (run more splits or seeds)"
    )


def test_replicates_in_words():
    splits = [(("split", 1), ("seed", 0)), (("split", 2), ("seed", 0))]
    assert replicates_text(splits, ["split"]) == "splits 1, 2"
    assert replicates_text(splits[:1], ["split"]) == "split 1"
    assert replicates_text(splits, ["split", "seed"]) == "2 runs (split 1, seed 0; split 2, seed 0)"


def test_only_videos_both_runs_evaluated_are_paired_and_the_difference_is_flagged(sweep_and_predictions):
    sweep, predictions = sweep_and_predictions
    first = sweep.jobs[0].name  # x3d_m on split 1 could not read two videos
    predictions[first] = predictions[first].drop(["v0", "v99"])
    on_split_1 = compare_sweep(sweep, predictions, n_resamples=200)[0]
    assert (on_split_1.n, on_split_1.videos_a, on_split_1.videos_b) == (98, VIDEOS, 98)
    assert on_split_1.videos_differ
    # v0 was one of the two videos x3d_m alone got right; both runs were wrong on v99
    assert (on_split_1.only_a_right, on_split_1.only_b_right) == (12, 1)
    assert not compare_sweep(*sweep_and_predictions, n_resamples=200)[1].videos_differ
    assert not runs_comparison().videos_differ


def test_a_run_without_predictions_is_compared_over_runs_only(sweep_and_predictions):
    sweep, predictions = sweep_and_predictions
    del predictions[sweep.jobs[1].name]  # slowfast on split 1
    comparisons = compare_sweep(sweep, predictions, n_resamples=200)
    assert [c.replicates for c in comparisons if c.kind == ON_VIDEOS] == ["split 2", "split 3"]
    assert [c.n for c in comparisons if c.kind == OVER_RUNS] == [3]


def test_the_comparisons_table_has_a_column_per_field_and_whole_counts(sweep_and_predictions):
    table = comparisons_table(compare_sweep(*sweep_and_predictions, n_resamples=200))
    assert list(table.columns) == list(Comparison.__dataclass_fields__)
    assert str(table["n"].dtype) == "Int64" and str(table["only_a_right"].dtype) == "Int64"
    assert table["only_a_right"].isna().tolist() == [False, False, False, True]
    assert table["sentence"].str.startswith("slowfast-8f vs x3d_m-8f").all()


def test_a_sweep_without_comparisons_still_gets_every_column():
    table = comparisons_table([])
    assert table.empty and list(table.columns) == list(Comparison.__dataclass_fields__)


def test_every_field_of_a_comparison_and_the_seed_it_resamples_with(sweep_and_predictions):
    sweep, predictions = sweep_and_predictions
    comparisons = compare_sweep(sweep, predictions, n_resamples=200, seed=5)
    first, over_splits = comparisons[0], comparisons[-1]
    assert (first.test, first.factor, first.accuracy_a, first.accuracy_b) == ("McNemar exact", "model", 0.7, 0.6)
    again = compare_on_videos(predictions[sweep.jobs[1].name], predictions[sweep.jobs[0].name], n_resamples=200, seed=5)
    assert (first.ci_low, first.ci_high) == (again.ci_low, again.ci_high)
    default = compare_sweep(sweep, predictions)[0]
    seed_0 = compare_on_videos(predictions[sweep.jobs[1].name], predictions[sweep.jobs[0].name], seed=0)
    assert (default.ci_low, default.ci_high) == (seed_0.ci_low, seed_0.ci_high)
    assert (over_splits.test, over_splits.factor) == ("paired t-test", "model")
    assert over_splits.replicates == "splits 1, 2, 3"
    assert over_splits.accuracy_a == pytest.approx((0.7 + 0.66 + 0.79) / 3)
    assert over_splits.accuracy_b == pytest.approx(0.6)


def test_the_setting_with_the_higher_mean_accuracy_is_named_first(sweep_and_predictions):
    sweep, predictions = sweep_and_predictions
    for run in sweep.jobs:  # x3d_m now right on every video
        if run.get("model") == "x3d_m":
            run.results["test_top1"] = 1.0
            predictions[run.name] = outcomes(range(VIDEOS))
    assert {(c.a, c.b) for c in compare_sweep(sweep, predictions, n_resamples=200)} == {("x3d_m-8f", "slowfast-8f")}


def test_runs_sharing_no_video_are_not_paired_and_one_split_gives_no_comparison_over_runs(sweep_and_predictions):
    sweep, predictions = sweep_and_predictions
    first = sweep.jobs[0].name
    predictions[first] = predictions[first].rename(index=lambda video: f"other-{video}")  # split 1: no shared video
    assert [c.replicates for c in compare_sweep(sweep, predictions, n_resamples=200) if c.kind == ON_VIDEOS] == [
        "split 2",
        "split 3",
    ]
    split_1 = Sweep(Path("sweep"), sweep.jobs[:2])
    assert [c.kind for c in compare_sweep(split_1, predictions, n_resamples=200)] == []
    assert [c.kind for c in compare_sweep(split_1, {j.name: outcomes(range(50)) for j in split_1.jobs})] == [ON_VIDEOS]
