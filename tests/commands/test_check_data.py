"""`python -m ar_experiments.check_data`: split files, then every video, before a long run."""

import subprocess
import sys

import pytest

from ar_experiments.check_data import check_data
from tests.conftest import REPO, tiny_overrides
from tests.fault_injection import FAULTS, break_video, copy_dataset


@pytest.fixture
def compose_check(cache_dir, tmp_path):
    from hydra import compose, initialize_config_dir

    from tests.conftest import CONF_DIR

    def _compose(overrides):
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            return compose("check_data", overrides=[f"paths.output_dir={tmp_path / 'out'}", *overrides])

    return _compose


def test_a_sound_dataset_passes(compose_check, tiny_dataset, cache_dir, capsys):
    synthetic = [o for o in tiny_overrides(cache_dir) if o.startswith(("paths.cache_dir", "data.synthetic"))]
    assert check_data(compose_check([*synthetic, "check.workers=1"])) == 0
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


def test_every_unreadable_video_is_reported_with_its_reason_and_exit_code_1(tiny_dataset, tmp_path):
    root = copy_dataset(tiny_dataset, tmp_path / "data")
    videos = sorted((root / "UCF-101").glob("*/*.avi"))
    broken = {video.relative_to(root / "UCF-101").as_posix(): fault for video, fault in zip(videos[::9], FAULTS)}
    for name, fault in broken.items():
        break_video(root / "UCF-101" / name, fault)
    out = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ar_experiments.check_data",
            "data=ucf101",
            f"data.root={root}",
            "check.workers=2",
            f"hydra.run.dir={out}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1, result.stderr[-2000:]
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
        assert f"unreadable: {name}: " in result.stdout
    assert f"{len(broken)} of 75 videos cannot be read" in result.stdout
