"""The sweep report on fake sweep folders whose numbers are known."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from matplotlib.image import imread

from ar_experiments.report.cli import main
from ar_experiments.report.sweep_results import Sweep
from tests.conftest import REPO

VIDEOS = 200
CLASSES = ["Grow", "MoveLeft", "MoveRight", "Shrink"]
FAST = ["--resamples", "1000"]


def write_job(
    sweep: Path,
    num: int,
    model: str,
    frames: int,
    split: int = 1,
    *,
    seed: int = 0,
    right: int | None = None,
    status: str = "completed",
    error: str | None = None,
    extra_overrides: tuple[str, ...] = (),
    best_val: float = 0.5,
    gflops: float | None = None,
    results: bool = True,
    left_out: tuple[int, ...] | None = None,
) -> Path:
    """One job folder as train() leaves it; `right` = the first `right` test videos are classified right.

    `left_out`: the test videos the run could not read and left out (not in its predictions, counted in
    results.json); None writes a results.json from before runs counted their test videos.
    """
    job = sweep / f"{num}-{model}-{frames}f-split{split}"
    (job / ".hydra").mkdir(parents=True)
    overrides = [f"model={model}", f"frames={frames}", f"split={split}", f"seed={seed}", *extra_overrides]
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (job / "train.log").write_text("[INFO] - epoch 0 started\n[INFO] - epoch 1 started\n")
    if not results:
        return job
    record = {
        "status": status,
        "run_name": f"{model}-{frames}f-split{split}",
        "model": model,
        "frames": frames,
        "stride": 8,
        "split": split,
        "seed": seed,
        "git_commit": "0123456789abcdef",
        "git_dirty": False,
        "versions": {"torch": "2.14.1"},
        "params": 3_800_000 if model == "x3d_m" else 33_700_000,
    }
    if status == "failed":
        record["error"] = error
    else:
        evaluated = [i for i in range(VIDEOS) if i not in (left_out or ())]
        accuracy = sum(i < right for i in evaluated) / len(evaluated)
        record.update(
            epochs=3,
            best_val_acc=best_val,
            test_top1=accuracy,
            test_top5=min(1.0, accuracy + 0.1),
            test_top1_multiview=accuracy,
            test_top5_multiview=min(1.0, accuracy + 0.1),
            test_mean_class_acc=accuracy,
            test_views=1,
            train_seconds=12.5 * frames,
            train_clips_per_s=(400 if model == "x3d_m" else 150) / frames,
        )
        if gflops is not None:
            record["gflops"] = gflops
        if left_out is not None:
            record.update(test_videos=len(evaluated), skipped_test_videos=len(left_out))
        write_predictions(job, split, right, left_out or ())
        write_metrics(job, [0.3, best_val - 0.1, best_val])
    (job / "results.json").write_text(json.dumps(record))
    return job


def write_predictions(job: Path, split: int, right: int, left_out: tuple[int, ...] = ()) -> None:
    labels = np.arange(VIDEOS) % len(CLASSES)
    predicted = np.where(np.arange(VIDEOS) < right, labels, (labels + 1) % len(CLASSES))
    table = pd.DataFrame(
        {
            # a run's rows are in its own order: matching must go by the video column
            "video": [f"{CLASSES[c]}/v_{CLASSES[c]}_g{split:02d}_c{i:03d}.avi" for i, c in enumerate(labels)],
            "label": labels,
            "label_name": [CLASSES[c] for c in labels],
            "predicted": predicted,
            "predicted_name": [CLASSES[c] for c in predicted],
            "top5": ["0 1 2 3"] * VIDEOS,
            "prob_true": 0.5,
            "prob_predicted": 0.6,
            "views": 1,
        }
    ).drop(index=list(left_out))
    table.sample(frac=1.0, random_state=split).to_csv(job / "test_predictions.csv", index=False)


def write_metrics(job: Path, val_top1: list[float]) -> None:
    """csv/metrics.csv as Lightning's CSVLogger writes it: a val row and a train row per epoch."""
    rows = []
    for epoch, value in enumerate(val_top1):
        rows.append({"epoch": epoch, "step": epoch, "val/loss": 1.0, "val/top1": value})
        rows.append({"epoch": epoch, "step": epoch, "train/loss": 1.2, "train/top1": value - 0.05})
    (job / "csv").mkdir()
    pd.DataFrame(rows, columns=["epoch", "step", "train/loss", "train/top1", "val/loss", "val/top1"]).to_csv(
        job / "csv" / "metrics.csv", index=False
    )


