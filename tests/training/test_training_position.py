"""The training position that exact resume rests on, driven batch by batch by a stand-in trainer (no fit):
the callback must move the sampler's position after every batch, so a checkpoint taken mid-epoch resumes at
the next batch, not at the epoch's start (the slow SIGTERM tests in test_exact_resume.py hold it end to end)."""

from types import SimpleNamespace

import torch

from ar_experiments.data.training_batches import ResumableDataLoader, TrainingBatchSampler
from ar_experiments.training.callbacks import ResumableTraining

VIDEOS, BATCH, SEED = 22, 4, 3  # 6 batches an epoch, the last of 2 videos


class Echo(torch.utils.data.Dataset):
    """Item (video, epoch) is the video's number: the batches show which videos were trained, in order."""

    def __getitem__(self, key):
        return key[0]

    def __len__(self):
        return VIDEOS


def loader() -> ResumableDataLoader:
    return ResumableDataLoader(Echo(), batch_sampler=TrainingBatchSampler(VIDEOS, BATCH, 0, 1, SEED))


def fake_trainer(data: ResumableDataLoader, epoch: int, overfit_batches: int = 0) -> SimpleNamespace:
    return SimpleNamespace(
        train_dataloader=data,
        current_epoch=epoch,
        overfit_batches=overfit_batches,
        num_training_batches=len(data),
        global_step=0,
        global_rank=0,
    )


def train(data: ResumableDataLoader, epoch: int, batches: int | None = None, overfit_batches: int = 0) -> list:
    """Run `batches` batches (all by default) of `epoch` through the callback's hooks, as the fit loop does."""
    callback, trainer = ResumableTraining(SEED), fake_trainer(data, epoch, overfit_batches)
    callback.on_train_epoch_start(trainer, None)
    trained = []
    for batch_idx, batch in enumerate(data):
        if batches is not None and batch_idx == batches:
            break
        callback.on_train_batch_start(trainer, None, batch, batch_idx)
        trained.append(batch.tolist())
        callback.on_train_batch_end(trainer, None, None, batch, batch_idx)
    return trained


def test_the_position_advances_after_every_batch_and_a_mid_epoch_checkpoint_resumes_at_the_next_batch():
    whole = loader()
    epochs = [train(whole, 0), train(whole, 1)]
    assert sorted(v for batch in epochs[1] for v in batch) == list(range(VIDEOS)) and epochs[0] != epochs[1]

    stopped = loader()
    train(stopped, 0)
    for done in range(1, 4):  # the saved position moves with each batch of epoch 1
        assert train(stopped, 1, batches=done) == epochs[1][:done]
        assert stopped.state_dict() == {"epoch": 1, "batches_done": done, "world_size": 1}
    resumed = loader()
    resumed.load_state_dict(stopped.state_dict())
    assert list(map(torch.Tensor.tolist, resumed)) == epochs[1][3:], "the rest of epoch 1, in order"


def test_the_epochs_last_batch_moves_the_position_to_the_next_epochs_start():
    data = loader()
    train(data, 0)
    # a checkpoint at the epoch's end starts epoch 1
    assert data.state_dict() == {"epoch": 1, "batches_done": 0, "world_size": 1}


def test_overfitting_trains_the_first_epochs_batches_every_epoch():
    data = loader()
    first = train(data, 0, overfit_batches=2)
    assert train(data, 3, overfit_batches=2) == first


def test_each_training_batch_seeds_dropout_from_seed_epoch_batch_and_rank():
    callback = ResumableTraining(SEED)
    trainer = SimpleNamespace(current_epoch=2, global_step=5, global_rank=1)
    callback.on_train_batch_start(trainer, None, None, 3)
    first = torch.rand(3)
    torch.manual_seed(123)  # whatever drew random numbers before the batch
    trainer.global_step = 9  # the optimiser step does not decide (accumulated batches share it)
    callback.on_train_batch_start(trainer, None, None, 3)
    assert torch.equal(torch.rand(3), first)
    for change in ({"current_epoch": 3}, {"global_rank": 0}):
        moved = SimpleNamespace(**{**vars(trainer), **change})
        callback.on_train_batch_start(moved, None, None, 3)
        assert not torch.equal(torch.rand(3), first), change
    callback.on_train_batch_start(trainer, None, None, 4)
    assert not torch.equal(torch.rand(3), first)
