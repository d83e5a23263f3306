"""Hours the seed's grid would take on real UCF101, from the bench's measured rates.

One run (split 1 sizes; the other splits are within 1% of them):

    run_s = epochs * (train_videos / fit_clips_per_s + val_videos / val_clips_per_s)
            + test_videos / test_videos_per_s + compile_s

train_videos is the trainlist less the held-out validation groups (9,537 - ~1,590),
one clip per video per epoch; validation is one central clip per video each epoch;
the test is the multi-view pass of `trainer.test` (10 temporal x 3 spatial views on
UCF101) measured as videos/s; compile_s is paid once per run (a sweep's disk cache
can make it smaller after the first job). The grid is 2 models x 3 frame counts x
3 splits; each model's 9 runs are costed at that model's measured setting, which
for the bench's frames (16 for X3D-M, 32 for SlowFast) is the most expensive of
its grid, so the projection is an upper bound in that respect. Early stopping can
end runs before `epochs`, which would also shorten them.
"""

from __future__ import annotations

# UCF101 split 1: the trainlist (held-out validation groups included), the validation groups
# (3 of 18 per class), the testlist; the grid's epochs and runs (2 models x 3 frame counts x 3 splits)
TRAIN_VIDEOS, VAL_VIDEOS, TEST_VIDEOS = 9537, 1590, 3783
SEED_EPOCHS, SEED_GRID_RUNS = 20, 18


def run_seconds(fit_clips_per_s: float, val_clips_per_s: float, test_videos_per_s: float, compile_s: float) -> float:
    """Seconds of one run: the seed's epochs of training and validation, one multi-view test, one compile."""
    per_epoch = (TRAIN_VIDEOS - VAL_VIDEOS) / fit_clips_per_s + VAL_VIDEOS / val_clips_per_s
    return SEED_EPOCHS * per_epoch + test_seconds(test_videos_per_s) + compile_s


def test_seconds(test_videos_per_s: float) -> float:
    """Seconds of one run's multi-view test."""
    return TEST_VIDEOS / test_videos_per_s


def grid_hours(run_seconds_by_model: dict[str, float]) -> float:
    """Hours of the grid's runs, one after another on one GPU, shared evenly among the measured models.

    With both models measured, each runs 9 times at its own rate; with one (the CPU bench), all 18 at its rate.
    """
    if not run_seconds_by_model:
        raise ValueError("no model was measured")
    return sum(run_seconds_by_model.values()) * SEED_GRID_RUNS / len(run_seconds_by_model) / 3600
