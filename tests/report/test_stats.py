"""The statistics on constructed predictions whose answers are known."""

from fractions import Fraction
from math import comb

import numpy as np
import pytest

from ar_experiments.report.stats import (
    MIN_RUNS_TO_CONCLUDE,
    accuracy_with_ci,
    bootstrap_mean_ci,
    compare_on_videos,
    compare_over_runs,
    format_p,
    holm_adjusted,
    significance,
)


def exact_mcnemar(only_a: int, only_b: int) -> float:
    """McNemar's exact p-value by hand: twice the smaller binomial tail of the discordant videos, capped at 1."""
    n, k = only_a + only_b, min(only_a, only_b)
    tail = Fraction(sum(comb(n, i) for i in range(k + 1)), 2**n)
    return float(min(Fraction(1), 2 * tail))


def test_identical_predictions_differ_by_zero_with_p_one():
    correct = np.random.default_rng(0).random(500) < 0.7
    result = compare_on_videos(correct, correct.copy(), n_resamples=1000)
    assert result.difference == 0.0
    assert (result.ci_low, result.ci_high) == (0.0, 0.0)
    assert result.only_a_right == result.only_b_right == 0
    assert result.p_value == 1.0


def test_a_model_right_on_60_more_of_1000_videos_and_never_worse_is_significant():
    weaker = np.zeros(1000, dtype=bool)
    weaker[:700] = True
    stronger = weaker.copy()
    stronger[700:760] = True
    result = compare_on_videos(stronger, weaker, n_resamples=1000)
    assert result.difference == pytest.approx(0.06)
    assert (result.only_a_right, result.only_b_right) == (60, 0)
    assert result.p_value == exact_mcnemar(60, 0) == 2 * 0.5**60
    assert 0.0 < result.ci_low < 0.06 < result.ci_high
    assert significance(result.p_value) == "significant at 0.05"


def test_a_small_mixed_difference_is_not_significant():
    a = np.zeros(300, dtype=bool)
    a[:180] = True
    b = a.copy()
    b[:10] = False  # a alone right on 10 videos
    b[180:188] = True  # b alone right on 8
    result = compare_on_videos(a, b, n_resamples=1000)
    assert result.difference == pytest.approx(2 / 300)
    # the exact two-sided binomial test of 10 vs 8, to the last bits: the chi-square approximation
    # (0.8137 with continuity correction) is 8e-4 away, more than any slack a test could allow
    assert result.p_value == pytest.approx(exact_mcnemar(10, 8), rel=1e-12, abs=0)
    assert result.ci_low < 0.0 < result.ci_high
    assert significance(result.p_value) == "not significant at 0.05"


@pytest.mark.parametrize(
    ("true_accuracy", "videos"),
    [pytest.param(*case, marks=pytest.mark.slow) for case in [(0.7, 400), (0.99, 400), (0.98, 235), (0.999, 3783)]],
)
def test_one_runs_interval_covers_the_true_accuracy_about_95_percent_of_the_time(true_accuracy, videos):
    # 0.98 on 235 videos is a good run on the synthetic data's test split: about 1% of such runs get every
    # video right, where a bootstrap interval is [1, 1] and misses. Clopper-Pearson never covers less than
    # 95%; it is conservative, covering 96-97% in these four cases.
    rng = np.random.default_rng(123)
    draws = 1000
    covered = 0
    for _ in range(draws):
        estimate = accuracy_with_ci(rng.random(videos) < true_accuracy)
        covered += estimate.ci_low <= true_accuracy <= estimate.ci_high
    assert 0.94 <= covered / draws <= 0.99