# Videos right per (model, frames) on splits 1, 2, 3. slowfast-16f is right on every video
# x3d_m-16f is right on, plus 30 more (34, 38 on splits 2 and 3): McNemar's p is below 0.001.
RIGHT = {
    ("slowfast", 16): [150, 154, 158],
    ("x3d_m", 16): [120, 120, 120],
    ("slowfast", 8): [140, 141, 142],
    ("x3d_m", 8): [118, 122, 124],
}


@pytest.fixture
def grid_sweep(tmp_path) -> Path:
    """2 models x 2 frames x 3 splits, then a failed job and one that never wrote results.json."""
    sweep = tmp_path / "multirun" / "2025-01-31" / "12-00-00"
    num = 0
    for split in (1, 2, 3):
        for (model, frames), right in RIGHT.items():
            write_job(sweep, num, model, frames, split, right=right[split - 1])
            num += 1
    write_job(sweep, num, "slowfast", 32, 1, status="failed", error="OutOfMemoryError: CUDA out of memory")
    write_job(sweep, num + 1, "x3d_m", 32, 1, results=False)
    return sweep


def test_report_files_tables_and_plots(grid_sweep, capsys):
    assert main([str(grid_sweep), *FAST]) == 0
    markdown = (grid_sweep / "report.md").read_text()

    # the run table: every job, finished or not, with its accuracies in percent and the interval
    # (Clopper-Pearson for 150 of 200: the 2.5% quantile of Beta(150, 51), the 97.5% of Beta(151, 50))
    assert "| 0-slowfast-16f-split1 | completed | 75.0 | 75.0 | 68.4 to 80.8 |" in markdown
    assert "Clopper-Pearson" in markdown
    # results.json files from before runs counted their test videos: no column for them
    assert "test videos |" not in markdown.split("## By model")[0]
    assert "| 12-slowfast-32f-split1 | failed |" in markdown
    assert "| 13-x3d_m-32f-split1 | unfinished |" in markdown

    # by model and frames, best first, mean ± std over the three splits
    summary = markdown.split("## By model and frames")[1].split("## Comparisons")[0]
    rows = [line for line in summary.splitlines() if line.startswith("| ") and "setting" not in line]
    assert [row.split(" | ")[0] for row in rows] == ["| slowfast-16f", "| slowfast-8f", "| x3d_m-8f", "| x3d_m-16f"]
    assert rows[0].startswith("| slowfast-16f | 77.0 ± 2.0 |") and rows[0].endswith("| 3 | 1, 2, 3 |")

    # one line per comparison that a person can paste
    assert (
        "- slowfast-16f vs x3d_m-16f, split 1, 200 test videos: +15.0 points [95% CI +10." in markdown
        and "McNemar p < 0.001 (30 vs 0 discordant videos): significant at 0.05" in markdown
    )
    assert "- slowfast-16f vs x3d_m-16f over splits 1, 2, 3: mean difference +17.0 points (sd 2.0)" in markdown
    assert "x3d_m-8f vs x3d_m-16f over splits 1, 2, 3: mean difference +0.7 points (sd 1.5)" in markdown
    assert "Holm-adjusted" in markdown

    # failed and unfinished jobs with their error
    failures = markdown.split("## Failed or unfinished runs")[1]
    assert "| 12-slowfast-32f-split1 | failed | OutOfMemoryError: CUDA out of memory |" in failures
    assert "| 13-x3d_m-32f-split1 | unfinished | no results.json" in failures
    assert "last log line: [INFO] - epoch 1 started" in failures

    # the run table goes to stdout too
    out = capsys.readouterr().out
    assert "| 0-slowfast-16f-split1 | completed |" in out and "Wrote report.md" in out

    assert not list(grid_sweep.glob(".*.tmp")), "atomic writes left temporary files behind"
    assert "![Test top-1 vs training throughput (clips/s)](top1_vs_cost.png)" in markdown  # no GFLOPs recorded
    for name in ("top1_vs_frames.png", "top1_vs_cost.png", "val_curves.png"):
        assert f"]({name})" in markdown
        image = imread(grid_sweep / name)
        assert image.shape[0] > 400 and image.shape[1] > 600, name
        assert image[..., :3].std() > 0.05, f"{name} is blank"


