"""Which process this is under DDP: rank 0 alone writes run files; a rank started by distributed.py
defers signals and the resume hint to its parent."""

from __future__ import annotations

STARTED_RANK = False
"""True in a DDP rank that distributed.py started: its launching process handles the signals and the resume hint."""


def is_global_zero() -> bool:
    """Whether this process is rank 0 (the only one that writes run files)."""
    from pytorch_lightning.utilities import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0
