"""Clips come from the right frames in every container, also where the header has no frame count."""

import av
import numpy as np
import pytest

from ar_experiments.data.clips import sample_clip_indices
from ar_experiments.data.decode import count_frames, decode_clip
from tests.video_files import write_video


@pytest.mark.parametrize(
    "name, codec, audio",
    [
        ("clip.avi", "mpeg4", None),
        ("clip.mp4", "libx264", "aac"),
        ("clip.mkv", "libx264", None),
        ("clip.webm", "libvpx-vp9", "libopus"),
    ],
)
def test_centre_clip_is_taken_from_the_middle_in_every_container(tmp_path, name, codec, audio):
    path = write_video(tmp_path / name, codec, fps=10, width=64, height=48, frames=40, audio=audio)
    with av.open(str(path)) as container:
        # Matroska and WebM headers carry no frame count; the duration tag gives it
        assert count_frames(container.streams.video[0]) == 40
    frames = decode_clip(str(path), lambda n: sample_clip_indices(n, 4, 8, "center"), short_side=24)
    expected = [10 + 4 * i for i in sample_clip_indices(40, 4, 8, "center")]
    assert frames.shape == (4, 24, 32, 3)
    assert np.allclose(frames.reshape(4, -1).mean(1), expected, atol=4)
