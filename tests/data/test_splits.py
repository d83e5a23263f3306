import re
from pathlib import Path

import pytest

from ar_experiments.data.splits import (
    ROOT_HINT,
    DatasetIndexError,
    VideoRecord,
    group_of,
    hold_out_groups,
    load_split,
    read_class_index,
    read_split_file,
)

CLASSES = ["ApplyEyeMakeup", "HandstandPushups", "YoYo"]


def write_ucf_layout(root: Path, train_lines: list[str], test_lines: list[str]) -> Path:
    """A UCF101-like folder with CRLF split files, as the official download has."""
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_bytes(b"".join(f"{i} {c}\r\n".encode() for i, c in enumerate(CLASSES, 1)))
    (lists / "trainlist01.txt").write_bytes("".join(f"{line}\r\n" for line in train_lines).encode())
    (lists / "testlist01.txt").write_bytes("".join(f"{line}\r\n" for line in test_lines).encode())
    for line in train_lines + test_lines:
        video = root / "UCF-101" / line.split()[0]
        video.parent.mkdir(parents=True, exist_ok=True)
        video.write_bytes(b"")
    return root


def test_class_index_is_one_based_and_tolerates_crlf(tmp_path):
    path = tmp_path / "classInd.txt"
    path.write_bytes(b"1 ApplyEyeMakeup\r\n2 HandstandPushups\r\n3 YoYo\r\n")
    assert read_class_index(path) == CLASSES


def test_labels_are_class_index_minus_one_and_casing_quirk_is_tolerated(tmp_path):
    root = write_ucf_layout(
        tmp_path,
        ["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1", "HandstandPushups/v_HandStandPushups_g08_c01.avi 2"],
        ["YoYo/v_YoYo_g01_c01.avi", "HandstandPushups/v_HandStandPushups_g01_c02.avi"],
    )
    index = load_split(root, 1)
    assert [r.label for r in index.train] == [0, 1]
    assert [r.label for r in index.test] == [2, 1]  # testlists have no labels: looked up by folder
    assert index.train[1].group == "handstandpushups_g08"


def test_group_of_ignores_class_name_casing():
    assert group_of("HandstandPushups/v_HandStandPushups_g08_c01.avi") == group_of(
        "HandstandPushups/v_HandstandPushups_g08_c04.avi"
    )


def test_every_problem_is_reported_with_file_and_line(tmp_path):
    root = write_ucf_layout(tmp_path, ["YoYo/v_YoYo_g01_c01.avi 3"], ["YoYo/v_YoYo_g02_c01.avi"])
    lists = root / "ucfTrainTestlist"
    (lists / "trainlist01.txt").write_bytes(
        b"YoYo/v_YoYo_g01_c01.avi 3\r\n"
        b"Juggling/v_Juggling_g01_c01.avi 4\r\n"  # unknown class
        b"YoYo/v_YoYo_g09_c01.avi 3\r\n"  # missing file
        b"YoYo/v_YoYo_g01_c01.avi 3\r\n"  # duplicate
        b"YoYo/v_YoYo_g01_c01.avi\r\n"  # malformed: no label
    )
    with pytest.raises(DatasetIndexError) as caught:
        load_split(root, 1)
    problems = caught.value.problems
    assert any("trainlist01.txt:2" in p and "unknown class 'Juggling'" in p for p in problems)
    assert any("trainlist01.txt:3" in p and "video not found" in p and "data.root" in p for p in problems)
    assert any("trainlist01.txt:4" in p and "duplicate" in p for p in problems)
    assert any("trainlist01.txt:5" in p for p in problems)


@pytest.mark.parametrize("entry", ["../outside/v_YoYo_g01_c01.avi 3", "/etc/v_YoYo_g01_c01.avi 3"])
def test_entries_pointing_outside_the_root_are_rejected(tmp_path, entry):
    write_ucf_layout(tmp_path, ["YoYo/v_YoYo_g01_c01.avi 3"], ["YoYo/v_YoYo_g02_c01.avi"])
    path = tmp_path / "ucfTrainTestlist" / "trainlist01.txt"
    path.write_text(f"{entry}\r\n")
    with pytest.raises(DatasetIndexError, match="trainlist01.txt:1.*outside data.root"):
        read_split_file(path, CLASSES, tmp_path / "UCF-101", labelled=True)


