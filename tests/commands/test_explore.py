"""`python -m ar_experiments.explore`: split sizes, class balance and frame strips."""

import csv

from ar_experiments.data.splits import hold_out_groups, load_split
from ar_experiments.explore import explore
from tests.conftest import compose, tiny_overrides


def test_explore_prints_the_split_and_writes_its_figures(tiny_dataset, cache_dir, tmp_path, capsys):
    out = tmp_path / "explore"
    overrides = ["split=2", "explore.classes=2", f"explore.output_dir={out}", *tiny_overrides(cache_dir, tmp_path)]
    explore(compose(overrides, config_name="explore"))
    stdout = capsys.readouterr().out
    index = load_split(tiny_dataset, 2)
    train, val = hold_out_groups(index.train, 3, 0)
    table = {
        line.split()[0]: line.split()[1:4]
        for line in stdout.splitlines()
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
    # explore.classes=2: 2 class rows of 8 frames, 13.0 x 3.6 inches (all 3 classes would be 13.0 x 5.0)
    assert strips.shape[1] > 3 * strips.shape[0]
    assert distribution.shape[0] > 300 and distribution.shape[1] > 600
