"""Training batches: every video once per epoch, a new order and new clips each epoch, resumable mid-epoch.

One sampler serves a single process and every DDP rank. Its position (the
epoch, and how many of the epoch's batches are done) is set by the training
loop (ar_experiments.training.callbacks.ResumableTraining) and saved in checkpoints
through `ResumableDataLoader`, which Lightning treats as a stateful loader: a
run resumed mid-epoch trains exactly the batches, in the order and with the
clips, that the uninterrupted run would have.
"""

from __future__ import annotations

import math

import numpy as np
from torch.utils.data import Sampler

from .loader_workers import VideoLoader


class TrainingBatchSampler(Sampler):
    """One rank's training batches of an epoch, as lists of (index, epoch) pairs, from its current position.

    torch's DistributedSampler pads the epoch with repeated videos so that all
    ranks get equal shares (or, with drop_last, leaves some out). Here the
    epoch's permutation, from (seed, epoch), is cut into world_size x B batches
    whose sizes differ by at most one and never exceed `batch_size`, with
    B = ceil(size / (world_size x batch_size)); rank r takes every
    world_size-th batch from r. Every video is seen exactly once per epoch, and
    every rank runs the same number of batches: DDP all-reduces gradients after
    each batch, so a rank with an extra batch would wait forever.

    The position is read when an epoch's iteration starts: `set_epoch` starts
    an epoch from its first batch, `batch_done` counts a finished batch (and
    moves to the next epoch after the epoch's last), `load_state_dict` puts
    back a saved position.
    """

    def __init__(self, size: int, batch_size: int, rank: int, world_size: int, seed: int):
        self.batches_per_rank = math.ceil(size / (world_size * batch_size))
        if size < world_size * self.batches_per_rank:
            raise ValueError(
                f"{size} training videos cannot be cut into {world_size} ranks x {self.batches_per_rank} non-empty "
                f"batches of at most data.batch_size={batch_size}; raise data.batch_size or use fewer devices"
            )
        self.size, self.batch_size, self.rank, self.world_size, self.seed = size, batch_size, rank, world_size, seed
        self.epoch, self.batches_done = 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.batches_done = epoch, 0

    def batch_done(self, batches_in_epoch: int) -> None:
        """One more batch of this epoch trained; after `batches_in_epoch` of them the next epoch is due."""
        self.batches_done += 1
        if self.batches_done >= batches_in_epoch:
            self.epoch, self.batches_done = self.epoch + 1, 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batches_done": self.batches_done, "world_size": self.world_size}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Put back a saved position; one in the middle of an epoch only under the world size that saved it.

        The position counts each rank's batches: under another number of ranks the epoch is cut into other
        batches, and the same count would train some videos twice and others not at all that epoch.
        """
        saved_world = int(state.get("world_size", self.world_size))  # checkpoints before this key: as now
        if int(state["batches_done"]) and saved_world != self.world_size:
            raise ValueError(
                f"the checkpoint stopped in the middle of an epoch with {saved_world} DDP ranks and this run "
                f"has {self.world_size}; resume with trainer.devices x trainer.num_nodes = {saved_world}, "
                "as it was (an exact resume continues the same batches)"
            )
        self.epoch, self.batches_done = int(state["epoch"]), int(state["batches_done"])

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        """This rank's batches of `epoch`, from its first."""
        order = np.random.default_rng((self.seed, epoch)).permutation(self.size)
        return np.array_split(order, self.world_size * self.batches_per_rank)[self.rank :: self.world_size]

    def __iter__(self):
        epoch, done = self.epoch, self.batches_done
        for batch in self.epoch_batches(epoch)[done:]:
            yield [(int(index), epoch) for index in batch]

    def __len__(self) -> int:
        return self.batches_per_rank


class ResumableDataLoader(VideoLoader):
    """A VideoLoader whose training position travels in checkpoints (Lightning saves and restores a loader
    with `state_dict` / `load_state_dict`, before it starts iterating it)."""

    def state_dict(self) -> dict[str, int]:
        return self.batch_sampler.state_dict()

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.batch_sampler.load_state_dict(state)
