"""LightningDataModule over a UCF101-layout folder (real or synthetic)."""

from __future__ import annotations

import logging
import multiprocessing
from pathlib import Path

import pytorch_lightning as pl
from torch.utils.data import DataLoader

from .dataset import ShardSampler, VideoClipDataset, collate_videos
from .loader_workers import VideoLoader, leave_signals_to_the_main_process
from .splits import VIDEOS_FOLDER, SplitIndex, hold_out_groups, load_split
from .synthetic import SyntheticSpec, dataset_root, ensure_synthetic_dataset
from .training_batches import ResumableDataLoader, TrainingBatchSampler
from .transforms import ClipTransform
from .video_limits import DEFAULT_MAX_ASPECT_RATIO

log = logging.getLogger(__name__)

TEST_CLIPS_PER_TRAINING_CLIP = 4


class VideoDataModule(pl.LightningDataModule):
    """Train/val/test loaders for one official split.

    Validation holds out whole groups of the trainlist (stratified per class;
    none with val_groups_per_class=0, the published protocol: then there is no
    validation loop); the testlist is the test set, tested at `test_crop_size`
    (default: crop_size). With `synthetic` set, the dataset is generated into
    `cache_dir` on first use and `root` is ignored.
    """

    def __init__(
        self,
        root: str | None,
        split: int,
        frames: int,
        stride: int,
        crop_size: int,
        short_side: int,
        batch_size: int = 8,
        num_workers: int = 2,
        val_groups_per_class: int = 3,
        holdout_seed: int = 0,
        train_flip: bool = True,
        temporal_views: int = 1,
        spatial_crops: int = 1,
        test_crop_size: int | None = None,
        on_bad_video: str = "skip",
        max_aspect_ratio: float | None = DEFAULT_MAX_ASPECT_RATIO,
        synthetic: dict | None = None,
        cache_dir: str | None = None,
        seed: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        prefetch_factor: int | None = None,
        name: str = "ucf101",
    ):
        super().__init__()
        self.name = name
        self.spec = SyntheticSpec.from_config(synthetic) if synthetic else None
        self.root = dataset_root(cache_dir, self.spec) if self.spec else Path(root).expanduser()
        self.split = split
        self.frames, self.stride = frames, stride
        self.crop_size, self.short_side = crop_size, short_side
        self.test_crop_size = test_crop_size or crop_size
        self.batch_size, self.num_workers = batch_size, num_workers
        self.val_groups_per_class, self.holdout_seed = val_groups_per_class, holdout_seed
        self.train_flip = train_flip
        self.temporal_views, self.spatial_crops = temporal_views, spatial_crops
        self.on_bad_video = on_bad_video
        self.max_aspect_ratio = max_aspect_ratio
        self.seed = seed
        self.loader_options = {
            "pin_memory": pin_memory,
            "persistent_workers": persistent_workers and num_workers > 0,
            **({"prefetch_factor": prefetch_factor} if prefetch_factor and num_workers > 0 else {}),
        }
        self.index: SplitIndex | None = None

    @property
    def videos_dir(self) -> Path:
        return self.root / VIDEOS_FOLDER

    def prepare_data(self) -> None:
        if self.spec is not None:
            ensure_synthetic_dataset(self.root, self.spec)

    def load_index(self) -> SplitIndex:
        """Read and check the split files (fast; no video is decoded)."""
        if self.index is None:
            self.prepare_data()
            self.index = load_split(self.root, self.split)
            self.train_records, self.val_records = hold_out_groups(
                self.index.train, self.val_groups_per_class, self.holdout_seed
            )
        return self.index

    @property
    def classes(self) -> list[str]:
        return self.load_index().classes

    def _dataset(self, records, sampling: str, transform: ClipTransform, views: int = 1, crops: int = 1):
        return VideoClipDataset(
            records,
            self.videos_dir,
            self.frames,
            self.stride,
            transform,
            short_side=self.short_side,
            sampling=sampling,
            temporal_views=views,
            spatial_crops=crops,
            seed=self.seed,
            on_bad_video=self.on_bad_video,
            max_aspect_ratio=self.max_aspect_ratio,
        )

    def setup(self, stage: str | None = None) -> None:
        self.load_index()
        self.train_set = self._dataset(
            self.train_records, "random", ClipTransform(self.crop_size, "random", self.train_flip)
        )
        self.val_set = self._dataset(self.val_records, "center", ClipTransform(self.crop_size, "center"))
        self.test_set = self._dataset(
            self.index.test, "views", ClipTransform(self.test_crop_size), self.temporal_views, self.spatial_crops
        )
        log.info(
            "split %d: %d train, %d val (%d groups per class held out), %d test videos, %d classes",
            self.split,
            len(self.train_set),
            len(self.val_set),
            self.val_groups_per_class,
            len(self.test_set),
            len(self.index.classes),
        )

    def _rank(self) -> tuple[int, int]:
        return (self.trainer.global_rank, self.trainer.world_size) if self.trainer else (0, 1)

    def _worker_start(self) -> dict:
        """How loader workers start: the platform's default method, named (inside a joblib (loky) worker
        process the implicit default is loky's, which cannot start DataLoader workers); under DDP a
        fork server, since forking a rank whose communication threads may hold a lock at that moment can
        leave the new worker stuck forever (seen with gloo). Every worker leaves Ctrl-C and SIGTERM to the
        training process (clips are drawn from explicit seeds, so no per-worker seeding is lost). The fork
        server is started by the first loader, inside SignalSafeStart: it keeps the signals blocked, and
        so do the workers it forks, until worker_init_fn ignores them."""
        if not self.num_workers:
            return {}
        signals = {"worker_init_fn": leave_signals_to_the_main_process}
        if self._rank()[1] > 1 and "forkserver" in multiprocessing.get_all_start_methods():
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["ar_experiments.data.dataset"])  # torch is imported once, not per worker
            return {"multiprocessing_context": context, **signals}
        return {"multiprocessing_context": multiprocessing.get_all_start_methods()[0], **signals}

    def _loader(self, dataset, loader=VideoLoader, **batching) -> DataLoader:
        return loader(
            dataset,
            num_workers=self.num_workers,
            collate_fn=collate_videos,
            **batching,
            **self.loader_options,
            **self._worker_start(),
        )

    def train_dataloader(self) -> DataLoader:
        batches = TrainingBatchSampler(len(self.train_set), self.batch_size, *self._rank(), self.seed)
        return self._loader(self.train_set, ResumableDataLoader, batch_sampler=batches)

    def val_dataloader(self) -> DataLoader | list:
        if not len(self.val_set):
            return []  # data.val_groups_per_class=0: training on the whole trainlist, no validation loop
        return self._loader(
            self.val_set, sampler=ShardSampler(len(self.val_set), *self._rank()), batch_size=self.batch_size
        )

    def test_dataloader(self) -> DataLoader:
        """One item per video: its central clip and its test views, decoded once (see VideoClipDataset).

        A batch holds whole videos, up to 4 x data.batch_size clips (at least one video): testing keeps no
        activations for a backward pass, so four times the training batch fits where training fits.
        """
        videos_per_batch = max(1, TEST_CLIPS_PER_TRAINING_CLIP * self.batch_size // self.test_set.clips_per_item)
        return self._loader(
            self.test_set, sampler=ShardSampler(len(self.test_set), *self._rank(), "test"), batch_size=videos_per_batch
        )
