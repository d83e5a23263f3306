import av
import pytest

from ar_experiments.data.splits import load_split
from ar_experiments.data.synthetic import MOTIONS, SyntheticSpec, dataset_root, ensure_synthetic_dataset
from tests.conftest import TINY_SYNTHETIC, tiny_spec


def test_layout_and_split_files_follow_ucf101(tiny_dataset):
    lists = tiny_dataset / "ucfTrainTestlist"
    class_index = (lists / "classInd.txt").read_bytes()
    assert class_index.startswith(b"1 MoveRight\r\n")
    train_line = (lists / "trainlist01.txt").read_bytes().split(b"\r\n")[0].decode()
    test_line = (lists / "testlist01.txt").read_bytes().split(b"\r\n")[0].decode()
    assert train_line.split()[0].startswith("MoveRight/v_MoveRight_g") and train_line.split()[1] == "1"
    assert len(test_line.split()) == 1  # testlists carry no label
    assert (tiny_dataset / "UCF-101" / train_line.split()[0]).is_file()


def test_videos_are_mpeg4_part2_with_the_xvid_tag(tiny_dataset):
    video = next((tiny_dataset / "UCF-101" / "RotateClockwise").glob("*.avi"))
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "mpeg4"
        assert stream.codec_context.codec_tag == "XVID"
        assert stream.frames >= 75


def test_three_splits_hold_out_different_groups(tiny_dataset):
    test_groups = [frozenset(r.group for r in load_split(tiny_dataset, k).test) for k in (1, 2, 3)]
    assert len(set(test_groups)) == 3
    assert all(len(groups) == 7 * len(TINY_SYNTHETIC["classes"]) for groups in test_groups)


def test_generation_is_cached_and_deterministic(tiny_dataset, tmp_path):
    spec = tiny_spec()
    stamp = (tiny_dataset / "spec.json").stat().st_mtime_ns
    assert ensure_synthetic_dataset(tiny_dataset, spec) == tiny_dataset
    assert (tiny_dataset / "spec.json").stat().st_mtime_ns == stamp  # reused, not regenerated
    again = ensure_synthetic_dataset(dataset_root(tmp_path, spec), spec)
    name = "MoveLeft/v_MoveLeft_g03_c01.avi"
    assert (again / "UCF-101" / name).read_bytes() == (tiny_dataset / "UCF-101" / name).read_bytes()


def test_unknown_keys_and_classes_are_named():
    with pytest.raises(ValueError, match="data.synthetic key.*'colour'"):
        SyntheticSpec.from_config({"colour": 1})
    with pytest.raises(ValueError, match="Jump"):
        SyntheticSpec.from_config({"classes": ["Jump"]})
    assert set(SyntheticSpec().classes) == set(MOTIONS)


def test_jobs_starting_together_generate_the_dataset_once(tmp_path, monkeypatch):
    import threading
    import time

    from ar_experiments.data import synthetic

    calls = []

    def slow_generate(root, spec):  # long enough that every job arrives while the first generates
        calls.append(root)
        time.sleep(0.3)
        (root / "UCF-101").mkdir(parents=True)

    monkeypatch.setattr(synthetic, "generate", slow_generate)
    spec = tiny_spec()
    root = dataset_root(tmp_path, spec)
    roots = []
    jobs = [threading.Thread(target=lambda: roots.append(ensure_synthetic_dataset(root, spec))) for _ in range(3)]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join()
    assert len(calls) == 1 and roots == [root] * 3
    assert (root / "spec.json").is_file() and not list(tmp_path.glob("*.tmp*"))
