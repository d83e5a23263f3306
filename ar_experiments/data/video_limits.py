"""Refuse, before decoding, videos whose frames scaled to data.short_side would be absurd.

A 2x16000 clip of 2 KB would become frames of 256 x 2,048,000 pixels (1.5 GB each at rgb24); such a video
is refused like a truncated one (docs/faults.md). `data.max_aspect_ratio` sets the limit.
"""

from __future__ import annotations

ON_BAD_VIDEO = ("skip", "error")  # data.on_bad_video: skip (and name) an unreadable video, or stop the run
DEFAULT_MAX_ASPECT_RATIO = 4.0
"""Wider than any film or phone format (21:9 is 2.33, a portrait phone video 1.78)."""


def frame_size_problem(
    path: str, width: int, height: int, max_aspect_ratio: float | None = DEFAULT_MAX_ASPECT_RATIO
) -> str | None:
    """Why frames of `width` x `height` are refused (None when they are fine)."""
    if width < 1 or height < 1:
        return f"{path} has frames of {width}x{height} pixels (no picture)"
    ratio = max(width, height) / min(width, height)
    if max_aspect_ratio and ratio > max_aspect_ratio:
        return (
            f"{path} has frames of {width}x{height} pixels, an aspect ratio of {ratio:.0f}:1 above "
            f"data.max_aspect_ratio={max_aspect_ratio:g}; scaled to data.short_side its long side would explode. "
            "Re-encode it, or raise data.max_aspect_ratio"
        )
    return None
