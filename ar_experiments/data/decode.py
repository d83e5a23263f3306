"""Decode exactly the frames a clip needs with PyAV, resized while converting."""

from __future__ import annotations

import math
import os

import numpy as np

HEADER_SLACK = 2
"""Frames a stream may end short of its header's count before it counts as truncated
(some encoders count a frame or two they never write)."""


class VideoDecodeError(RuntimeError):
    """A video that cannot give the frames asked for; names the file and why."""


def _scaled_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    if not short_side:
        return width, height
    scale = short_side / min(width, height)
    # even sizes keep swscale on its fast path
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


def count_frames(stream) -> int:
    """Frames in a video stream from its header, else from duration x rate."""
    if stream.frames:
        return int(stream.frames)
    seconds = _stream_seconds(stream)
    if seconds and stream.average_rate:
        return max(1, int(math.floor(seconds * float(stream.average_rate))))
    return 0


def _stream_seconds(stream) -> float | None:
    """The stream's duration; Matroska and WebM leave it out of the header (a DURATION tag
    holds it), and without either, the container's duration stands in."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    hours, _, rest = stream.metadata.get("DURATION", "").partition(":")
    minutes, _, seconds = rest.partition(":")
    try:
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        container_microseconds = stream.container.duration
        return container_microseconds / 1_000_000 if container_microseconds else None


def _open_video(path: str):
    """(container, first video stream); VideoDecodeError when there is none to read."""
    import av

    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise VideoDecodeError(f"video file is empty (0 bytes): {path}")
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as err:
        raise VideoDecodeError(f"cannot open video {path}: {err}") from err
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(f"no video stream in {path}")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return container, stream


def _truncation(path: str, decoded: int, total: int) -> str | None:
    """The complaint about a stream that ends before its header's frame count, if it ends too early."""
    if decoded >= total - HEADER_SLACK:
        return None
    return f"{path} decodes {decoded} of the {total} frames its header lists (truncated?)"


def decode_clip(path: str, sample_indices, short_side: int | None = None) -> np.ndarray:
    """Frames (T, H, W, 3) uint8 of one clip.

    `sample_indices(frame_count) -> indices` picks the frames once the header
    says how many there are. Decoding stops after the last needed frame. A
    stream that ends within HEADER_SLACK frames of the header's count repeats
    its last frame; one that ends earlier, before a frame the clip needs, is
    truncated: VideoDecodeError, as for a file that decodes to nothing.
    """
    import av

    container, stream = _open_video(path)
    with container:
        total = count_frames(stream)
        indices = np.asarray(sample_indices(max(total, 1)))
        wanted = set(indices.tolist())
        last_needed = int(indices.max())
        width, height = _scaled_size(stream.codec_context.width, stream.codec_context.height, short_side)
        kept: dict[int, np.ndarray] = {}
        last_number, last_frame = -1, None
        try:
            for number, frame in enumerate(container.decode(stream)):
                if number in wanted:
                    kept[number] = frame.to_ndarray(format="rgb24", width=width, height=height)
                last_number, last_frame = number, frame
                if number >= last_needed:
                    break
        except (av.FFmpegError, ValueError) as err:
            if last_frame is None:
                raise VideoDecodeError(f"cannot decode {path}: {err}") from err
        if last_frame is None:
            raise VideoDecodeError(f"no decodable frames in {path}")
        if last_number < last_needed:
            truncated = _truncation(path, last_number + 1, total)
            if truncated:
                raise VideoDecodeError(truncated)
            if last_number not in kept:
                # within the header's slack: the last decoded frame stands in for the rest
                kept[last_number] = last_frame.to_ndarray(format="rgb24", width=width, height=height)
    return _fill_missing(kept, indices)


def find_decode_problem(path: str) -> str | None:
    """Why training could not use the video at `path` (None when it can): decodes every frame."""
    import av

    try:
        container, stream = _open_video(path)
    except VideoDecodeError as err:
        return str(err)
    with container:
        total, decoded, failure = count_frames(stream), 0, ""
        try:
            for _ in container.decode(stream):
                decoded += 1
        except (av.FFmpegError, ValueError) as err:
            failure = f" (decoding stops with: {err})"
    if decoded == 0:
        return f"no decodable frames in {path}{failure}"
    truncated = _truncation(path, decoded, total)
    return truncated + failure if truncated else None


def _fill_missing(kept: dict[int, np.ndarray], indices: np.ndarray) -> np.ndarray:
    """Stack frames in index order; an index past the decoded end repeats the nearest earlier frame."""
    available = sorted(kept)
    out = []
    for index in indices.tolist():
        if index in kept:
            out.append(kept[index])
        else:
            earlier = [k for k in available if k <= index]
            out.append(kept[earlier[-1] if earlier else available[0]])
    return np.stack(out)
