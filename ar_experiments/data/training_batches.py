"""Training batches: every video once per epoch, a new order and new clips each epoch, resumable mid-epoch.

One sampler serves a single process and every DDP rank (docs/sweeps.md, "Data under DDP"). Its position
is set by the training loop (training.callbacks.ResumableTraining) and saved in checkpoints through
`ResumableDataLoader`, so a run resumed mid-epoch trains exactly the batches the uninterrupted one would.
"""

from __future__ import annotations

import math

import numpy as np
from torch.utils.data import Sampler

from .loader_workers import VideoLoader


class TrainingBatchSampler(Sampler):
    """One rank's training batches of an epoch, as lists of (index, epoch) pairs, from its current position.

    The epoch's permutation, from (seed, epoch), is cut into world_size x B batches of at most
    `batch_size`, B = ceil(size / (world_size x batch_size)); rank r takes every world_size-th from r.
    Unlike DistributedSampler nothing is padded, and every rank runs the same number of batches: DDP
    all-reduces gradients after each, so a rank with an extra batch would wait forever.
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
        """Put back a saved position; one in the middle of an epoch only under the world size that saved it
        (docs/clusters.md: the position counts each rank's batches)."""
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
