"""The demo's task needs motion: no single frame tells the class, the order of the frames does.

The dataset is generated with the generator settings of `conf/data/synthetic.yaml` (the
ones `make sweep` trains on), two clips per group instead of 4-7 to stay cheap (the clips
are drawn the same way). The frames are read back from the encoded AVI files as a run
reads them, at 18 pixels (short side) instead of the grid's 36. The same small 3D CNN, trained
the same way on split 1's training videos, is then tested on split 1's test videos fed

- ordered frames (the grid's 8-frame clip): it must learn the task;
- one frame, the clip's first, or its last (a frame at a known time: a start or end position
  that depended on the direction would show here): it must stay near chance;
- the same 8 frames in a random order: it could tell a turn from a shift and a horizontal
  shift from a vertical one (the set of views differs), never the direction, so at most half
  the clips;
- one frame of clips where a spot's place tells the class (a control): it must learn
  that, so the near-chance figure above is the data's, not a model blind to place.

This small CNN stands in for the grid's models, which take minutes per run: how far X3D-M
and SlowFast R50 get on these clips within `make sweep`'s budget is the sweep's table
(docs/synthetic.md, "What `make sweep` reaches here").
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ar_experiments.data.clips import sample_clip_indices
from ar_experiments.data.decode import decode_clip
from ar_experiments.data.splits import load_split
from ar_experiments.data.synthetic import SyntheticSpec, _scene, dataset_root, ensure_synthetic_dataset, render_clip
from tests.conftest import synthetic_spec

REPO = Path(__file__).resolve().parents[2]
FRAMES, STRIDE = 8, 8  # the grid's 8-frame clip (conf/train.yaml clip.strides)
SHORT_SIDE = 18  # half the grid's 36: the test trains in seconds


def demo_spec() -> SyntheticSpec:
    return synthetic_spec(clips_per_group=[2, 2])


@pytest.fixture(scope="module")
def demo_videos(tmp_path_factory):
    """(train, test) lists of (frames (N, H, W, 3) uint8, label) of split 1."""
    spec = demo_spec()
    root = ensure_synthetic_dataset(dataset_root(tmp_path_factory.mktemp("demo"), spec), spec)
    split = load_split(root, 1)

    def read(records):
        every = lambda n: np.arange(n)  # noqa: E731  (all frames: clips are cut from them below)
        return [(decode_clip(str(root / "UCF-101" / r.path), every, short_side=SHORT_SIDE), r.label) for r in records]

    return read(split.train), read(split.test), len(split.classes)


def clips(videos, rng, mode: str):
    """(B, 3, T, H, W) float clips, central square crop; `random` start for training, `center` for testing."""
    out = []
    for frames, _ in videos:
        idx = sample_clip_indices(len(frames), FRAMES, STRIDE, mode, rng)
        clip = frames[idx]
        off = (clip.shape[2] - clip.shape[1]) // 2
        out.append(clip[:, :, off : off + clip.shape[1]])
    x = torch.from_numpy(np.stack(out)).float().div(255.0).permute(0, 4, 1, 2, 3)
    return (x - 0.45) / 0.225


def single_first(x, rng):
    return x[:, :, :1]


def single_last(x, rng):
    return x[:, :, -1:]


def single_random(x, rng):  # training: any one frame of the clip
    t = int(rng.integers(x.shape[2]))
    return x[:, :, t : t + 1]


def shuffled(x, rng):
    order = torch.stack([torch.from_numpy(rng.permutation(x.shape[2])) for _ in range(len(x))])
    return torch.take_along_dim(x, order[:, None, :, None, None].expand_as(x), dim=2)


def ordered(x, rng):
    return x


def mark(x, labels):
    """A leak: a bright spot whose place in every frame tells the class (as a start position would)."""
    x = x.clone()
    for i, label in enumerate(labels):
        row, col = divmod(int(label), 3)
        x[i, :, :, 2 + 6 * row : 5 + 6 * row, 2 + 6 * col : 5 + 6 * col] = 3.0
    return x


def small_3d_cnn(num_classes: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv3d(3, 16, 3, padding=1),
        nn.BatchNorm3d(16),
        nn.ReLU(),
        nn.MaxPool3d((1, 2, 2)),
        nn.Conv3d(16, 32, 3, padding=1),
        nn.BatchNorm3d(32),
        nn.ReLU(),
        nn.AdaptiveAvgPool3d((1, 3, 3)),  # keeps where things are: a class told by a place would show
        nn.Flatten(),
        nn.Linear(32 * 9, num_classes),
    )


def train_and_test(videos, view_train, view_test, *, leak=False, epochs=40, seed=0) -> float:
    """Test top-1 of the small 3D CNN trained on `view_train` of random clips, tested on `view_test` of central ones."""
    train, test, num_classes = videos
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = small_3d_cnn(num_classes)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    train_labels = torch.tensor([label for _, label in train])
    for _ in range(epochs):
        x_all = clips(train, rng, "random")
        if leak:
            x_all = mark(x_all, train_labels)
        net.train()
        for batch in torch.randperm(len(train)).split(16):
            loss = nn.functional.cross_entropy(net(view_train(x_all[batch], rng)), train_labels[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
    test_labels = torch.tensor([label for _, label in test])
    x = clips(test, rng, "center")
    if leak:
        x = mark(x, test_labels)
    net.eval()
    with torch.no_grad():
        predicted = net(view_test(x, rng)).argmax(1)
    return (predicted == test_labels).float().mean().item()


@pytest.fixture(scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow  # ~1 minute of one core (generation, decoding, five small trainings)
def test_order_of_frames_tells_the_class_and_one_frame_does_not(demo_videos, one_thread):
    num_classes = demo_videos[2]
    chance = 1.0 / num_classes
    assert num_classes >= 4
    results = {
        "ordered": train_and_test(demo_videos, ordered, ordered),
        "first frame": train_and_test(demo_videos, single_random, single_first),
        "last frame": train_and_test(demo_videos, single_random, single_last),
        "shuffled": train_and_test(demo_videos, shuffled, shuffled),
        "control: one frame, a spot's place tells the class": train_and_test(
            demo_videos, single_random, single_first, leak=True
        ),
    }
    print({name: round(top1, 3) for name, top1 in results.items()})  # pytest -s shows the figures
    assert results["control: one frame, a spot's place tells the class"] >= 0.9, results
    assert results["ordered"] >= 0.8, results
    # ~84 test clips: chance +- two binomial standard deviations is about +- 0.08
    assert results["first frame"] <= chance + 0.1, results
    assert results["last frame"] <= chance + 0.1, results
    assert results["shuffled"] <= 0.5 + 0.1, results
    assert results["ordered"] >= results["shuffled"] + 0.25, results


def _displacement(a: np.ndarray, b: np.ndarray, reach: int = 8) -> tuple[int, int]:
    """The (dx, dy) shift that best maps the centre of grey frame `a` onto `b` (cross-correlation)."""
    a, b = a - a.mean(), b - b.mean()
    h, w = a.shape
    core = a[reach : h - reach, reach : w - reach]
    scores = {
        (dx, dy): float(np.sum(core * b[reach + dy : h - reach + dy, reach + dx : w - reach + dx]))
        for dx in range(-reach, reach + 1)
        for dy in range(-reach, reach + 1)
    }
    return max(scores, key=scores.get)


def test_every_class_moves_the_scene_as_its_name_says():
    """Measured on rendered frames: shifts move the view's content their way, turns turn it their way."""
    spec = replace(demo_spec(), noise=0.0, speed=(0.5, 0.5))
    rng = np.random.default_rng(0)
    style = _scene(rng, spec)
    expected = {"MoveRight": (5, 0), "MoveLeft": (-5, 0), "MoveUp": (0, -5), "MoveDown": (0, 5)}
    for motion in spec.classes:
        frames = render_clip(motion, style, rng, spec).mean(-1)
        if motion in expected:  # 10 frames at 0.5 pixels a frame
            assert _displacement(frames[0], frames[10]) == expected[motion], motion
            continue
        # a turn about (near) the centre: a patch above it moves sideways one way, a patch below it the other
        clockwise = 1 if motion == "RotateClockwise" else -1
        columns = range(8, spec.width - 20, 12)
        top = sum(_patch_shift(frames[0], frames[10], 2, left)[0] for left in columns)
        bottom = sum(_patch_shift(frames[0], frames[10], spec.height - 14, left)[0] for left in columns)
        assert np.sign(top) == clockwise and np.sign(bottom) == -clockwise, (
            motion,
            top,
            bottom,
        )  # clockwise: top right


