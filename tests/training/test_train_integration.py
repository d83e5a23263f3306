"""Runs shrunk to a few batches: through the real command line (slow), and in this process."""

import json
import subprocess

import pytest

from tests import conftest
from tests.conftest import SMALLEST_RUN, tiny_overrides


def run_train(args: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    return conftest.run_train(args, wandb_mode="offline", timeout=timeout)  # these tests read the W&B runs


@pytest.mark.slow
def test_help_and_cfg_job_work():
    help_text = run_train(["--help"])
    assert help_text.returncode == 0 and "model: slowfast, x3d_l, x3d_m" in help_text.stdout
    job = run_train(["--cfg", "job", "--resolve", "model=slowfast", "frames=16"])
    assert job.returncode == 0
    assert "name: slowfast" in job.stdout and "frames: 16" in job.stdout and "stride: 4" in job.stdout


@pytest.mark.slow
def test_two_job_multirun_writes_results_and_separate_wandb_runs(tiny_dataset, cache_dir, tmp_path):
    sweep = tmp_path / "sweep"
    result = run_train(
        ["-m", "model=x3d_m,slowfast", "frames=6", f"hydra.sweep.dir={sweep}", *tiny_overrides(cache_dir)]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and (p / "results.json").exists())
    assert [p.name for p in jobs] == ["0-x3d_m-6f-split1", "1-slowfast-6f-split1"]
    run_ids = set()
    for job, model in zip(jobs, ["x3d_m", "slowfast"]):
        results = json.loads((job / "results.json").read_text())
        assert results["status"] == "completed"
        assert results["model"] == model and results["frames"] == 6 and results["split"] == 1
        for key in ("best_val_acc", "test_top1", "test_top5", "test_top1_multiview", "test_mean_class_acc"):
            assert 0.0 <= results[key] <= 1.0, key
        assert results["params"] > 1_000_000 and results["train_clips_per_s"] > 0
        assert results["startup_s"] > 0 and results["peak_rss_mb"] > 0 and results["peak_gpu_mb"] is None  # on CPU
        offline_runs = list((job / "wandb").glob("offline-run-*"))
        assert len(offline_runs) == 1, "each job must have exactly one W&B run of its own"
        run_ids.add(offline_runs[0].name.rsplit("-", 1)[-1])
        assert (job / "csv" / "metrics.csv").is_file()
        assert (job / "checkpoints" / "last.ckpt").is_file()
    assert len(run_ids) == 2


@pytest.mark.slow
def test_wandb_run_is_named_grouped_and_tagged(tiny_dataset, cache_dir, tmp_path):
    sweep = tmp_path / "sweep"
    result = run_train(
        ["-m", "model=x3d_m", "frames=6", "split=2", f"hydra.sweep.dir={sweep}", *tiny_overrides(cache_dir)]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    job = next(sweep.glob("0-*"))
    # the offline run file stores its protobuf records' strings verbatim
    records = next((job / "wandb").glob("offline-run-*/run-*.wandb")).read_bytes()
    for expected in ("x3d_m-6f-split2", str(sweep), "split2", "6f", "x3d_m"):
        assert expected.encode() in records, expected
    # the provenance results.json records is in the W&B config too
    provenance = json.loads((job / "results.json").read_text())
    for expected in ("git_commit", provenance["git_commit"], "pytorch-lightning", provenance["versions"]["torch"]):
        assert expected.encode() in records, expected


def test_bad_override_fails_fast_with_the_valid_choices(compose_config):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match=r"(?s)model/resnet50.*options in 'model'.*x3d_m"):
        compose_config(["model=resnet50"])


def test_debug_overfit_trains_the_same_batch_with_the_same_clips_every_epoch(
    train_in_process, tiny_dataset, cache_dir, tmp_path
):
    from tests.training.test_exact_resume import train_batches

    record = [
        "+callbacks.record._target_=tests.recording.RecordTrainingBatches",
        f"+callbacks.record.folder={tmp_path / 'batches'}",
    ]
    shrunk = [o for o in tiny_overrides(cache_dir) if not o.startswith("trainer.")]
    args = [*shrunk, "debug=overfit", "trainer.max_epochs=3", *SMALLEST_RUN, "data.batch_size=2", *record]
    train_in_process([*args, "trainer.limit_test_batches=1", "trainer.enable_progress_bar=false"])
    epochs = train_batches(tmp_path / "batches")
    assert sorted(epochs) == [0, 1, 2] and len(epochs[0][0]) == 2
    assert epochs[0][0] == epochs[1][0] == epochs[2][0]


def test_results_count_every_training_epoch_when_an_earlier_checkpoint_is_tested(
    train_in_process, tiny_dataset, cache_dir, tmp_path
):
    """Testing restores the best checkpoint's callback states: the run's clips and seconds must stay the whole run's."""
    shrunk = [o for o in tiny_overrides(cache_dir) if not o.startswith("trainer.")]
    run = tmp_path / "run"
    args = [
        *shrunk,
        "model=x3d_xs",
        "frames=4",
        "logger=csv",
        "trainer.max_epochs=3",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
        "data.batch_size=2",
        "+callbacks.first_best._target_=tests.recording.FirstEpochBest",
        "callbacks.model_checkpoint.monitor=probe/first_best",
        "callbacks.early_stopping=null",
        "trainer.enable_progress_bar=false",
    ]
    train_in_process(args, run)
    assert [p.name for p in (run / "checkpoints").glob("best-*")] == ["best-epoch00.ckpt"]
    results = json.loads((run / "results.json").read_text())
    assert results["epochs"] == 3
    clips = results["train_seconds"] * results["train_clips_per_s"]
    assert round(clips) == 3 * 2 * 2, results  # 3 epochs of 2 batches of 2 clips, not epoch 0's 4