@pytest.mark.parametrize(
    ("right", "videos", "low", "high"),
    [
        (0, 20, 0.0, 0.1684),  # the rule of three's exact form: 1 - 0.025 ** (1 / 20)
        (20, 20, 0.8316, 1.0),
        (8, 10, 0.4439, 0.9748),  # Clopper and Pearson's interval, as tabulated
        (1, 1, 0.025, 1.0),
        (0, 1, 0.0, 0.975),
    ],
)
def test_one_runs_interval_is_clopper_pearson_and_not_zero_width_at_the_edges(right, videos, low, high):
    correct = np.arange(videos) < right
    np.random.default_rng(0).shuffle(correct)
    estimate = accuracy_with_ci(correct)
    assert (estimate.videos, estimate.accuracy) == (videos, right / videos)
    assert estimate.ci_low == pytest.approx(low, abs=1e-4) and estimate.ci_high == pytest.approx(high, abs=1e-4)
    assert estimate.ci_low <= estimate.accuracy <= estimate.ci_high and estimate.ci_high - estimate.ci_low > 0.02


def test_all_right_on_the_full_ucf101_test_split_is_a_narrow_interval_below_100():
    estimate = accuracy_with_ci(np.ones(3783, dtype=bool))
    assert estimate.ci_high == 1.0 and estimate.ci_low == pytest.approx(0.025 ** (1 / 3783))
    assert 0.999 < estimate.ci_low < 1.0


def test_one_run_needs_outcomes():
    with pytest.raises(ValueError, match="at least one outcome"):
        accuracy_with_ci(np.array([], dtype=bool))


def test_paired_bootstrap_is_reproducible_for_a_seed_and_brackets_the_difference():
    rng = np.random.default_rng(5)
    a, b = rng.random(300) < 0.6, rng.random(300) < 0.5
    first = compare_on_videos(a, b, n_resamples=1000, seed=3)
    assert first == compare_on_videos(a, b, n_resamples=1000, seed=3)
    assert first.ci_low < first.difference < first.ci_high
    assert first.videos == 300
    # one run right on every video the other got wrong: every resampled difference is +1, an interval
    # of one point instead of scipy's NaN
    assert bootstrap_mean_ci(np.ones(50)) == (1.0, 1.0)


def test_paired_runs_t_test_and_interval():
    result = compare_over_runs([0.80, 0.82, 0.85, 0.79], [0.70, 0.75, 0.74, 0.72])
    assert result.runs == 4 >= MIN_RUNS_TO_CONCLUDE
    assert result.mean_difference == pytest.approx(0.0875)
    assert result.p_value < 0.01
    assert result.ci_low < 0.0875 < result.ci_high


def test_paired_runs_too_few_or_without_spread_give_no_p_value():
    single = compare_over_runs([0.8], [0.7])
    assert single.runs == 1 < MIN_RUNS_TO_CONCLUDE and np.isnan(single.p_value)
    constant = compare_over_runs([0.625, 0.75, 0.5], [0.5, 0.625, 0.375])
    assert constant.std_difference == 0.0 and np.isnan(constant.p_value)  # every difference equal
    assert constant.mean_difference == pytest.approx(0.125)


def test_holm_adjustment_skips_untested_comparisons():
    adjusted = holm_adjusted([0.01, float("nan"), 0.04])
    assert adjusted[0] == pytest.approx(0.02) and adjusted[2] == pytest.approx(0.04)
    assert np.isnan(adjusted[1])


def test_holm_adjustment_is_the_step_down_by_hand():
    # sorted 0.01, 0.03, 0.04, 0.5 times 4, 3, 2, 1: 0.04, 0.09, 0.08 -> 0.09 (never below an earlier one),
    # 0.5; and a p that the multiplier would push past 1 stays at 1
    adjusted = holm_adjusted([0.03, 0.5, 0.01, 0.04])
    assert adjusted == pytest.approx([0.09, 0.5, 0.04, 0.09], rel=1e-12)
    assert holm_adjusted([0.6, 0.7]) == [1.0, 1.0]
    assert np.isnan(holm_adjusted([float("nan")])[0])


