"""UCF101 split files -> an index of videos, checked before any heavy work.

Formats (ucfTrainTestlist/): `classInd.txt` holds "<1-based index> <ClassName>",
`trainlist0k.txt` holds "<Class>/<video>.avi <1-based label>", and
`testlist0k.txt` holds "<Class>/<video>.avi" with no label. Files use CRLF.
The label is looked up by class folder, case-insensitively: the real dataset's
folder `HandstandPushups` holds `v_HandStandPushups_g08_c01.avi`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

GROUP_PATTERN = re.compile(r"_g(\d+)_c(\d+)\.\w+$", re.IGNORECASE)
SPLITS = (1, 2, 3)  # UCF101's official train/test splits
VIDEOS_FOLDER = "UCF-101"  # under data.root, beside ucfTrainTestlist/
ROOT_HINT = "is data.root the folder that holds UCF-101/ and ucfTrainTestlist/?"


@dataclass(frozen=True)
class VideoRecord:
    """One video of a split: its path under the videos folder, label and group."""

    path: str
    label: int
    group: str


class DatasetIndexError(ValueError):
    """Every problem found in a dataset's split files, listed at once."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        shown = problems[:20]
        more = f"\n  ... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        super().__init__(f"{len(problems)} problem(s) in the dataset index:\n  " + "\n  ".join(shown) + more)


def _lines(path: Path) -> list[tuple[int, str]]:
    """Non-empty lines with their 1-based numbers; tolerates CRLF and a UTF-8 BOM."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # (codec names ignore case: an equivalent mutant)
    except UnicodeDecodeError as err:
        raise DatasetIndexError(
            [f"{path.name}: not a text file ({err.reason} at byte {err.start}); restore the official split file"]
        ) from None
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def read_class_index(path: Path) -> list[str]:
    """Class names ordered by their 0-based label (classInd index - 1)."""
    if not path.is_file():
        raise FileNotFoundError(f"class index not found: {path}; {ROOT_HINT}")
    entries: dict[int, str] = {}
    problems = []
    for number, line in _lines(path):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            problems.append(f"{path.name}:{number}: expected '<index> <ClassName>', got {line!r}")
            continue
        entries[int(parts[0])] = parts[1]
    if not entries:
        problems.append(f"{path.name}: no classes listed; {ROOT_HINT}")
    elif sorted(entries) != list(range(1, len(entries) + 1)):
        problems.append(f"{path.name}: class indices must run 1..{len(entries)} without gaps")
    if problems:
        raise DatasetIndexError(problems)
    return [entries[i] for i in sorted(entries)]


def group_of(video_path: str) -> str:
    """'ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi' -> 'applyeyemakeup_g08'.

    Lower-cased, so both casings of a class name land in the same group.
    """
    name = video_path.replace("\\", "/").split("/")[-1]
    match = GROUP_PATTERN.search(name)
    if match is None:
        raise ValueError(f"no _gXX_cYY group in video name {name!r}")
    class_part = name[2 : match.start()] if name.lower().startswith("v_") else name[: match.start()]
    return f"{class_part.lower()}_g{int(match.group(1)):02d}"


def read_split_file(path: Path, classes: list[str], videos_dir: Path, labelled: bool) -> list[VideoRecord]:
    """Parse one train/test list, collecting every problem before raising."""
    if not path.is_file():
        raise FileNotFoundError(f"split file not found: {path}; {ROOT_HINT}")
    by_name = {name.lower(): label for label, name in enumerate(classes)}
    records: list[VideoRecord] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    root = videos_dir.resolve()
    for number, line in _lines(path):
        where = f"{path.name}:{number}"
        parts = line.split()
        if len(parts) not in ((2,) if labelled else (1, 2)):  # a labelled testlist is tolerated
            problems.append(f"{where}: expected '<Class>/<video>.avi{' <label>' if labelled else ''}', got {line!r}")
            continue
        rel = parts[0].replace("\\", "/")
        if rel in seen:
            problems.append(f"{where}: duplicate entry {rel!r} (first on line {seen[rel]}); delete one of them")
            continue
        seen[rel] = number
        if rel.startswith("/") or ".." in rel.split("/") or re.match(r"^[A-Za-z]:", rel):
            problems.append(f"{where}: {rel!r} points outside data.root; entries must be '<Class>/<video>.avi'")
            continue
        class_name = rel.split("/")[0]
        if class_name.lower() not in by_name or "/" not in rel:
            problems.append(
                f"{where}: unknown class {class_name!r} (not in classInd.txt); "
                "fix the entry's class folder or add the class to classInd.txt"
            )
            continue
        label = by_name[class_name.lower()]
        if labelled and len(parts) == 2:
            if not parts[1].isdigit() or int(parts[1]) - 1 != label:
                problems.append(
                    f"{where}: label {parts[1]!r} does not match class {class_name!r} "
                    f"(classInd.txt says {label + 1}); fix the label or the class folder"
                )
                continue
        try:
            group = group_of(rel)
        except ValueError as err:
            problems.append(f"{where}: {err}; UCF101 names videos <Class>/v_<Class>_gXX_cYY.avi")
            continue
        full = videos_dir / rel
        if not full.is_file():
            problems.append(f"{where}: video not found: {full}; {ROOT_HINT}")
            continue
        if not full.resolve().is_relative_to(root):
            problems.append(
                f"{where}: {rel!r} resolves outside data.root (a symlink pointing out?); copy the video in instead"
            )
            continue
        records.append(VideoRecord(rel, label, group))
    if not records and not problems:
        problems.append(f"{path.name}: the split is empty; {ROOT_HINT}")
    if problems:
        raise DatasetIndexError(problems)
    return records


@dataclass(frozen=True)
class SplitIndex:
    """Class names and the train/test records of one official split."""

    classes: list[str]
    train: list[VideoRecord]
    test: list[VideoRecord]


def load_split(root: Path, split: int) -> SplitIndex:
    """Read and check split `split` (1, 2 or 3); all problems, missing list files included, are reported together."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"data.root does not exist: {root}; set data.root=/path/to/folder holding UCF-101/")
    lists = root / "ucfTrainTestlist"
    videos = root / VIDEOS_FOLDER
    try:
        classes = read_class_index(lists / "classInd.txt")
    except FileNotFoundError as err:
        raise DatasetIndexError([str(err)]) from None
    problems: list[str] = []
    parts = {}
    for part, labelled in (("train", True), ("test", False)):
        try:
            parts[part] = read_split_file(lists / f"{part}list0{split}.txt", classes, videos, labelled)
        except DatasetIndexError as err:
            problems.extend(err.problems)
        except FileNotFoundError as err:
            problems.append(str(err))
    if problems:
        raise DatasetIndexError(problems)
    return SplitIndex(classes, parts["train"], parts["test"])


