"""The paired bootstrap in memory linear in the test set (issue 18, item 1), same intervals as scipy's."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from scipy import stats

from ar_experiments.report.stats import bootstrap_mean_ci, compare_on_videos


def scipy_bca(values, n_resamples, seed):
    """The reference: scipy's vectorised BCa without `batch`, every resample in memory at once."""
    result = stats.bootstrap(
        (values,), np.mean, n_resamples=n_resamples, vectorized=True, rng=np.random.default_rng(seed)
    )
    return result.confidence_interval.low, result.confidence_interval.high


@pytest.mark.parametrize("n,seed", [(2, 0), (9, 1), (57, 2), (400, 3), (1500, 4)])
@pytest.mark.parametrize("kind", ["paired outcomes", "real values"])
def test_same_interval_as_scipys_bca_for_the_same_seed(n, seed, kind):
    rng = np.random.default_rng(100 + n)
    if kind == "paired outcomes":
        values = (rng.random(n) < 0.7).astype(float) - (rng.random(n) < 0.6).astype(float)
        values[:2] = [1.0, 0.0]  # never all equal
    else:
        values = rng.normal(0.1, 1.0, n)
    assert bootstrap_mean_ci(values, n_resamples=1000, seed=seed) == pytest.approx(
        scipy_bca(values, 1000, seed), abs=1e-12
    )


@pytest.mark.slow  # measures peak memory at two test-set sizes
def test_memory_stays_flat_as_the_test_set_grows():
    """6,000 paired videos took ~800 MB in scipy's bootstrap (its jackknife is n x n); 30,000 took 15.6 GB."""
    for videos in (6_000, 30_000):  # checked in this order: the old code stops at the first, before taking GBs
        rng = np.random.default_rng(0)
        right_a, right_b = rng.random(videos) < 0.8, rng.random(videos) < 0.78
        tracemalloc.start()
        compare_on_videos(right_a, right_b, n_resamples=2000, seed=0)
        peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        assert peak_mb < 100, f"{videos} paired videos took {peak_mb:.0f} MB"
