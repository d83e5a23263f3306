"""Decode exactly the frames a clip needs with PyAV, resized while converting.

A clip rarely starts at frame 0, so decoding seeks to the keyframe before the
clip's first frame and stops after its last: a 3 s clip of a 7 s video costs
about its own span, not everything before it. After a seek, frame numbers come
from timestamps, counted from the first frame's. Where timestamps cannot be
trusted (no frame rate, irregular timestamps, a seek that lands past the clip,
an error), the video is decoded from its start instead and frames are numbered
by counting; both give the same frames (tests/data/test_decode_seek.py checks this
on videos with and without B-frames).
"""

from __future__ import annotations

import math
import os

import numpy as np

from .video_limits import DEFAULT_MAX_ASPECT_RATIO, frame_size_problem

OPENING_PACKETS = 16  # enough to span a few mini-GOPs of B-frames and see their reorder delay
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


def truncation_problem(path: str, decoded: int, total: int) -> str | None:
    """The complaint about a stream that ends before its header's frame count, if it ends too early."""
    if decoded >= total - HEADER_SLACK:
        return None
    return f"{path} decodes {decoded} of the {total} frames its header lists (truncated?)"


def decode_clip(
    path: str, sample_indices, short_side: int | None = None, max_aspect_ratio: float | None = DEFAULT_MAX_ASPECT_RATIO
) -> np.ndarray:
    """Frames (T, H, W, 3) uint8 of one clip.

    `sample_indices(frame_count) -> indices` picks the frames once the header
    says how many there are. Decoding starts at the keyframe before the first
    needed frame and stops after the last. A stream that ends within
    HEADER_SLACK frames of the header's count repeats its last frame; one that
    ends earlier, before a frame the clip needs, is truncated: VideoDecodeError,
    as for a file that decodes to nothing. Any other error while decoding,
    converting or scaling is the video's too: a VideoDecodeError naming it.
    """
    try:
        return _decode_clip(path, sample_indices, short_side, max_aspect_ratio)
    except VideoDecodeError:
        raise
    except Exception as err:  # noqa: BLE001 - PyAV and swscale raise many kinds; every one is this video's fault
        raise VideoDecodeError(f"cannot decode {path}: {type(err).__name__}: {err}") from err


def _decode_clip(path: str, sample_indices, short_side: int | None, max_aspect_ratio: float | None) -> np.ndarray:
    from torch.utils.data import get_worker_info

    # DataLoader workers already decode one video per core: threads inside each would only contend
    in_worker = get_worker_info() is not None
    with open_video(path) as container:
        stream = video_stream(container, path, in_worker)
        total = count_frames(stream)
        indices = np.asarray(sample_indices(max(total, 1)))
        to_rgb = RgbConverter(stream, short_side, in_worker, path, max_aspect_ratio)
        if indices.min() > 0:
            clip = _decode_after_seek(container, stream, ClipFrames(indices, to_rgb, path, total))
        else:
            clip = _decode_from_start(container, stream, ClipFrames(indices, to_rgb, path, total), path)
    if clip is None:  # timestamps could not number the frames: count them from the start
        with open_video(path) as container:
            clip = _decode_from_start(
                container, video_stream(container, path, in_worker), ClipFrames(indices, to_rgb, path, total), path
            )
    if clip is None:
        raise VideoDecodeError(f"no decodable frames in {path}")
    return clip


def open_video(path):
    import av

    if os.path.isfile(path) and os.path.getsize(path) == 0:
        raise VideoDecodeError(f"video file is empty (0 bytes): {path}")
    try:
        return av.open(str(path))
    except (av.FFmpegError, OSError) as err:
        raise VideoDecodeError(f"cannot open video {path}: {err}") from err


def video_stream(container, path, in_worker: bool):
    if not container.streams.video:
        raise VideoDecodeError(f"no video stream in {path}")
    stream = container.streams.video[0]
    stream.thread_type = "NONE" if in_worker else "AUTO"
    return stream


class RgbConverter:
    """Frame -> uint8 (H, W, 3) rows of an array, at the scaled size, through one scaler for the whole clip.

    `frame.to_ndarray(width=, height=)` would build a new swscale context for
    every frame, which costs more than the scaling itself.
    """

    def __init__(self, stream, short_side: int | None, in_worker: bool, path: str, max_aspect_ratio: float | None):
        from av.video.reformatter import VideoReformatter

        problem = frame_size_problem(path, stream.codec_context.width, stream.codec_context.height, max_aspect_ratio)
        if problem:
            raise VideoDecodeError(problem)
        self.width, self.height = _scaled_size(stream.codec_context.width, stream.codec_context.height, short_side)
        self.threads = 1 if in_worker else 0  # 0: as many as swscale finds useful
        self.reformatter = VideoReformatter()

    def __call__(self, frame, out: np.ndarray) -> None:
        rgb = self.reformatter.reformat(
            frame, width=self.width, height=self.height, format="rgb24", threads=self.threads
        )
        plane = rgb.planes[0]
        # the plane's rows are padded to line_size bytes: copy the pixels straight from them into `out`
        rows = np.frombuffer(plane, np.uint8).reshape(self.height, plane.line_size)
        out[...] = rows[:, : self.width * 3].reshape(self.height, self.width, 3)


