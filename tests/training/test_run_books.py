"""A run stopped by SIGTERM in the middle of an epoch and resumed keeps exact books: the same training time and
clips per second as the run that was never stopped, and the same weights, with gradient accumulation too.

A small network trains through the real Trainer with the project's training loader (training_batches.py) and
callbacks; its steps are slowed so that the time is the steps', as in a real run."""

from __future__ import annotations

import time

import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from ar_experiments.data.training_batches import ResumableDataLoader, TrainingBatchSampler
from ar_experiments.training.callbacks import ResumableTraining, TrainingThroughput
from ar_experiments.training.interruption import GracefulStop
from tests.recording import SignalAtStep

VIDEOS, BATCH_SIZE, EPOCHS = 16, 2, 2  # 8 batches an epoch
STEP_SECONDS = 0.15


class Clips(torch.utils.data.Dataset):
    """Item (video, epoch): fixed features and a label, as the video dataset's items are keyed."""

    def __init__(self):
        generator = torch.Generator().manual_seed(0)
        self.features = torch.randn(VIDEOS, 8, generator=generator)
        self.labels = torch.randint(0, 3, (VIDEOS,), generator=generator)

    def __len__(self):
        return VIDEOS

    def __getitem__(self, key):
        video, _epoch = key
        return {"clip": self.features[video], "label": self.labels[video]}


class SlowNet(pl.LightningModule):
    """Dropout before a linear layer; every step sleeps STEP_SECONDS and records its dropout mask."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(8, 3)
        self.masks: dict[tuple[int, int], torch.Tensor] = {}  # (epoch, batch) -> the batch's dropout mask

    def training_step(self, batch, batch_idx):
        time.sleep(STEP_SECONDS)
        kept = nn.functional.dropout(torch.ones_like(batch["clip"]), p=0.5, training=True)
        self.masks[(self.current_epoch, batch_idx)] = kept != 0
        return nn.functional.cross_entropy(self.linear(batch["clip"] * kept), batch["label"])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


def fit(folder, accumulate: int = 1, stop_at_step: int | None = None, resume: bool = False):
    """Train EPOCHS epochs; (network, throughput). With `stop_at_step`, SIGTERM comes after that optimizer
    step, once the stop has looked at the batch (as a signal arriving while the next batch trains)."""
    torch.manual_seed(0)
    net, throughput = SlowNet(), TrainingThroughput()
    stop = GracefulStop(folder / "last.ckpt").install()
    extra = [SignalAtStep(stop_at_step)] if stop_at_step is not None else []
    sampler = TrainingBatchSampler(VIDEOS, BATCH_SIZE, rank=0, world_size=1, seed=0)
    trainer = pl.Trainer(
        max_epochs=EPOCHS,
        accumulate_grad_batches=accumulate,
        callbacks=[ResumableTraining(seed=0), throughput, stop, *extra],
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    try:
        loader = ResumableDataLoader(Clips(), batch_sampler=sampler)
        trainer.fit(net, train_dataloaders=loader, ckpt_path=folder / "last.ckpt" if resume else None)
    finally:
        stop.restore()
    return net, throughput


def stopped_and_resumed(folder, accumulate: int = 1):
    """SIGTERM after the 2nd optimizer step of the 2nd epoch (its 4th batch), then the same fit resumed from
    the checkpoint of the stop."""
    with pytest.raises(SystemExit):
        fit(folder, accumulate, stop_at_step=8 // accumulate + 4 // accumulate)
    assert torch.load(folder / "last.ckpt", weights_only=False)["epoch"] == 1, "stopped in the 2nd epoch"
    return fit(folder, accumulate, resume=True)


def test_a_run_resumed_mid_epoch_reports_the_uninterrupted_runs_training_time_and_speed(tmp_path):
    _, whole = fit(tmp_path / "whole")
    (tmp_path / "stopped").mkdir()
    _, resumed = stopped_and_resumed(tmp_path / "stopped")
    assert resumed.clips == whole.clips == EPOCHS * VIDEOS
    assert whole.train_seconds >= EPOCHS * 8 * STEP_SECONDS
    assert resumed.train_seconds == pytest.approx(whole.train_seconds, rel=0.15)
    assert resumed.clips_per_second == pytest.approx(whole.clips_per_second, rel=0.15)


def test_the_batches_of_an_accumulated_step_draw_different_dropout_and_a_resume_is_exact(tmp_path):
    whole, _ = fit(tmp_path / "whole", accumulate=2)
    assert len(whole.masks) == EPOCHS * 8
    for epoch in range(EPOCHS):
        for first in range(0, 8, 2):  # the two batches of one optimizer step
            assert not torch.equal(whole.masks[(epoch, first)], whole.masks[(epoch, first + 1)]), (epoch, first)
    (tmp_path / "stopped").mkdir()
    resumed, _ = stopped_and_resumed(tmp_path / "stopped", accumulate=2)
    # the signal came while the 5th batch trained, inside the 3rd step: the stop waited for the step's end
    assert sorted(resumed.masks) == [(1, 6), (1, 7)], "the resumed run trains the epoch's last step"
    for key, mask in resumed.masks.items():
        assert torch.equal(mask, whole.masks[key]), key
    for name, value in whole.state_dict().items():
        assert torch.equal(resumed.state_dict()[name], value), name
