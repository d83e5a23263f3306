"""`python -m ar_experiments.explore`: split sizes, class balance and frame strips."""

import csv
import subprocess
import sys

from ar_experiments.data.splits import hold_out_groups, load_split
from tests.conftest import REPO, tiny_overrides


def test_explore_prints_the_split_and_writes_its_figures(tiny_dataset, cache_dir, tmp_path):
    out = tmp_path / "explore"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ar_experiments.explore",
            "split=2",
            "explore.classes=2",
            f"explore.output_dir={out}",
            f"hydra.run.dir={tmp_path / 'hydra'}",
            *tiny_overrides(cache_dir),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    index = load_split(tiny_dataset, 2)
    train, val = hold_out_groups(index.train, 3, 0)
    table = {
        line.split()[0]: line.split()[1:4]
        for line in result.stdout.splitlines()
        if line.split()[:1] in (["train"], ["val"], ["test"])
    }
    assert table == {
        "train": [str(len(train)), "3", str(len({r.group for r in train}))],
        "val": [str(len(val)), "3", "9"],  # 3 held-out groups for each of the 3 classes
        "test": [str(len(index.test)), "3", str(len({r.group for r in index.test}))],
    }
    with open(out / "class_distribution.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["class"] for row in rows] == index.classes
    assert sum(int(row["test"]) for row in rows) == len(index.test)

    import matplotlib.image

    strips = matplotlib.image.imread(out / "frame_strips.png")
    distribution = matplotlib.image.imread(out / "class_distribution.png")
    assert strips.shape[1] > 2 * strips.shape[0]  # 2 class rows of 8 frames side by side
    assert distribution.shape[0] > 300 and distribution.shape[1] > 600