class ClipFrames:
    """The clip being assembled: each needed frame is converted straight into its rows of one (T, H, W, 3) array."""

    def __init__(self, indices: np.ndarray, to_rgb: RgbConverter, path: str, total: int):
        self.to_rgb = to_rgb
        self.path, self.total = path, total
        self.rows: dict[int, list[int]] = {}
        for row, number in enumerate(indices.tolist()):
            self.rows.setdefault(number, []).append(row)
        self.first_needed, self.last_needed = min(self.rows), max(self.rows)
        self.array = np.empty((len(indices), to_rgb.height, to_rgb.width, 3), np.uint8)

    def offer(self, number: int, frame) -> bool:
        """Keep frame `number` if the clip needs it; True once the last needed frame is in."""
        if number in self.rows:
            self._write(frame, self.rows[number])
        return number >= self.last_needed

    def _write(self, frame, rows: list[int]) -> None:
        self.to_rgb(frame, self.array[rows[0]])
        for row in rows[1:]:
            self.array[row] = self.array[rows[0]]

    def finish(self, last_number: int, last_frame) -> np.ndarray | None:
        """The clip; frames past the end of a stream that ended early repeat its last frame. None if nothing decoded."""
        if last_frame is None:
            return None
        missing = [row for number, rows in self.rows.items() if number > last_number for row in rows]
        if missing:
            truncated = truncation_problem(self.path, last_number + 1, self.total)
            if truncated:
                raise VideoDecodeError(truncated)
            self._write(last_frame, missing)
        return self.array


def _decode_from_start(container, stream, clip: ClipFrames, path) -> np.ndarray | None:
    """Frames numbered by counting from the first; an error after some frames ends the stream there."""
    import av

    last_number, last_frame = -1, None
    try:
        for number, frame in enumerate(container.decode(stream)):
            last_number, last_frame = number, frame
            if clip.offer(number, frame):
                break
    except (av.FFmpegError, ValueError) as err:
        if last_frame is None:
            raise VideoDecodeError(f"cannot decode {path}: {err}") from err
    return clip.finish(last_number, last_frame)


def _decode_after_seek(container, stream, clip: ClipFrames) -> np.ndarray | None:
    """Frames from the keyframe before the clip, numbered by timestamp; None where that is unsafe.

    Frame n's timestamp is the first frame's plus n frame durations (the first
    frame's own timestamp is not always zero: AVI with B-frames starts at one).
    Demuxers seek by decode timestamp, which trails the presentation timestamp
    by the B-frame reorder delay, so the target moves back by that delay.
    Frames count only from the first keyframe at or before the clip's start
    (frames before it may reference data from before the seek point), and any
    gap or repeat in the numbering gives up.
    """
    import av

    if not stream.average_rate or not stream.time_base:
        return None
    frames_per_tick = float(stream.average_rate * stream.time_base)
    expected, last_frame = None, None
    try:
        first, lowest_dts, reorder_delay = _first_frame(container, stream)
        if first is None or first.pts is None or lowest_dts is None:
            return None
        target = max(lowest_dts, first.pts + int(clip.first_needed / frames_per_tick) - reorder_delay)
        container.seek(target, stream=stream, backward=True, any_frame=False)
        for frame in container.decode(stream):
            if frame.pts is None:
                return None
            number = round((frame.pts - first.pts) * frames_per_tick)
            if expected is None:
                if number > clip.first_needed:
                    return None  # the seek landed past the clip
                if not frame.key_frame:
                    continue
            elif number != expected:
                return None
            expected, last_frame = number + 1, frame
            if clip.offer(number, frame):
                break
    except (av.FFmpegError, ValueError):
        return None
    return None if expected is None else clip.finish(expected - 1, last_frame)


def _first_frame(container, stream):
    """The first decoded frame, and the lowest dts and largest pts - dts among the opening packets.

    That gap is the B-frame reorder delay: a keyframe shows up to that much
    later than its decode timestamp, which is what demuxers seek by.
    """
    first, lowest_dts, reorder_delay = None, None, 0
    for number, packet in enumerate(container.demux(stream)):
        if packet.pts is not None and packet.dts is not None:
            reorder_delay = max(reorder_delay, packet.pts - packet.dts)
            lowest_dts = packet.dts if lowest_dts is None else min(lowest_dts, packet.dts)
        if first is None:
            frames = packet.decode()
            first = frames[0] if frames else None
        if first is not None and number >= OPENING_PACKETS:
            break
    return first, lowest_dts, reorder_delay