def test_report_csv_has_every_job_its_overrides_and_the_interval(grid_sweep):
    main([str(grid_sweep), *FAST])
    table = pd.read_csv(grid_sweep / "report.csv").set_index("job")
    assert len(table) == 14
    first = table.loc["0-slowfast-16f-split1"]
    assert first["test_top1"] == 0.75 and first["override.model"] == "slowfast" and first["versions.torch"] == "2.14.1"
    assert first["predictions_videos"] == VIDEOS and first["predictions_top1"] == 0.75
    assert table["test_videos"].isna().all()  # these results.json files do not count their test videos
    assert first["predictions_top1_ci_low"] < 0.75 < first["predictions_top1_ci_high"]
    assert table.loc["12-slowfast-32f-split1", "error"] == "OutOfMemoryError: CUDA out of memory"
    assert table.loc["13-x3d_m-32f-split1", "status"] == "unfinished"

    comparisons = pd.read_csv(grid_sweep / "comparisons.csv")
    on_videos = comparisons[comparisons["kind"] == "videos"]
    # 2 frames x 3 splits model pairs, 2 models x 3 splits frames pairs
    assert len(on_videos) == 12 and len(comparisons) == 16
    row = on_videos[(on_videos["a"] == "slowfast-16f") & (on_videos["b"] == "x3d_m-16f")].iloc[0]
    assert row["difference"] == pytest.approx(0.15) and row["only_a_right"] == 30 and row["only_b_right"] == 0
    assert row["p_value"] < 0.001 and row["p_holm"] >= row["p_value"]


def test_runs_that_evaluated_different_videos_are_compared_on_the_videos_both_evaluated(tmp_path):
    sweep = tmp_path / "skips"
    write_job(sweep, 0, "slowfast", 8, right=150, left_out=())
    # x3d_m-8f could not read videos 130 and 131: slowfast-8f got both right, x3d_m-8f would have got both wrong
    write_job(sweep, 1, "x3d_m", 8, right=120, left_out=(130, 131))
    write_job(sweep, 2, "x3d_m", 16, right=110)  # an older results.json, without the counts
    main([str(sweep), *FAST])

    comparisons = pd.read_csv(sweep / "comparisons.csv")
    row = comparisons[(comparisons["a"] == "slowfast-8f") & (comparisons["b"] == "x3d_m-8f")].iloc[0]
    # over the 198 shared videos: slowfast-8f right on 148, x3d_m-8f on 120, and 28 (not 30) discordant
    assert row["n"] == 198 and (row["videos_a"], row["videos_b"]) == (200, 198)
    assert (row["only_a_right"], row["only_b_right"]) == (28, 0)
    assert row["accuracy_a"] == pytest.approx(148 / 198) and row["accuracy_b"] == pytest.approx(120 / 198)
    assert row["difference"] == pytest.approx(28 / 198)
    assert row["sentence"].startswith("slowfast-8f vs x3d_m-8f, split 1, 198 test videos: +14.1 points [95% CI")
    assert row["sentence"].endswith("McNemar p < 0.001 (28 vs 0 discordant videos): significant at 0.05")

    markdown = (sweep / "report.md").read_text()
    assert (
        "Runs that evaluated different test videos are compared on the videos both evaluated: "
        "slowfast-8f vs x3d_m-8f, split 1: 198 shared (slowfast-8f evaluated 200, x3d_m-8f 198); "
        "x3d_m-8f vs x3d_m-16f, split 1: 198 shared (x3d_m-8f evaluated 198, x3d_m-16f 200)."
    ) in markdown
    runs = markdown.split("## Runs")[1].split("## By model")[0]
    header = runs.splitlines()[2]
    assert "| top-1 95% CI | test videos | top-5 |" in header
    cells = {
        line.split(" | ")[0][2:]: line.split(" | ")[header.split(" | ").index("test videos")]
        for line in runs.splitlines()[4:]
        if line.startswith("| ")
    }
    assert cells == {"0-slowfast-8f-split1": "200", "1-x3d_m-8f-split1": "198 (2 skipped)", "2-x3d_m-16f-split1": ""}

    table = pd.read_csv(sweep / "report.csv").set_index("job")
    skipping = table.loc["1-x3d_m-8f-split1"]
    assert (skipping["test_videos"], skipping["skipped_test_videos"], skipping["predictions_videos"]) == (198, 2, 198)
    assert skipping["test_top1"] == pytest.approx(120 / 198)
    assert np.isnan(table.loc["2-x3d_m-16f-split1", "test_videos"])
    assert table.loc["2-x3d_m-16f-split1", "predictions_videos"] == VIDEOS


def test_runs_on_the_same_videos_get_no_note_about_them(tmp_path):
    sweep = tmp_path / "even"
    write_job(sweep, 0, "slowfast", 8, right=150, left_out=())
    write_job(sweep, 1, "x3d_m", 8, right=120, left_out=())
    main([str(sweep), *FAST])
    markdown = (sweep / "report.md").read_text()
    assert "slowfast-8f vs x3d_m-8f, split 1, 200 test videos" in markdown
    assert "different test videos" not in markdown and "| 200 |" in markdown