def test_symlink_out_of_the_root_is_rejected(tmp_path):
    write_ucf_layout(tmp_path / "data", ["YoYo/v_YoYo_g01_c01.avi 3"], ["YoYo/v_YoYo_g02_c01.avi"])
    outside = tmp_path / "secret.avi"
    outside.write_bytes(b"")
    link = tmp_path / "data" / "UCF-101" / "YoYo" / "v_YoYo_g03_c01.avi"
    link.symlink_to(outside)
    path = tmp_path / "data" / "ucfTrainTestlist" / "trainlist01.txt"
    path.write_text("YoYo/v_YoYo_g03_c01.avi 3\nYoYo/v_YoYo_g04_c01.avi 3\n")
    with pytest.raises(DatasetIndexError) as caught:
        read_split_file(path, CLASSES, tmp_path / "data" / "UCF-101", labelled=True)
    assert [p.split(":")[1] for p in caught.value.problems] == ["1", "2"]  # the next line is still read
    assert "resolves outside data.root" in caught.value.problems[0]


def test_missing_root_names_the_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="data.root"):
        load_split(tmp_path / "nope", 1)


def test_group_holdout_is_disjoint_stratified_and_deterministic(tiny_dataset):
    index = load_split(tiny_dataset, 1)
    train, val = hold_out_groups(index.train, groups_per_class=3, seed=0)
    assert {r.group for r in train}.isdisjoint({r.group for r in val})
    assert len(train) + len(val) == len(index.train)
    for label in range(len(index.classes)):
        assert len({r.group for r in val if r.label == label}) == 3
    again_train, again_val = hold_out_groups(index.train, groups_per_class=3, seed=0)
    assert again_val == val and again_train == train
    _, other_val = hold_out_groups(index.train, groups_per_class=3, seed=1)
    assert {r.group for r in other_val} != {r.group for r in val}


def test_test_groups_never_appear_in_training(tiny_dataset):
    for split in (1, 2, 3):
        index = load_split(tiny_dataset, split)
        assert {r.group for r in index.train}.isdisjoint({r.group for r in index.test})


def test_the_index_check_names_every_entry_that_escapes_the_root(tmp_path):
    root = write_ucf_layout(tmp_path / "data", ["YoYo/v_YoYo_g01_c01.avi 3"], ["YoYo/v_YoYo_g02_c01.avi"])
    (tmp_path / "v_YoYo_g03_c01.avi").write_bytes(b"")  # exists, so only the check can stop it
    (root / "ucfTrainTestlist" / "testlist01.txt").write_bytes(
        b"YoYo/v_YoYo_g02_c01.avi\r\n"
        b"../../v_YoYo_g03_c01.avi\r\n"
        + f"{tmp_path / 'v_YoYo_g03_c01.avi'}\r\n".encode()
        + b"YoYo\\..\\..\\..\\v_YoYo_g03_c01.avi\r\n"
        b"C:/UCF/v_YoYo_g04_c01.avi\r\n"
    )
    with pytest.raises(DatasetIndexError) as caught:
        load_split(root, 1)
    escaping = [p for p in caught.value.problems if "points outside data.root" in p]
    assert [p.split(":", 2)[1] for p in escaping] == ["2", "3", "4", "5"]
    assert all(p.startswith("testlist01.txt:") for p in escaping)


def test_a_long_list_of_problems_shows_the_first_20_and_counts_the_rest():
    problems = [f"trainlist01.txt:{n}: unknown class 'Juggling'" for n in range(1, 26)]
    message = str(DatasetIndexError(problems))
    assert message == "25 problem(s) in the dataset index:\n  " + "\n  ".join(problems[:20]) + "\n  ... and 5 more"
    assert str(DatasetIndexError(problems[:20])) == "20 problem(s) in the dataset index:\n  " + "\n  ".join(
        problems[:20]
    )
    assert DatasetIndexError(problems).problems == problems


