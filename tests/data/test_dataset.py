import numpy as np
import pytest
import torch

from ar_experiments.data.dataset import VideoClipDataset, collate_videos
from ar_experiments.data.splits import load_split
from ar_experiments.data.training_batches import TrainingBatchSampler
from ar_experiments.data.transforms import ClipTransform, normalise_clips, to_normalised_tensor


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
    first = dataset[(3, 0)]
    assert (
        torch.equal(first["video"], dataset[(3, 0)]["video"]) and first["clip_start"] == dataset[(3, 0)]["clip_start"]
    )
    starts = {dataset[(3, epoch)]["clip_start"] for epoch in range(6)}
    assert len(starts) > 1, "the clip's start frame is drawn anew each epoch"
    assert not torch.equal(first["video"], dataset[(3, 1)]["video"])


def test_batch_sampler_shuffles_each_epoch_reproducibly_and_tags_the_epoch():
    sampler = TrainingBatchSampler(10, 3, rank=0, world_size=1, seed=0)
    sampler.set_epoch(2)
    batches = list(sampler)
    assert {epoch for batch in batches for _, epoch in batch} == {2}
    assert sorted(i for batch in batches for i, _ in batch) == list(range(10))
    assert [len(batch) for batch in batches] == [3, 3, 2, 2] and len(sampler) == 4
    assert batches == list(sampler)
    sampler.set_epoch(3)
    assert [i for batch in sampler for i, _ in batch] != [i for batch in batches for i, _ in batch]


def test_batch_sampler_resumes_at_its_saved_position():
    sampler = TrainingBatchSampler(20, 4, rank=0, world_size=1, seed=1)
    sampler.set_epoch(1)
    whole_epoch = list(sampler)
    for _ in range(2):
        sampler.batch_done(batches_in_epoch=5)
    restored = TrainingBatchSampler(20, 4, rank=0, world_size=1, seed=1)
    restored.load_state_dict(sampler.state_dict())
    assert list(restored) == whole_epoch[2:]
    for _ in range(3):  # the epoch's last batch moves the position to the next epoch's start
        sampler.batch_done(batches_in_epoch=5)
    assert sampler.state_dict() == {"epoch": 2, "batches_done": 0, "world_size": 1}


def test_test_items_hold_the_central_clip_then_every_view_as_uint8(tiny_dataset):
    records = load_split(tiny_dataset, 1).test[:2]
    dataset = _dataset(tiny_dataset, records, "views", temporal_views=3, spatial_crops=3)
    assert len(dataset) == 2
    item = dataset[1]
    assert item["index"] == 1
    assert item["video"].shape == (10, 8, 32, 32, 3) and item["video"].dtype == torch.uint8
    central = _dataset(tiny_dataset, records, "center")[1]["video"]
    torch.testing.assert_close(normalise_clips(item["video"][0]), central, rtol=0, atol=0)


def test_views_decoded_together_equal_views_decoded_one_by_one(tiny_dataset):
    """One decoding pass over the union of the views' frames gives each view's frames exactly."""
    from ar_experiments.data.clips import sample_clip_indices
    from ar_experiments.data.decode import decode_clip
    from ar_experiments.data.transforms import crop_clip

    record = load_split(tiny_dataset, 1).test[0]
    path = str(tiny_dataset / "UCF-101" / record.path)
    item = _dataset(tiny_dataset, [record], "views", temporal_views=4, spatial_crops=3)[0]["video"]
    for view in range(4):
        frames = decode_clip(path, lambda n, v=view: sample_clip_indices(n, 8, 8, "uniform", None, v, 4), 36)
        for crop, position in enumerate(("left", "center", "right")):
            expected = torch.from_numpy(np.ascontiguousarray(crop_clip(frames, 32, position)))
            assert torch.equal(item[1 + view * 3 + crop], expected)


def test_normalising_on_the_device_matches_the_workers_normalisation():
    frames = np.random.default_rng(0).integers(0, 256, (4, 6, 5, 3), dtype=np.uint8)
    assert torch.equal(normalise_clips(torch.from_numpy(frames)), to_normalised_tensor(frames))


def test_an_unreadable_training_video_is_replaced_without_mixing_labels(tiny_dataset, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(tiny_dataset, root)
    records = load_split(root, 1).train
    (root / "UCF-101" / records[0].path).write_bytes(b"\x00" * 100)  # truncated to garbage
    item = _dataset(root, records)[(0, 0)]
    assert item["skipped"] == records[0].path
    assert item["index"] == 1 and item["label"] == records[1].label


@pytest.mark.parametrize("sampling", ["center", "views"])
def test_an_unreadable_evaluation_video_is_left_out_of_its_batch(tiny_dataset, tmp_path, sampling):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(tiny_dataset, root)
    records = load_split(root, 1).test[:3]
    (root / "UCF-101" / records[1].path).write_bytes(b"")
    dataset = _dataset(root, records, sampling, temporal_views=2, spatial_crops=3)
    batch = collate_videos([dataset[i] for i in range(3)])
    assert batch["index"].tolist() == [0, 2] and batch["label"].tolist() == [records[0].label, records[2].label]
    assert batch["video"].shape[0] == 2
    assert batch["skipped"] == [records[1].path] and "empty" in batch["skipped_reason"][0]
    nothing = collate_videos([dataset[1]])
    assert nothing["video"] is None and nothing["index"].numel() == 0 and nothing["skipped"] == [records[1].path]


def test_clip_sampling_is_independent_of_worker_count(tiny_dataset):
    from torch.utils.data import DataLoader

    records = load_split(tiny_dataset, 1).train[:6]
    dataset = _dataset(tiny_dataset, records)
    batches = []
    for workers in (0, 2):
        sampler = TrainingBatchSampler(len(records), 2, rank=0, world_size=1, seed=0)
        loader = DataLoader(dataset, batch_sampler=sampler, num_workers=workers, collate_fn=collate_videos)
        batches.append(torch.cat([b["video"] for b in loader]))
    assert torch.equal(*batches)
    assert np.isfinite(batches[0].numpy()).all()