def hold_out_groups(
    records: list[VideoRecord], groups_per_class: int, seed: int
) -> tuple[list[VideoRecord], list[VideoRecord]]:
    """Split train records into (train, val) by holding out whole groups per class.

    Clips of one group share actor and scene, so holding out single clips would
    leak; each class gives `groups_per_class` of its groups to validation,
    chosen by `seed` independently of the training seed.
    """
    import numpy as np

    if groups_per_class <= 0:  # (< 0 would hold out 0 groups per class below: an equivalent mutant)
        return list(records), []
    groups_by_label: dict[int, list[str]] = {}
    for record in records:
        groups = groups_by_label.setdefault(record.label, [])
        if record.group not in groups:
            groups.append(record.group)
    rng = np.random.default_rng(seed)
    held_out: set[str] = set()
    for label in sorted(groups_by_label):
        groups = sorted(groups_by_label[label])
        if len(groups) <= groups_per_class:
            raise ValueError(
                f"class {label} has {len(groups)} training groups; cannot hold out "
                f"data.val_groups_per_class={groups_per_class} and keep any for training"
            )
        # (replace=None draws without replacement too: an equivalent mutant)
        held_out.update(rng.choice(groups, size=groups_per_class, replace=False).tolist())
    train = [r for r in records if r.group not in held_out]
    val = [r for r in records if r.group in held_out]
    return train, val