def test_class_index_problems_are_listed_each_with_its_line(tmp_path):
    path = tmp_path / "classInd.txt"
    with pytest.raises(FileNotFoundError, match=f"^{re.escape(f'class index not found: {path}; {ROOT_HINT}')}$"):
        read_class_index(path)
    path.write_text("1 ApplyEyeMakeup\nYoYo\n3\n4 YoYo\n")
    with pytest.raises(DatasetIndexError) as caught:
        read_class_index(path)
    assert caught.value.problems == [
        "classInd.txt:2: expected '<index> <ClassName>', got 'YoYo'",
        "classInd.txt:3: expected '<index> <ClassName>', got '3'",
        "classInd.txt: class indices must run 1..2 without gaps",
    ]
    path.write_text("\n")
    with pytest.raises(DatasetIndexError) as caught:
        read_class_index(path)
    assert caught.value.problems == [f"classInd.txt: no classes listed; {ROOT_HINT}"]


def test_a_missing_class_index_is_one_of_the_listed_problems(tmp_path):
    root = write_ucf_layout(tmp_path, ["YoYo/v_YoYo_g01_c01.avi 3"], ["YoYo/v_YoYo_g02_c01.avi"])
    (root / "ucfTrainTestlist" / "classInd.txt").unlink()
    with pytest.raises(DatasetIndexError) as caught:
        load_split(root, 1)
    assert caught.value.problems == [
        f"class index not found: {root / 'ucfTrainTestlist' / 'classInd.txt'}; {ROOT_HINT}"
    ]


def test_split_file_problems_word_for_word(tmp_path):
    root = write_ucf_layout(tmp_path, ["YoYo/v_YoYo_g01_c01.avi 3"], ["YoYo/v_YoYo_g02_c01.avi"])
    lists = root / "ucfTrainTestlist"
    (lists / "trainlist01.txt").write_text(
        "YoYo/v_YoYo_g01_c01.avi 3\n"
        "YoYo/v_YoYo_g01_c01.avi\n"  # no label
        "YoYo/v_YoYo_g01_c01.avi 2\n"  # duplicate of line 1
        "YoYo/v_YoYo_g05_c01.avi 1 x\n"  # three fields
        "YoYo/v_YoYo_c01.avi 3\n"  # no group
    )
    (lists / "testlist01.txt").write_text(
        "YoYo/v_YoYo_g02_c01.avi 3\nYoYo/v_YoYo_g02_c01.avi 3 x\nc:/v_YoYo_g03_c01.avi\n"
    )
    with pytest.raises(DatasetIndexError) as caught:
        load_split(root, 1)
    assert caught.value.problems == [
        "trainlist01.txt:2: expected '<Class>/<video>.avi <label>', got 'YoYo/v_YoYo_g01_c01.avi'",
        "trainlist01.txt:3: duplicate entry 'YoYo/v_YoYo_g01_c01.avi' (first on line 1); delete one of them",
        "trainlist01.txt:4: expected '<Class>/<video>.avi <label>', got 'YoYo/v_YoYo_g05_c01.avi 1 x'",
        "trainlist01.txt:5: no _gXX_cYY group in video name 'v_YoYo_c01.avi'; "
        "UCF101 names videos <Class>/v_<Class>_gXX_cYY.avi",
        "testlist01.txt:2: expected '<Class>/<video>.avi', got 'YoYo/v_YoYo_g02_c01.avi 3 x'",
        "testlist01.txt:3: 'c:/v_YoYo_g03_c01.avi' points outside data.root; entries must be '<Class>/<video>.avi'",
    ]


def test_a_trainlist_label_must_match_its_class(tmp_path):
    root = write_ucf_layout(tmp_path, ["YoYo/v_YoYo_g01_c01.avi 2"], ["YoYo/v_YoYo_g02_c01.avi"])
    with pytest.raises(DatasetIndexError, match="label '2' does not match class 'YoYo' \\(classInd.txt says 3\\)"):
        load_split(root, 1)


def test_group_of_reads_windows_paths_and_names_without_v_prefix():
    assert group_of("YoYo\\v_YoYo_g01_c02.avi") == "yoyo_g01"
    assert group_of("YoYo_g7_c02.avi") == "yoyo_g07"
    with pytest.raises(ValueError, match="^no _gXX_cYY group in video name 'v_YoYo.avi'$"):
        group_of("YoYo/v_YoYo.avi")


