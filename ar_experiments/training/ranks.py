"""Which process this is under DDP: rank 0 alone writes run files."""

from __future__ import annotations


def is_global_zero() -> bool:
    """Whether this process is rank 0 (the only one that writes run files)."""
    from pytorch_lightning.utilities import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0
