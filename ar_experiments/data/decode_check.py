"""Why the loader could not use a video: every frame decoded and converted as the loader does (check_data)."""

from __future__ import annotations

import numpy as np

from .decode import RgbConverter, VideoDecodeError, count_frames, open_video, truncation_problem, video_stream
from .video_limits import DEFAULT_MAX_ASPECT_RATIO


def find_decode_problem(
    path: str, short_side: int | None = None, max_aspect_ratio: float | None = DEFAULT_MAX_ASPECT_RATIO
) -> str | None:
    """Why training could not use the video at `path` (None when it can).

    Decodes every frame and converts it as the loader does (scaled to `short_side`,
    to RGB), so a video the loader would refuse or fail on is reported here too.
    """
    try:
        container = open_video(path)
    except VideoDecodeError as err:
        return str(err)
    # (in_worker picks the decoder's and the scaler's threads, not the frames: its mutants are equivalent here)
    with container:
        try:
            stream = video_stream(container, path, in_worker=False)
            to_rgb = RgbConverter(stream, short_side, False, path, max_aspect_ratio)
        except VideoDecodeError as err:
            return str(err)
        except Exception as err:  # noqa: BLE001 - as in decode_clip: the video's fault
            return f"cannot decode {path}: {type(err).__name__}: {err}"
        total, decoded, failure = count_frames(stream), 0, ""
        frame_rows = np.empty((to_rgb.height, to_rgb.width, 3), np.uint8)  # (scratch rows: any dtype is equivalent)
        try:
            for frame in container.decode(stream):
                to_rgb(frame, frame_rows)
                decoded += 1
        except Exception as err:  # noqa: BLE001 - decoding or converting: the video's fault either way
            failure = f" (decoding stops with: {type(err).__name__}: {err})"
    if decoded == 0:
        return f"no decodable frames in {path}{failure}"
    truncated = truncation_problem(path, decoded, total)
    return truncated + failure if truncated else None
