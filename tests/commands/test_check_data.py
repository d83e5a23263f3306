"""`python -m ar_experiments.check_data`: split files, then every video, before a long run."""

import pytest

from ar_experiments.check_data import check_data
from tests.conftest import compose, tiny_data
from tests.fault_injection import FAULTS, break_video, copy_dataset


@pytest.fixture
def compose_check(tmp_path):
    return lambda overrides: compose([f"paths.output_dir={tmp_path / 'out'}", *overrides], config_name="check_data")


def test_a_sound_dataset_passes(compose_check, tiny_dataset, cache_dir, capsys):
    assert check_data(compose_check([*tiny_data(cache_dir), "check.workers=1"])) == 0
    assert "all 75 videos decode completely" in capsys.readouterr().out


def test_split_file_problems_are_listed_with_file_line_and_fix(compose_check, tiny_dataset, tmp_path, capsys):
    root = copy_dataset(tiny_dataset, tmp_path / "data")
    with open(root / "ucfTrainTestlist" / "trainlist02.txt", "ab") as handle:
        handle.write(b"Juggling/v_Juggling_g01_c01.avi 4\r\n")
    (root / "ucfTrainTestlist" / "testlist03.txt").unlink()
    assert check_data(compose_check(["data=ucf101", f"data.root={root}"])) == 1
    err = capsys.readouterr().err
    assert "trainlist02.txt:55: unknown class 'Juggling'" in err and "add the class to classInd.txt" in err
    assert "split file not found" in err and "testlist03.txt" in err


def test_every_unreadable_video_is_reported_with_its_reason_and_exit_code_1(
    compose_check, tiny_dataset, tmp_path, capsys
):
    root = copy_dataset(tiny_dataset, tmp_path / "data")
    videos = sorted((root / "UCF-101").glob("*/*.avi"))
    broken = {video.relative_to(root / "UCF-101").as_posix(): fault for video, fault in zip(videos[::9], FAULTS)}
    for name, fault in broken.items():
        break_video(root / "UCF-101" / name, fault)
    out = tmp_path / "out"
    assert check_data(compose_check(["data=ucf101", f"data.root={root}", "check.workers=2"])) == 1
    stdout = capsys.readouterr().out
    reasons = {
        "truncated": "cannot open video",
        "short_stream": "frames its header lists (truncated?)",
        "zero_bytes": "video file is empty (0 bytes)",
        "not_a_video": "cannot open video",
        "no_video_stream": "no video stream",
    }
    listed = dict(line.split("\t") for line in (out / "unreadable_videos.txt").read_text().splitlines())
    assert set(listed) == set(broken)
    for name, fault in broken.items():
        assert reasons[fault] in listed[name]
        assert f"unreadable: {name}: " in stdout
    assert f"{len(broken)} of 75 videos cannot be read" in stdout
