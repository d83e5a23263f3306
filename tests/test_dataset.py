import numpy as np
import torch

from ar_experiments.data.dataset import EpochSeededRandomSampler, EpochTaggedSampler, VideoClipDataset
from ar_experiments.data.splits import load_split
from ar_experiments.data.transforms import ClipTransform


def _dataset(root, records, sampling="random", **kwargs):
    transform = ClipTransform(32, "random" if sampling == "random" else "center")
    return VideoClipDataset(records, root / "UCF-101", 8, 8, transform, short_side=36, sampling=sampling, **kwargs)


def test_items_are_normalised_clips_with_their_label(tiny_dataset):
    index = load_split(tiny_dataset, 1)
    item = _dataset(tiny_dataset, index.train, "center")[5]
    assert item["video"].shape == (3, 8, 32, 32) and item["video"].dtype == torch.float32
    assert item["label"] == index.train[5].label
    assert -3 < item["video"].mean() < 3


def test_training_clips_change_with_the_epoch_and_repeat_with_it(tiny_dataset):
    records = load_split(tiny_dataset, 1).train
    dataset = _dataset(tiny_dataset, records)
    first = dataset[(3, 0)]["video"]
    assert torch.equal(first, dataset[(3, 0)]["video"])
    assert not torch.equal(first, dataset[(3, 1)]["video"])


def test_sampler_carries_the_epoch_and_shuffles_reproducibly():
    sampler = EpochTaggedSampler(EpochSeededRandomSampler(10, seed=0))
    sampler.set_epoch(2)
    pairs = list(sampler)
    assert {epoch for _, epoch in pairs} == {2}
    assert sorted(i for i, _ in pairs) == list(range(10))
    assert pairs == list(sampler)
    sampler.set_epoch(3)
    assert [i for i, _ in sampler] != [i for i, _ in pairs]


def test_multi_view_items_stack_the_spatial_crops(tiny_dataset):
    records = load_split(tiny_dataset, 1).test[:2]
    dataset = _dataset(tiny_dataset, records, "views", temporal_views=3, spatial_crops=3)
    assert len(dataset) == 6
    item = dataset[4]
    assert item["index"] == 1 and item["view"] == 1
    assert item["video"].shape == (3, 3, 8, 32, 32)


def test_an_unreadable_video_is_replaced_without_mixing_labels(tiny_dataset, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(tiny_dataset, root)
    records = load_split(root, 1).train
    (root / "UCF-101" / records[0].path).write_bytes(b"\x00" * 100)  # truncated to garbage
    item = _dataset(root, records, "center")[0]
    assert item["skipped"] == records[0].path
    assert item["index"] == 1 and item["label"] == records[1].label


def test_clip_sampling_is_independent_of_worker_count(tiny_dataset):
    from torch.utils.data import DataLoader

    records = load_split(tiny_dataset, 1).train[:6]
    dataset = _dataset(tiny_dataset, records)
    sampler = EpochTaggedSampler(EpochSeededRandomSampler(len(records), seed=0))
    batches = [
        torch.cat([b["video"] for b in DataLoader(dataset, batch_size=2, sampler=sampler, num_workers=n)])
        for n in (0, 2)
    ]
    assert torch.equal(*batches)
    assert np.isfinite(batches[0].numpy()).all()
