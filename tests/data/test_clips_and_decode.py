import numpy as np
import pytest

from ar_experiments.data.clips import clip_span, sample_clip_indices
from ar_experiments.data.decode import VideoDecodeError, decode_clip
from ar_experiments.data.synthetic import write_avi
from tests.conftest import REPO


def test_random_clips_stay_inside_the_video():
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(200):
        indices = sample_clip_indices(100, 8, 8, "random", rng)
        assert indices.min() >= 0 and indices.max() <= 99
        assert np.all(np.diff(indices) == 8)
        starts.add(int(indices[0]))
    assert min(starts) == 0 and max(starts) == 100 - clip_span(8, 8)


def test_center_clip_is_centred():
    indices = sample_clip_indices(101, 5, 10, "center")
    assert indices[0] == 100 - indices[-1]


def test_uniform_views_are_spread_and_ordered():
    starts = [sample_clip_indices(300, 16, 5, "uniform", view=v, views=10)[0] for v in range(10)]
    assert starts == sorted(starts) and len(set(starts)) == 10
    assert starts[0] >= 0 and starts[-1] + clip_span(16, 5) <= 300


def test_short_video_repeats_its_last_frame():
    indices = sample_clip_indices(10, 8, 4, "random", np.random.default_rng(0))
    assert len(indices) == 8
    assert indices.max() == 9 and list(indices[:3]) == [0, 4, 8]


def test_a_video_shorter_than_a_clip_gives_one_clip_from_frame_0_for_every_view():
    """As PySlowFast: every view starts at max(frames - span, 0) x view / views = 0, indices clamped to the last."""
    central = sample_clip_indices(40, 8, 8, "center")
    assert central.tolist() == [0, 8, 16, 24, 32, 39, 39, 39]
    views = [sample_clip_indices(40, 8, 8, "uniform", view=v, views=10) for v in range(10)]
    assert all(np.array_equal(view, central) for view in views)
    rng = np.random.default_rng(0)
    assert all(np.array_equal(sample_clip_indices(40, 8, 8, "random", rng), central) for _ in range(20))


def test_docs_quote_the_clips_of_a_short_video_as_sampled():
    text = (REPO / "docs" / "evaluation.md").read_text()
    central = sample_clip_indices(40, 8, 8, "center").tolist()
    views = ", ".join(str(sample_clip_indices(40, 8, 8, "uniform", view=v, views=2).tolist()) for v in range(2))
    assert f"central clip:         {central}\n" in text
    assert f"temporal views 1, 2:  {views}\n" in text


@pytest.mark.parametrize(("frames", "stride", "span"), [(4, 16, 49), (6, 10, 51), (8, 8, 57), (16, 4, 61), (32, 2, 63)])
def test_clip_spans_of_the_stride_table(frames, stride, span):
    assert clip_span(frames, stride) == span


def test_clip_starts_exactly_where_each_mode_puts_them():
    # 100 frames, clips of 8 x 8 span 57: 43 frames of slack
    assert sample_clip_indices(100, 8, 8, "center").tolist() == list(range(21, 78, 8))
    assert sample_clip_indices(100, 8, 8, "random")[0] == 0  # no generator: the first clip
    starts = [int(sample_clip_indices(100, 8, 8, "uniform", view=v, views=3)[0]) for v in range(3)]
    assert starts == [7, 22, 36]  # 43 x (v + 0.5) / 3, rounded
    assert sample_clip_indices(100, 8, 8, "uniform", view=0, views=1)[0] == 21  # one view: the central clip
    assert sample_clip_indices(100, 8, 8, "uniform")[0] == 21  # by default one view
    assert [int(sample_clip_indices(100, 8, 8, "uniform", view=v, views=2)[0]) for v in range(2)] == [11, 32]
    assert sample_clip_indices(1, 4, 8, "center").tolist() == [0, 0, 0, 0]


def test_clip_sampling_names_what_is_wrong():
    with pytest.raises(ValueError, match="^a video needs at least one frame$"):
        sample_clip_indices(0, 4, 8, "center")
    with pytest.raises(ValueError, match="^unknown clip sampling mode 'middle'; use random, center or uniform$"):
        sample_clip_indices(100, 4, 8, "middle")


def _video(tmp_path, frames=30, width=64, height=48, name="clip.avi"):
    rng = np.random.default_rng(1)
    # each frame's brightness encodes its number, so the decoded order can be checked
    data = np.zeros((frames, height, width, 3), dtype=np.uint8)
    for t in range(frames):
        data[t] = 5 + 8 * t
    data += rng.integers(0, 3, size=data.shape, dtype=np.uint8)
    path = tmp_path / name
    write_avi(path, data, fps=25)
    return path


def test_decode_returns_the_requested_frames_scaled(tmp_path):
    path = _video(tmp_path)
    frames = decode_clip(path, lambda n: sample_clip_indices(n, 4, 5, "center"), short_side=24)
    assert frames.shape == (4, 24, 32, 3) and frames.dtype == np.uint8
    brightness = frames.reshape(4, -1).mean(1)
    expected = [5 + 8 * i for i in sample_clip_indices(30, 4, 5, "center")]
    assert np.allclose(brightness, expected, atol=6)


def test_decode_of_a_short_video_repeats_frames(tmp_path):
    path = _video(tmp_path, frames=5)
    frames = decode_clip(path, lambda n: sample_clip_indices(n, 8, 4, "center"))
    assert frames.shape[0] == 8
    assert np.array_equal(frames[-1], frames[-2])


def test_decode_of_a_file_that_is_not_a_video_names_it(tmp_path):
    bad = tmp_path / "v_Fake_g01_c01.avi"
    bad.write_bytes(b"this is not a video")
    with pytest.raises(VideoDecodeError, match="v_Fake_g01_c01.avi"):
        decode_clip(bad, lambda n: sample_clip_indices(n, 4, 2, "center"))