def _patch_shift(a: np.ndarray, b: np.ndarray, top: int, left: int, size: int = 12, reach: int = 6) -> tuple[int, int]:
    """Where the `size`-pixel patch of `a` at (top, left) went in `b`: the (dx, dy) of least squared difference."""
    patch = a[top : top + size, left : left + size]
    h, w = b.shape
    scores = {
        (dx, dy): float(np.sum((b[top + dy : top + dy + size, left + dx : left + dx + size] - patch) ** 2))
        for dx in range(-reach, reach + 1)
        for dy in range(-reach, reach + 1)
        if 0 <= top + dy and top + dy + size <= h and 0 <= left + dx and left + dx + size <= w
    }
    return min(scores, key=scores.get)


@pytest.mark.slow  # a property of the generator over many rendered clips: seconds, not milliseconds
def test_single_frames_look_alike_in_every_class():
    """Brightness, contrast and texture of the first, middle and last frames: the same in every class."""
    spec = demo_spec()
    rng = np.random.default_rng(1)
    styles = [_scene(rng, spec) for _ in range(4)]
    clips = 24
    stats = {}  # class -> (clips, 3 frame times, 4 statistics)
    for motion in spec.classes:
        rows = []
        for k in range(clips):
            frames = render_clip(motion, styles[k % 4], rng, spec).astype(np.float32).mean(-1)
            picked = frames[[0, len(frames) // 2, len(frames) - 1]]
            rows.append(
                np.stack(
                    [
                        picked.mean((1, 2)),
                        picked.std((1, 2)),
                        np.abs(np.diff(picked, axis=2)).mean((1, 2)),  # horizontal texture
                        np.abs(np.diff(picked, axis=1)).mean((1, 2)),  # vertical texture
                    ],
                    -1,
                )
            )
        stats[motion] = np.asarray(rows)
    everything = np.concatenate(list(stats.values()))
    standard_error = everything.std(0) / np.sqrt(clips)
    for motion, rows in stats.items():
        gap = np.abs(rows.mean(0) - everything.mean(0)) / standard_error
        assert gap.max() < 4, (motion, gap.round(1))  # a class whose first or last frames differed would stand out
