"""LightningModule: cross-entropy training, top-1/top-5 metrics, optimiser and scheduler from config."""

from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torchmetrics.classification import MulticlassAccuracy

from .evaluate import VideoLevelAccumulator, accuracy_summary
from .models import build_model
from .models.run_options import prepare_to_run

log = logging.getLogger(__name__)

BUILD_KEYS = (
    *("name", "frames", "crop_size", "dropout", "slowfast_alpha", "channels_last"),
    *("pointwise_matmul", "depthwise_fp32"),
)


def network_args(model: dict[str, Any]) -> dict[str, Any]:
    """The entries of a model config that `build_model` takes."""
    return {k: v for k, v in model.items() if k in BUILD_KEYS}


class VideoClassifier(pl.LightningModule):
    """Everything needed to rebuild the network is in the hyperparameters, so a
    checkpoint alone (with its class names and `view_settings`, see
    evaluate.ViewSettings) is enough for `predict`."""

    def __init__(
        self,
        model: dict[str, Any],
        class_names: list[str],
        optimizer: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
        view_settings: dict[str, int] | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = build_model(num_classes=len(class_names), **network_args(model))
        if model.get("freeze_backbone"):
            self.net.freeze_backbone()
        num_classes = len(class_names)
        top5 = min(5, num_classes)
        self.val_top1 = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        self.val_top5 = MulticlassAccuracy(num_classes, top_k=top5, average="micro")
        self.test_top1 = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        self.test_top5 = MulticlassAccuracy(num_classes, top_k=top5, average="micro")
        self.test_mean_class = MulticlassAccuracy(num_classes, top_k=1, average="macro")
        self.skipped_videos: set[str] = set()  # unreadable videos replaced during this run
        self.single_view = VideoLevelAccumulator()
        self.multiview = VideoLevelAccumulator()
        # per test video, set when testing ends: multi-view when it ran, else the central view
        self.test_predictions = VideoLevelAccumulator()

    @property
    def class_names(self) -> list[str]:
        return list(self.hparams.class_names)

    def setup(self, stage: str) -> None:
        # torch.compile and float32 precision (models/run_options.py): only when a trainer runs the network
        prepare_to_run(self.net, self.hparams.model)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        return self.net(clip)

    def training_step(self, batch, batch_idx):
        logits = self(batch["video"])
        loss = F.cross_entropy(logits, batch["label"])
        accuracy = (logits.argmax(1) == batch["label"]).float().mean()
        size = batch["label"].shape[0]
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=size, sync_dist=True)
        self.log("train/top1", accuracy, on_step=False, on_epoch=True, batch_size=size, sync_dist=True)
        self.log(
            "train/clips", float(size), on_step=False, on_epoch=True, reduce_fx="sum", batch_size=size, sync_dist=True
        )
        return loss

    def validation_step(self, batch, batch_idx):
        logits = self(batch["video"])
        labels = batch["label"]
        loss = F.cross_entropy(logits, labels)
        self.val_top1(logits, labels)
        self.val_top5(logits, labels)
        self.log("val/loss", loss, on_epoch=True, batch_size=labels.shape[0], sync_dist=True)
        self.log("val/top1", self.val_top1, on_epoch=True, prog_bar=True)
        self.log("val/top5", self.val_top5, on_epoch=True)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        # here, in the main process, each unreadable video is reported once, however many workers met it
        for path, reason in zip(batch.get("skipped", []), batch.get("skipped_reason", [])):
            if path and path not in self.skipped_videos:
                self.skipped_videos.add(path)
                log.warning("unreadable video %s replaced by another of its split: %s", path, reason)
        return batch

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["skipped_videos"] = sorted(self.skipped_videos)  # a resumed run keeps counting them

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.skipped_videos.update(checkpoint.get("skipped_videos", []))

    def on_test_epoch_start(self) -> None:
        self.single_view = VideoLevelAccumulator()
        self.multiview = VideoLevelAccumulator()

    def test_step(self, batch, batch_idx, dataloader_idx: int = 0):
        if dataloader_idx == 1:
            self._multiview_step(batch)
            return
        logits = self(batch["video"])
        labels = batch["label"]
        self.test_top1(logits, labels)
        self.test_top5(logits, labels)
        self.test_mean_class(logits, labels)
        self.single_view.update(batch["index"], logits.softmax(1), labels)
        self.log("test/top1", self.test_top1, add_dataloader_idx=False)
        self.log("test/top5", self.test_top5, add_dataloader_idx=False)
        self.log("test/mean_class_acc", self.test_mean_class, add_dataloader_idx=False)

    def _multiview_step(self, batch) -> None:
        views = batch["video"]  # (B, S, C, T, H, W): the spatial crops of one temporal view
        size, crops = views.shape[:2]
        probabilities = self(views.flatten(0, 1)).softmax(1).view(size, crops, -1).mean(1)
        self.multiview.update(batch["index"], probabilities, batch["label"], views_per_item=crops)

    def on_test_epoch_end(self) -> None:
        single_view, merged = self.single_view.merged(), self.multiview.merged()
        _, probabilities, labels = merged.predictions()
        if len(labels):
            summary = accuracy_summary(probabilities, labels, len(self.class_names))
            self.log("test/top1_multiview", summary["top1"], rank_zero_only=True)
            self.log("test/top5_multiview", summary["top5"], rank_zero_only=True)
            self.log("test/mean_class_acc_multiview", summary["mean_class_acc"], rank_zero_only=True)
        self.test_predictions = merged if len(labels) else single_view

    def configure_optimizers(self):
        optimizer_settings = dict(self.hparams.optimizer)
        head_lr_mult = optimizer_settings.pop("head_lr_mult", 1.0)  # ours, not an argument of the torch optimiser
        backbone, classifier = self.net.backbone_and_classifier_parameters()
        groups = [{"params": backbone}] if backbone else []  # empty when the backbone is frozen
        groups.append({"params": classifier, "lr": optimizer_settings["lr"] * head_lr_mult})
        optimizer = instantiate(optimizer_settings)(groups)
        settings = dict(self.hparams.scheduler or {})
        if not settings.get("scheduler"):
            return optimizer
        scheduler_cfg = dict(settings["scheduler"])
        if "total_steps" in scheduler_cfg and scheduler_cfg["total_steps"] is None:
            scheduler_cfg["total_steps"] = int(self.trainer.estimated_stepping_batches)
        per_group = {}
        if "max_lr" in scheduler_cfg:  # one-cycle: each group peaks at its own lr (head_lr_mult holds)
            per_group["max_lr"] = [group["lr"] for group in optimizer.param_groups]
        scheduler = instantiate(scheduler_cfg)(optimizer, **per_group)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": scheduler,
                "interval": settings.get("interval", "epoch"),
                "monitor": settings.get("monitor", "val/top1"),
            },
        }