def records(groups_per_class: int) -> list[VideoRecord]:
    return [
        VideoRecord(f"{c}/v_{c}_g{g:02d}_c01.avi", label, f"{c.lower()}_g{g:02d}")
        for label, c in enumerate(CLASSES)
        for g in range(1, groups_per_class + 1)
    ]


def test_hold_out_takes_exactly_the_groups_asked_for_or_none():
    assert hold_out_groups(records(3), groups_per_class=0, seed=0) == (records(3), [])
    for seed in range(20):  # drawn without replacement: never the same group twice
        train, val = hold_out_groups(records(3), groups_per_class=2, seed=seed)
        assert (len(train), len(val)) == (3, 6)
    train, val = hold_out_groups(records(3), groups_per_class=1, seed=0)
    assert (len(train), len(val)) == (6, 3)
    with pytest.raises(ValueError) as caught:
        hold_out_groups(records(3), groups_per_class=3, seed=0)
    assert str(caught.value) == (
        "class 0 has 3 training groups; cannot hold out data.val_groups_per_class=3 and keep any for training"
    )


def test_every_kind_of_entry_problem_is_listed_and_the_next_lines_still_read(tmp_path):
    root = write_ucf_layout(tmp_path, ["YoYo/v_YoYo_g01_c01.avi 3"], ["YoYo/v_YoYo_g02_c01.avi 1"])
    videos = root / "UCF-101"
    (root / "ucfTrainTestlist" / "trainlist01.txt").write_text(
        "YoYo/v_YoYo_g01_c01.avi x\n"
        "Juggling/v_Juggling_g01_c01.avi 4\n"
        "YoYo/v_YoYo_g01_c02.avi 1\n"
        "YoYo/v_YoYo_c03.avi 3\n"
        "YoYo/v_YoYo_g09_c01.avi 3\n"
        "YoYo/v_YoYo_g10_c01.avi 3\n"
    )
    with pytest.raises(DatasetIndexError) as caught:
        load_split(root, 1)  # the testlist's label, wrong as it is, is ignored: testlists are unlabelled
    assert caught.value.problems == [
        "trainlist01.txt:1: label 'x' does not match class 'YoYo' (classInd.txt says 3); fix the label or the class "
        "folder",
        "trainlist01.txt:2: unknown class 'Juggling' (not in classInd.txt); fix the entry's class folder or add the "
        "class to classInd.txt",
        "trainlist01.txt:3: label '1' does not match class 'YoYo' (classInd.txt says 3); fix the label or the class "
        "folder",
        "trainlist01.txt:4: no _gXX_cYY group in video name 'v_YoYo_c03.avi'; UCF101 names videos "
        "<Class>/v_<Class>_gXX_cYY.avi",
        f"trainlist01.txt:5: video not found: {videos / 'YoYo/v_YoYo_g09_c01.avi'}; {ROOT_HINT}",
        f"trainlist01.txt:6: video not found: {videos / 'YoYo/v_YoYo_g10_c01.avi'}; {ROOT_HINT}",
    ]


def test_an_empty_split_and_a_file_that_is_not_text_are_named(tmp_path):
    root = write_ucf_layout(tmp_path, ["YoYo/v_YoYo_g01_c01.avi 3"], ["YoYo/v_YoYo_g02_c01.avi"])
    (root / "ucfTrainTestlist" / "trainlist01.txt").write_text("\n")
    with pytest.raises(DatasetIndexError) as caught:
        load_split(root, 1)
    assert caught.value.problems == [f"trainlist01.txt: the split is empty; {ROOT_HINT}"]
    (root / "ucfTrainTestlist" / "classInd.txt").write_bytes(b"\xff1 YoYo\n")
    with pytest.raises(DatasetIndexError) as caught:
        load_split(root, 1)
    assert caught.value.problems == [
        "classInd.txt: not a text file (invalid start byte at byte 0); restore the official split file"
    ]


def test_a_class_index_saved_with_a_byte_order_mark_reads(tmp_path):
    path = tmp_path / "classInd.txt"
    path.write_bytes("1 ApplyEyeMakeup\r\n2 HandstandPushups\r\n3 YoYo\r\n".encode("utf-8-sig"))
    assert read_class_index(path) == CLASSES
