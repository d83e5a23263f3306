"""Training batches for DDP: every video once per epoch, the same number of batches on every rank."""

from __future__ import annotations

import math

import numpy as np
from torch.utils.data import Sampler


class EvenShardBatchSampler(Sampler):
    """One rank's training batches of an epoch, yielded as lists of (index, epoch) pairs.

    torch's DistributedSampler pads the epoch with repeated videos so that all
    ranks get equal shares (or, with drop_last, leaves some out). Here the
    epoch's permutation (the one a single process would use) is cut into
    world_size x B batches whose sizes differ by at most one and never exceed
    `batch_size`, with B = ceil(size / (world_size x batch_size)); rank r takes
    every world_size-th batch from r. Every video is seen exactly once per epoch,
    and every rank runs the same number of batches: DDP all-reduces gradients
    after each batch, so a rank with an extra batch would wait forever.
    """

    def __init__(self, size: int, batch_size: int, rank: int, world_size: int, seed: int):
        self.batches_per_rank = math.ceil(size / (world_size * batch_size))
        if size < world_size * self.batches_per_rank:
            raise ValueError(
                f"{size} training videos cannot be cut into {world_size} ranks x {self.batches_per_rank} non-empty "
                f"batches of at most data.batch_size={batch_size}; raise data.batch_size or use fewer devices"
            )
        self.size, self.batch_size, self.rank, self.world_size, self.seed = size, batch_size, rank, world_size, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        order = np.random.default_rng((self.seed, self.epoch)).permutation(self.size)
        batches = np.array_split(order, self.world_size * self.batches_per_rank)
        for batch in batches[self.rank :: self.world_size]:
            yield [(int(index), self.epoch) for index in batch]

    def __len__(self) -> int:
        return self.batches_per_rank
