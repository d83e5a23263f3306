"""check_data's verdict on one video, in-process: each reason word for word (issue 26)."""

import pytest

from ar_experiments.data import decode_check
from ar_experiments.data.decode import RgbConverter
from ar_experiments.data.decode_check import find_decode_problem
from tests.fault_injection import break_video
from tests.video_files import write_video


@pytest.fixture
def video(tmp_path):
    """12 frames of 48 x 32 pixels."""
    return str(write_video(tmp_path / "v_Clip_g01_c01.mp4", "h264", 25, 48, 32, 12))


def test_every_frame_is_converted_at_the_loaders_size_and_a_sound_video_has_no_problem(video, monkeypatch):
    sizes = []

    class Recording(RgbConverter):
        def __call__(self, frame, out):
            super().__call__(frame, out)
            sizes.append(out.shape)

    monkeypatch.setattr(decode_check, "RgbConverter", Recording)
    assert find_decode_problem(video, short_side=36) is None
    assert sizes == [(36, 54, 3)] * 12


def test_only_the_video_streams_frames_are_converted(tmp_path, monkeypatch):
    converted = []
    monkeypatch.setattr(RgbConverter, "__call__", lambda self, frame, out: converted.append(frame.format.name))
    with_sound = str(write_video(tmp_path / "sound.mp4", "h264", 25, 48, 32, 12, audio="aac"))
    assert find_decode_problem(with_sound) is None
    assert len(converted) == 12 and "fltp" not in converted  # no AAC audio frame among them


def test_an_empty_file_and_one_without_video_are_named_with_their_reason(tmp_path):
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    assert find_decode_problem(str(empty)) == f"video file is empty (0 bytes): {empty}"
    sound = tmp_path / "sound.avi"
    sound.write_bytes(b"")
    break_video(sound, "no_video_stream")
    assert find_decode_problem(str(sound)) == f"no video stream in {sound}"


def test_a_video_of_extreme_aspect_ratio_is_refused_unless_the_limit_is_lifted(tmp_path):
    tall = str(write_video(tmp_path / "tall.mp4", "h264", 25, 2, 16000, 3))
    assert find_decode_problem(tall, short_side=36) == (
        f"{tall} has frames of 2x16000 pixels, an aspect ratio of 8000:1 above data.max_aspect_ratio=4; scaled to "
        "data.short_side its long side would explode. Re-encode it, or raise data.max_aspect_ratio"
    )
    assert find_decode_problem(tall, short_side=None, max_aspect_ratio=None) is None


def test_a_converter_that_cannot_start_is_the_videos_fault(video, monkeypatch):
    def refuse(*args):
        raise RuntimeError("no scaler")

    monkeypatch.setattr(decode_check, "RgbConverter", refuse)
    assert find_decode_problem(video) == f"cannot decode {video}: RuntimeError: no scaler"


def failing_from_frame(monkeypatch, first_failing: int) -> None:
    calls = []

    def convert(self, frame, out):
        calls.append(frame)
        if len(calls) >= first_failing:
            raise RuntimeError("Invalid argument returned 22")

    monkeypatch.setattr(RgbConverter, "__call__", convert)


def test_decoding_that_fails_at_once_has_no_decodable_frames_and_names_the_error(video, monkeypatch):
    failing_from_frame(monkeypatch, 1)
    assert find_decode_problem(video) == (
        f"no decodable frames in {video} (decoding stops with: RuntimeError: Invalid argument returned 22)"
    )


def test_decoding_that_fails_midway_counts_the_frames_decoded_and_names_the_error(video, monkeypatch):
    failing_from_frame(monkeypatch, 5)
    assert find_decode_problem(video) == (
        f"{video} decodes 4 of the 12 frames its header lists (truncated?) "
        "(decoding stops with: RuntimeError: Invalid argument returned 22)"
    )


def test_a_stream_shorter_than_its_header_is_truncated(video, monkeypatch):
    monkeypatch.setattr(decode_check, "count_frames", lambda stream: 40)  # a header listing 40 frames
    assert find_decode_problem(video) == f"{video} decodes 12 of the 40 frames its header lists (truncated?)"
