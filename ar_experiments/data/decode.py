"""Decode exactly the frames a clip needs with PyAV, resized while converting."""

from __future__ import annotations

import math

import numpy as np


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


def decode_clip(path: str, sample_indices, short_side: int | None = None) -> np.ndarray:
    """Frames (T, H, W, 3) uint8 of one clip.

    `sample_indices(frame_count) -> indices` picks the frames once the header
    says how many there are. Decoding stops after the last needed frame. When
    the stream ends before the header's count, missing frames repeat the last
    decoded one; a file that decodes to nothing raises VideoDecodeError.
    """
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as err:
        raise VideoDecodeError(f"cannot open video {path}: {err}") from err
    with container:
        if not container.streams.video:
            raise VideoDecodeError(f"no video stream in {path}")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
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
        if last_frame is not None and last_number not in kept and last_number < last_needed:
            # the stream ended early: the last decoded frame stands in for the rest
            kept[last_number] = last_frame.to_ndarray(format="rgb24", width=width, height=height)
    if not kept:
        raise VideoDecodeError(f"no decodable frames in {path}")
    return _fill_missing(kept, indices)


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
