"""The training batch sampler's exact batches, its boundaries and its position, in-process (issue 26)."""

import numpy as np
import pytest
from torch.utils.data import DataLoader

from ar_experiments.data.training_batches import ResumableDataLoader, TrainingBatchSampler


def test_each_rank_takes_every_world_size_th_batch_of_the_epochs_seeded_permutation():
    order = np.random.default_rng((3, 2)).permutation(7)  # the permutation from (seed, epoch)
    cut = [[int(i) for i in part] for part in np.array_split(order, 4)]  # 2 ranks x ceil(7 / (2 x 2)) batches
    for rank in (0, 1):
        sampler = TrainingBatchSampler(7, 2, rank=rank, world_size=2, seed=3)
        sampler.set_epoch(2)
        assert len(sampler) == 2
        assert list(sampler) == [[(i, 2) for i in batch] for batch in cut[rank::2]]


def test_as_many_videos_as_rank_batches_is_enough_and_one_fewer_names_the_fix():
    assert [len(batch) for batch in TrainingBatchSampler(2, 8, rank=1, world_size=2, seed=0)] == [1]
    with pytest.raises(ValueError) as refused:
        TrainingBatchSampler(2, 2, rank=0, world_size=3, seed=0)
    assert str(refused.value) == (
        "2 training videos cannot be cut into 3 ranks x 1 non-empty batches of at most data.batch_size=2; "
        "raise data.batch_size or use fewer devices"
    )
    with pytest.raises(ValueError, match="4 training videos cannot be cut into 3 ranks x 2 non-empty batches"):
        TrainingBatchSampler(4, 1, rank=0, world_size=3, seed=0)  # 6 batches of one video each


def test_the_position_starts_at_the_first_batch_and_moves_to_the_next_epoch_after_the_last():
    sampler = TrainingBatchSampler(12, 2, rank=0, world_size=2, seed=0)
    assert sampler.state_dict() == {"epoch": 0, "batches_done": 0, "world_size": 2}
    sampler.batch_done(batches_in_epoch=3)
    sampler.batch_done(batches_in_epoch=3)
    assert sampler.state_dict() == {"epoch": 0, "batches_done": 2, "world_size": 2}
    assert list(sampler) == [[(int(i), 0) for i in batch] for batch in sampler.epoch_batches(0)[2:]]
    sampler.batch_done(batches_in_epoch=3)
    assert sampler.state_dict() == {"epoch": 1, "batches_done": 0, "world_size": 2}
    sampler.set_epoch(4)
    assert sampler.state_dict() == {"epoch": 4, "batches_done": 0, "world_size": 2}


def test_a_mid_epoch_position_under_another_world_size_is_refused_naming_the_fix():
    sampler = TrainingBatchSampler(12, 2, rank=0, world_size=2, seed=0)
    with pytest.raises(ValueError) as refused:
        sampler.load_state_dict({"epoch": 1, "batches_done": 2, "world_size": 3})
    assert str(refused.value) == (
        "the checkpoint stopped in the middle of an epoch with 3 DDP ranks and this run has 2; resume with "
        "trainer.devices x trainer.num_nodes = 3, as it was (an exact resume continues the same batches)"
    )


def test_a_checkpoint_saved_before_the_world_size_was_kept_resumes_mid_epoch_as_it_is():
    sampler = TrainingBatchSampler(12, 2, rank=0, world_size=2, seed=0)
    sampler.load_state_dict({"epoch": 3, "batches_done": 1})
    assert sampler.state_dict() == {"epoch": 3, "batches_done": 1, "world_size": 2}


def test_the_loader_saves_and_restores_its_samplers_position():
    sampler = TrainingBatchSampler(12, 2, rank=0, world_size=1, seed=0)
    loader = ResumableDataLoader(range(12), batch_sampler=sampler, collate_fn=list)
    assert isinstance(loader, DataLoader)
    loader.load_state_dict({"epoch": 2, "batches_done": 4, "world_size": 1})
    assert (sampler.epoch, sampler.batches_done) == (2, 4)
    sampler.batch_done(batches_in_epoch=6)
    assert loader.state_dict() == {"epoch": 2, "batches_done": 5, "world_size": 1}
