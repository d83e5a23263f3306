"""The published protocol (protocol=paper) and training on the whole trainlist, without validation."""

from __future__ import annotations

import csv
import json

import pytest

from tests.conftest import run_train, tiny_overrides

FAST = ["model=x3d_xs", "logger=csv", "data.batch_size=4", "trainer.max_epochs=2"]


def results(run_dir):
    return json.loads((run_dir / "results.json").read_text())


@pytest.mark.parametrize(
    "model, frames, stride",
    [("x3d_m", 16, 5), ("slowfast", 32, 2)],  # X3D-M 16 x 5; SlowFast R50 8x8: 32 fast frames x 2
)
def test_paper_protocol_is_the_pretraining_sampling_the_whole_trainlist_and_10x3_full_short_side_views(
    compose_config, model, frames, stride
):
    cfg = compose_config(["protocol=paper", f"model={model}", "data=ucf101", "data.root=/data/ucf101"])
    assert (cfg.frames, cfg.data.frames, cfg.data.stride) == (frames, frames, stride)
    assert cfg.data.val_groups_per_class == 0
    assert cfg.callbacks.early_stopping is None and cfg.callbacks.model_checkpoint is None
    assert (cfg.test.temporal_views, cfg.test.spatial_crops) == (10, 3)
    assert cfg.data.short_side == 256 and cfg.test.crop_size == cfg.data.test_crop_size == 256
    assert cfg.data.crop_size == 224, "training crops stay 224"
    assert cfg.run_name == f"{model}-{frames}f-split1"


def test_the_seed_protocol_stays_the_default(compose_config):
    cfg = compose_config(["data=ucf101", "data.root=/data/ucf101", "frames=16"])
    assert cfg.protocol.name == "seed"
    assert (cfg.data.stride, cfg.data.val_groups_per_class, cfg.test.crop_size) == (4, 3, 224)
    assert cfg.callbacks.early_stopping.monitor == "val/top1"


def test_no_validation_set_with_early_stopping_is_a_config_error_before_training(
    train_in_process, tiny_dataset, cache_dir, tmp_path
):
    from ar_experiments.config.checks import ConfigError

    # the demo's recipe trains without early stopping (conf/experiment/demo.yaml): put the default one back
    early_stopping = "callbacks.early_stopping={_target_:pytorch_lightning.callbacks.EarlyStopping,monitor:val/top1}"
    overrides = [*tiny_overrides(cache_dir), *FAST, early_stopping, "data.val_groups_per_class=0"]
    with pytest.raises(ConfigError) as error:
        train_in_process(overrides, tmp_path)
    assert (
        "callbacks.early_stopping watches val/top1, but data.val_groups_per_class=0 leaves no validation set; "
        "pass callbacks.early_stopping=null (protocol=paper does)" in str(error.value)
    )
    assert "callbacks.model_checkpoint watches val/top1" in str(error.value)
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.slow
def test_paper_protocol_trains_on_the_whole_trainlist_and_tests_the_last_epoch(tiny_dataset, cache_dir, tmp_path):
    from ar_experiments.data.splits import load_split

    run_dir = tmp_path / "run"
    result = run_train(
        [
            *tiny_overrides(cache_dir),
            *FAST,
            "protocol=paper",
            "trainer.limit_train_batches=1.0",
            "trainer.limit_test_batches=1.0",
            f"hydra.run.dir={run_dir}",
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = results(run_dir)
    assert record["status"] == "completed" and record["protocol"] == "paper"
    assert (record["frames"], record["stride"]) == (4, 12), "X3D-XS's pretraining sampling"
    assert record["epochs"] == 2 and record["best_val_acc"] is None and record["val_videos"] == 0
    assert record["best_checkpoint"].endswith("checkpoints/last.ckpt")
    assert record["test_views"] == 30
    with open(run_dir / "csv" / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert not any(key.startswith("val/") and row[key] for row in rows for key in row), "no validation ran"
    assert [float(row["train/clips"]) for row in rows if row.get("train/clips")] == [54.0, 54.0]
    index = load_split(tiny_dataset, 1)
    assert len(index.train) == 54, "the whole trainlist: 18 groups of each of 3 classes"
    assert record["test_videos"] == len(index.test)
