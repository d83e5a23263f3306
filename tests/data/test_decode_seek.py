"""Seeking to the keyframe before a clip must give exactly the frames a decode from the start gives."""

import av
import numpy as np
import pytest

from ar_experiments.data import decode
from ar_experiments.data.clips import sample_clip_indices
from ar_experiments.data.decode import VideoDecodeError, decode_clip

FRAMES = 60
SHORT_SIDE = 36


def write_video(path, fmt: str, codec: str, options: dict | None = None, gop: int = 12, b_frames: int = 0):
    """Frames that all differ (a noise texture sliding sideways, a counter block), so a wrong frame shows."""
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    with av.open(str(path), mode="w", format=fmt) as container:
        stream = container.add_stream(codec, rate=25, options=options or {})
        if fmt == "avi" and codec == "mpeg4":
            stream.codec_tag = "XVID"
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.gop_size = gop
        stream.codec_context.max_b_frames = b_frames
        for t in range(FRAMES):
            frame = np.roll(texture, 2 * t, axis=1)
            frame[:12, :16] = (t * 9) % 256
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def decode_everything(path) -> np.ndarray:
    """Every frame, in order, scaled as decode_clip scales; stops quietly where the stream breaks."""
    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        width = round(64 * SHORT_SIDE / 48 / 2) * 2
        try:
            for frame in container.decode(stream):
                frames.append(frame.to_ndarray(format="rgb24", width=width, height=SHORT_SIDE))
        except av.FFmpegError:
            pass
    return np.stack(frames)


VIDEOS = {
    "xvid-avi": ("avi", "mpeg4", {}, 12, 0),
    "xvid-avi-bframes": ("avi", "mpeg4", {}, 12, 2),
    "h264-mp4-bframes": ("mp4", "libx264", {}, 12, 3),
    "h264-mkv-open-gop": ("matroska", "libx264", {"x264-params": "open-gop=1"}, 12, 3),
}


@pytest.fixture(scope="module", params=sorted(VIDEOS))
def video(request, tmp_path_factory):
    fmt, codec, options, gop, b_frames = VIDEOS[request.param]
    if codec not in av.codecs_available:
        pytest.skip(f"this PyAV build has no {codec} encoder")
    suffix = {"avi": "avi", "mp4": "mp4", "matroska": "mkv"}[fmt]
    path = tmp_path_factory.mktemp("seek") / f"{request.param}.{suffix}"
    return write_video(path, fmt, codec, options, gop, b_frames)


def test_random_clips_match_a_decode_from_the_start(video):
    reference = decode_everything(video)
    assert len(reference) == FRAMES
    rng = np.random.default_rng(1)
    for frames, stride in [(16, 3)] * 12 + [(4, 1)] * 6 + [(8, 8)] * 4:
        pick = RandomClip(frames, stride, rng)
        clip = decode_clip(video, pick, short_side=SHORT_SIDE)
        expected = reference[np.minimum(pick.indices, FRAMES - 1)]
        assert np.array_equal(clip, expected), f"clip at frames {pick.indices.tolist()}"


class RandomClip:
    """A random clip's indices, remembered for the check."""

    def __init__(self, frames: int, stride: int, rng: np.random.Generator):
        self.frames, self.stride, self.rng = frames, stride, rng
        self.indices = None

    def __call__(self, count: int) -> np.ndarray:
        self.indices = sample_clip_indices(count, self.frames, self.stride, "random", self.rng)
        return self.indices


def test_ucf101_style_avi_is_served_by_seeking(tmp_path, monkeypatch):
    """An XVID AVI with keyframes every 12 frames never needs the decode from the start."""
    path = write_video(tmp_path / "v.avi", "avi", "mpeg4")
    starts = []
    original = decode._decode_from_start
    monkeypatch.setattr(decode, "_decode_from_start", lambda *a: starts.append(1) or original(*a))
    for first in (1, 13, 30, 40):
        decode_clip(path, lambda count, first=first: first + 2 * np.arange(8), short_side=SHORT_SIDE)
    assert starts == []


def test_a_truncated_file_decodes_up_to_its_cut_and_refuses_clips_past_it(tmp_path):
    path = write_video(tmp_path / "v.avi", "avi", "mpeg4")
    truncated = tmp_path / "cut.avi"
    data = path.read_bytes()
    truncated.write_bytes(data[: int(len(data) * 0.8)])
    reference = decode_everything(truncated)
    assert 10 < len(reference) < FRAMES  # the header still promises FRAMES frames
    for first in (0, len(reference) - 8):
        indices = first + np.arange(8)
        clip = decode_clip(truncated, lambda count, indices=indices: indices, short_side=SHORT_SIDE)
        assert np.array_equal(clip, reference[indices]), f"clip from {first}"
    # a clip that needs frames the file lost: the video is unreadable for it (training replaces it)
    past = np.minimum(len(reference) + 3 + np.arange(8), FRAMES - 1)
    with pytest.raises(VideoDecodeError, match="truncated"):
        decode_clip(truncated, lambda count: past, short_side=SHORT_SIDE)