@pytest.mark.parametrize(
    ("p", "text"),
    [(0.0001, "p < 0.001"), (0.0123, "p = 0.012"), (0.0496, "p = 0.0496"), (0.11, "p = 0.11"), (1.0, "p = 1")],
)
def test_p_values_read_as_a_person_writes_them(p, text):
    assert format_p(p) == text


def test_bootstrap_of_one_value_or_of_none():
    assert bootstrap_mean_ci([0.25]) == (0.25, 0.25)
    with pytest.raises(ValueError, match="^bootstrap_mean_ci needs at least one value$"):
        bootstrap_mean_ci([])


def test_paired_videos_use_the_seed_and_resamples_asked_for_and_default_to_seed_0():
    rng = np.random.default_rng(9)
    a, b = rng.random(120) < 0.6, rng.random(120) < 0.5
    differences = a.astype(float) - b.astype(float)
    asked = compare_on_videos(a, b, n_resamples=300, seed=4)
    assert (asked.ci_low, asked.ci_high) == bootstrap_mean_ci(differences, n_resamples=300, seed=4)
    assert (asked.accuracy_a, asked.accuracy_b) == (a.mean(), b.mean())
    assert bootstrap_mean_ci(differences) == bootstrap_mean_ci(differences, n_resamples=2000, seed=0)
    default = compare_on_videos(a, b)
    assert (default.ci_low, default.ci_high) == bootstrap_mean_ci(differences, n_resamples=2000, seed=0)


def test_paired_videos_take_outcomes_as_numbers_too_and_refuse_other_shapes():
    result = compare_on_videos([1.0, 0.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0])  # 0/1 columns read from a CSV
    assert (result.only_a_right, result.only_b_right, result.difference) == (2, 1, 0.25)
    with pytest.raises(ValueError, match=r"two 1-D arrays of one length, got shapes \(2, 2\) and \(2, 2\)"):
        compare_on_videos(np.ones((2, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"got shapes \(3,\) and \(2,\)"):
        compare_on_videos([1, 0, 1], [1, 0])


def test_paired_runs_report_every_field_and_refuse_other_shapes():
    a, b = [0.80, 0.82, 0.85, 0.79], [0.70, 0.75, 0.74, 0.72]
    result = compare_over_runs(a, b)
    assert result.std_difference == pytest.approx(np.std(np.subtract(a, b), ddof=1), rel=1e-12)
    single = compare_over_runs([0.8], [0.7])
    assert single.mean_difference == pytest.approx(0.1)
    assert all(np.isnan(x) for x in (single.std_difference, single.ci_low, single.ci_high, single.p_value))
    constant = compare_over_runs([0.625, 0.75], [0.5, 0.625])
    assert constant.std_difference == 0.0 and np.isnan(constant.ci_low) and np.isnan(constant.ci_high)
    for bad in (([0.5, 0.6], [0.5]), ([[0.5]], [[0.5]]), ([], [])):
        with pytest.raises(ValueError, match="two non-empty 1-D arrays of one length"):
            compare_over_runs(*bad)


def test_significance_is_strictly_below_alpha():
    assert significance(0.05) == "not significant at 0.05"
    assert significance(0.0499) == "significant at 0.05"


@pytest.mark.parametrize(
    ("p", "text"), [(0.001, "p = 0.001"), (0.995, "p = 1"), (0.1, "p = 0.10"), (0.5, "p = 0.50"), (0.0999, "p = 0.1")]
)
def test_p_values_at_the_boundaries_of_their_wording(p, text):
    assert format_p(p) == text


def test_one_runs_interval_at_another_confidence():
    from scipy.stats import beta

    estimate = accuracy_with_ci(np.arange(10) < 8, confidence=0.9)
    assert estimate.ci_low == pytest.approx(beta.ppf(0.05, 8, 3), rel=1e-9)
    assert estimate.ci_high == pytest.approx(beta.ppf(0.95, 9, 2), rel=1e-9)
