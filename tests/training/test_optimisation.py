"""The learning rate's scaling with the batch, and weight averaging (optimizer.average_from_epoch)."""

from __future__ import annotations

import csv
import json
import math

import pytest
import torch

from ar_experiments.training.optimization import WeightAverage, scaled_learning_rate
from tests.conftest import SMALLEST_RUN, run_train, tiny_overrides


def results(run_dir):
    return json.loads((run_dir / "results.json").read_text())


@pytest.mark.parametrize(
    "rule, batch, expected",
    [("linear", 8, 0.01), ("linear", 64, 0.08), ("linear", 4, 0.005), ("sqrt", 32, 0.02), ("none", 64, 0.01)],
)
def test_learning_rate_scales_with_the_effective_batch(rule, batch, expected):
    assert scaled_learning_rate(0.01, rule, 8, batch) == pytest.approx(expected)


def test_an_unknown_scaling_rule_names_the_key():
    with pytest.raises(ValueError, match="optimizer.lr_scaling='cubic'; choose one of none, linear, sqrt"):
        scaled_learning_rate(0.01, "cubic", 8, 16)


def test_weight_average_is_the_mean_of_the_weights_after_each_step_and_swaps_back():
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    average = WeightAverage(net)
    seen = []
    for step in range(4):
        with torch.no_grad():
            net[0].weight.fill_(float(step))
            net[1].running_mean.fill_(10.0 * step)
        seen.append(net[0].weight.clone())
        average.update()
    assert average.count == 4
    torch.testing.assert_close(average.average["0.weight"], torch.stack(seen).mean(0))
    trained = net[0].weight.clone()
    average.swap()
    torch.testing.assert_close(net[0].weight, torch.full_like(trained, 1.5))
    torch.testing.assert_close(net[1].running_mean, torch.full((2,), 15.0))
    assert net[1].num_batches_tracked.dtype == torch.long  # integer buffers are not averaged
    average.swap()
    torch.testing.assert_close(net[0].weight, trained)


def test_the_effective_learning_rate_is_recorded(train_in_process, tiny_dataset, cache_dir, tmp_path):
    train_in_process([*tiny_overrides(cache_dir), *SMALLEST_RUN, "data.batch_size=2"])
    record = results(tmp_path / "run")
    # AdamW's square-root rule from the reference batch of 8 to 2 clips a step
    assert record["lr"] == 2e-3 and record["effective_batch_size"] == 2
    assert record["lr_effective"] == pytest.approx(2e-3 * math.sqrt(2 / 8))


@pytest.mark.slow
def test_averaged_weights_differ_from_the_trained_ones_and_are_what_is_validated_and_tested(
    tiny_dataset, cache_dir, tmp_path, compose_config
):
    import pytorch_lightning as pl
    from hydra.utils import instantiate

    from ar_experiments.safety.safe_load import load_checkpoint
    from ar_experiments.training.module import VideoClassifier

    run_dir = tmp_path / "run"
    overrides = [
        *tiny_overrides(cache_dir),
        *SMALLEST_RUN,
        "optimizer=asgd",
        "optimizer.average_from_epoch=1",
        "trainer.max_epochs=3",
        "trainer.limit_train_batches=4",
        "trainer.limit_val_batches=1.0",
        "trainer.limit_test_batches=1.0",
        "callbacks.early_stopping=null",
        "callbacks.model_checkpoint=null",  # the last epoch's checkpoint is tested: 2 epochs of averaging
    ]
    result = run_train([*overrides, f"hydra.run.dir={run_dir}"])
    assert result.returncode == 0, result.stderr[-3000:]
    record = results(run_dir)
    checkpoint = load_checkpoint(record["best_checkpoint"])
    averaged, trained = checkpoint["state_dict"], checkpoint["weight_averaging"]["trained_state_dict"]
    assert record["best_checkpoint"].endswith("last.ckpt")
    assert checkpoint["weight_averaging"]["count"] == 8  # the 4 steps of epochs 1 and 2
    differing = [
        key for key in averaged if averaged[key].is_floating_point() and not torch.equal(averaged[key], trained[key])
    ]
    assert len(differing) > len(averaged) // 2, "the averaged weights are not the trained ones"

    datamodule = instantiate(compose_config(overrides).data)
    tester = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)

    def tested(state_dict):
        module = VideoClassifier.load_from_checkpoint(record["best_checkpoint"], weights_only=True)
        module.load_state_dict(state_dict)
        metrics = tester.test(module, datamodule=datamodule, verbose=False)[0]
        return metrics, module.test_predictions.predictions()[1]

    with_average, averaged_probabilities = tested(averaged)
    with_trained, trained_probabilities = tested(trained)
    assert not torch.allclose(averaged_probabilities, trained_probabilities)
    assert record["test_top1"] == pytest.approx(with_average["test/top1"])
    with open(run_dir / "test_predictions.csv") as handle:
        written = [float(row["prob_predicted"]) for row in csv.DictReader(handle)]
    assert written == pytest.approx(averaged_probabilities.max(1).values.tolist(), abs=1e-6)
    # validation used them too: the last epoch's val/top1 is the averaged weights' accuracy on the val set
    module = VideoClassifier.load_from_checkpoint(record["best_checkpoint"], weights_only=True)
    validated = tester.validate(module, datamodule=datamodule, verbose=False)[0]
    with open(run_dir / "csv" / "metrics.csv") as handle:
        logged = [float(row["val/top1"]) for row in csv.DictReader(handle) if row.get("val/top1")]
    assert logged[-1] == pytest.approx(validated["val/top1"])
    module.load_state_dict(trained)
    assert tester.validate(module, datamodule=datamodule, verbose=False)[0]["val/loss"] != validated["val/loss"]
