"""A sweep's console carries the sweep's lines, not each job's test table or libraries' warnings."""

from __future__ import annotations

import pytest

from tests.conftest import run_train, tiny_overrides

# what each job used to print on the console that its jobs share
PER_JOB_NOISE = {
    "Lightning's test table": "Test metric",
    "W&B's anonymous-setting warning": "anonymous setting",
    "the pytree deprecation warning": "LeafSpec",
    "Lightning's on_after_batch_transfer warning": "on_after_batch_transfer",
}


@pytest.mark.slow  # a real two-job joblib sweep with the default loggers (W&B offline and CSV)
def test_a_parallel_sweeps_console_holds_its_progress_lines_and_each_job_keeps_its_details(
    tiny_dataset, cache_dir, tmp_path
):
    sweep = tmp_path / "sweep"
    args = ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "split=1,2", f"hydra.sweep.dir={sweep}"]
    result = run_train([*args, *tiny_overrides(cache_dir), "model=x3d_xs", "frames=4"], wandb_mode="offline")
    assert result.returncode == 0, result.stderr[-3000:]
    console = result.stdout + result.stderr
    assert "[2/2] x3d_xs-4f-split" in console
    leaked = [name for name, text in PER_JOB_NOISE.items() if text in console]
    assert not leaked, f"reached the sweep's console: {leaked}\n{console[-3000:]}"
    for log in sorted(sweep.glob("*/train.log")):
        text = log.read_text()
        assert "test: test/mean_class_acc" in text and "test/top1 " in text, f"{log} lacks the test metrics"
        assert "on_after_batch_transfer" in text, f"{log} lacks the libraries' warnings"