def test_report_of_a_seed_grid_warns_that_two_seeds_are_too_few(tmp_path):
    sweep = tmp_path / "seeds"
    write_job(sweep, 0, "x3d_m", 8, seed=0, right=120)
    write_job(sweep, 1, "x3d_m", 8, seed=1, right=125)
    write_job(sweep, 2, "slowfast", 8, seed=0, right=130)
    write_job(sweep, 3, "slowfast", 8, seed=1, right=140)
    main([str(sweep), *FAST])
    markdown = (sweep / "report.md").read_text()
    assert "slowfast-8f vs x3d_m-8f, split 1, seed 0, 200 test videos: +5.0 points" in markdown
    assert (
        "slowfast-8f vs x3d_m-8f over seeds 0, 1: mean difference +6.2 points (sd 1.8)" in markdown
        and "2 matched runs are too few to conclude anything" in markdown
    )
    assert "| slowfast-8f | 67.5 ± 3.5 | " in markdown and "| seeds |" in markdown


def test_report_of_an_optuna_sweep_names_the_best_trial_and_plots_the_history(tmp_path):
    sweep = tmp_path / "hpo"
    for trial, (lr, val) in enumerate([(0.01, 0.40), (0.003, 0.55), (0.0012345678, 0.62), (0.03, 0.35)]):
        write_job(sweep, trial, "x3d_m", 8, right=100 + trial, best_val=val, extra_overrides=(f"optimizer.lr={lr}",))
    write_job(sweep, 4, "x3d_m", 8, status="failed", error="ValueError: lr too high")
    best = {"name": "optuna", "best_params": {"optimizer.lr": 0.0012345678}, "best_value": 0.62}
    (sweep / "optimization_results.yaml").write_text(yaml.safe_dump(best))
    main([str(sweep), *FAST])
    markdown = (sweep / "report.md").read_text()
    assert "Best trial: `2-x3d_m-8f-split1`, objective 62.0 (best validation top-1, %), with optimizer.lr=0.001235" in (
        markdown
    )
    assert "![Optuna optimisation history](optuna_history.png)" in markdown
    assert imread(sweep / "optuna_history.png")[..., :3].std() > 0.05
    # the learning rate is what distinguishes the trials, and trials are not tested against each other
    assert "| x3d_m-8f optimizer.lr=0.001235 |" in markdown
    assert pd.read_csv(sweep / "comparisons.csv").empty


def test_gflops_when_every_run_has_them(tmp_path):
    sweep = tmp_path / "flops"
    write_job(sweep, 0, "x3d_m", 16, right=120, gflops=6.2)
    write_job(sweep, 1, "slowfast", 16, right=150, gflops=65.7)
    main([str(sweep), *FAST])
    markdown = (sweep / "report.md").read_text()
    assert "| params | GFLOPs |" in markdown and "| 33.70M | 65.7 |" in markdown
    assert "![Test top-1 vs GFLOPs per view](top1_vs_cost.png)" in markdown


def test_report_of_a_sweep_that_has_only_just_started(tmp_path):
    sweep = tmp_path / "starting"
    write_job(sweep, 0, "x3d_m", 8, results=False)
    main([str(sweep), *FAST])
    markdown = (sweep / "report.md").read_text()
    assert "1 jobs (1 unfinished)" in markdown and "No completed runs yet." in markdown
    assert not list(sweep.glob("*.png"))


def test_unreadable_predictions_are_a_note_not_a_crash(tmp_path):
    sweep = tmp_path / "odd"
    job = write_job(sweep, 0, "x3d_m", 8, right=120)
    (job / "test_predictions.csv").write_text("video,guess\na.avi,1\n")
    main([str(sweep), *FAST])
    assert "lacks the column(s) ['label', 'predicted']" in (sweep / "report.md").read_text()


def test_jobs_are_read_in_job_order_and_helper_folders_are_skipped(grid_sweep):
    (grid_sweep / ".submitit").mkdir()
    (grid_sweep / "notes").mkdir()
    names = [job.name for job in Sweep.read(grid_sweep).jobs]
    assert names[:3] == ["0-slowfast-16f-split1", "1-x3d_m-16f-split1", "2-slowfast-8f-split1"]
    assert len(names) == 14


def test_cli_latest_reports_the_newest_sweep(grid_sweep, tmp_path, monkeypatch, capsys):
    older = tmp_path / "multirun" / "2025-01-30" / "23-59-59"
    write_job(older, 0, "x3d_m", 8, right=100)
    monkeypatch.chdir(tmp_path)
    assert main(["--latest", *FAST]) == 0
    assert (grid_sweep / "report.md").is_file() and not (older / "report.md").exists()
    assert "| 0-slowfast-16f-split1 | completed | 75.0 |" in capsys.readouterr().out


@pytest.mark.slow  # the real command in a subprocess
def test_cli_explains_a_missing_sweep(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "ar_experiments.report", "--latest"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=300,
    )
    assert result.returncode == 2
    assert "no sweep folder multirun/<date>/<time>" in result.stderr and "make sweep" in result.stderr
