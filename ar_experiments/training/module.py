"""LightningModule: cross-entropy training, video-level metrics, optimiser and scheduler from config."""

from __future__ import annotations

import logging
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from pytorch_lightning.trainer.states import RunningStage
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy

from ..data.transforms import normalise_clips
from ..evaluation.video_level import VideoLevelAccumulator, accuracy_summary, union_over_ranks
from ..models import build_model
from ..models.run_options import prepare_to_run
from .optimization import WeightAverage, scaled_learning_rate

log = logging.getLogger(__name__)

BUILD_KEYS = (
    *("name", "frames", "crop_size", "dropout", "slowfast_alpha", "channels_last"),
    *("pointwise_matmul", "depthwise_fp32", "depthwise_grad"),
)
# keys of the optimizer config that are this project's, not arguments of the torch optimiser
OPTIMIZER_EXTRAS = ("head_lr_mult", "lr_scaling", "reference_batch_size", "average_from_epoch")
EVALUATION_STAGES = {RunningStage.VALIDATING: "val", RunningStage.SANITY_CHECKING: "val", RunningStage.TESTING: "test"}


def network_args(model: dict[str, Any]) -> dict[str, Any]:
    """The entries of a model config that `build_model` takes."""
    return {k: v for k, v in model.items() if k in BUILD_KEYS}


class VideoClassifier(pl.LightningModule):
    """Everything needed to rebuild the network is in the hyperparameters, so a checkpoint alone (with its class
    names and `view_settings`, evaluation/video_level.py's ViewSettings) is enough for `predict`.

    With `optimizer.average_from_epoch=N` the weights are averaged over every optimiser step from epoch N on,
    and validation, checkpoints (their `state_dict`) and testing use the average; checkpoints keep the trained
    weights too, for resuming.
    """

    def __init__(
        self,
        model: dict[str, Any],
        class_names: list[str],
        optimizer: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
        view_settings: dict[str, int] | None = None,
        train_batch_size: int | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.net = build_model(num_classes=len(class_names), **network_args(model))
        if model.get("freeze_backbone"):
            self.net.freeze_backbone()
        num_classes = len(class_names)
        self.val_loss = MeanMetric()
        self.val_top1 = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        self.val_top5 = MulticlassAccuracy(num_classes, top_k=min(5, num_classes), average="micro")
        self.skipped_videos: set[str] = set()  # unreadable training videos, replaced by others
        self.left_out: dict[str, set[str]] = {"val": set(), "test": set()}  # unreadable videos not evaluated
        self.evaluated: dict[str, int] = {"val": 0, "test": 0}  # videos evaluated in the last pass (all ranks)
        # sum of loss x clips, right answers and clips of the epoch so far (float64: exact whatever the order)
        self.epoch_totals = torch.zeros(3, dtype=torch.float64)
        self.average_from_epoch = (optimizer or {}).get("average_from_epoch")
        self.weight_average = WeightAverage(self.net, prefix="net.") if self.average_from_epoch is not None else None
        self.effective_lr: float | None = None  # set by configure_optimizers
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

    # --- training -----------------------------------------------------------------------------

    def on_train_start(self) -> None:
        self.epoch_totals = self.epoch_totals.to(self.device)  # restored from a checkpoint on the CPU

    def on_train_epoch_start(self) -> None:
        self.epoch_totals.zero_()

    def training_step(self, batch, batch_idx):
        logits = self(batch["video"])
        labels = batch["label"]
        loss = F.cross_entropy(logits, labels)
        size = labels.shape[0]
        correct = (logits.argmax(1) == labels).sum()
        self.epoch_totals += torch.stack(
            [loss.detach().double() * size, correct.double(), logits.new_tensor(size).double()]
        )
        self.log("loss", loss, on_step=True, on_epoch=False, prog_bar=True, logger=False, batch_size=size)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        if self.weight_average is not None and self.current_epoch >= self.average_from_epoch:
            self.weight_average.update()

    def on_train_epoch_end(self) -> None:
        loss_sum, correct, clips = self.trainer.strategy.reduce(self.epoch_totals, reduce_op="sum").tolist()
        self.epoch_totals.zero_()  # a checkpoint saved at the epoch's end starts the next epoch from zero
        if clips:  # none when Lightning re-runs the end of an epoch it resumed at
            self.log("train/loss", loss_sum / clips, prog_bar=True)
            self.log("train/top1", correct / clips)
            self.log("train/clips", clips)

    # --- evaluation ---------------------------------------------------------------------------

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        # here, in the main process, each unreadable video is reported once, however many workers met it
        stage = EVALUATION_STAGES.get(self.trainer.state.stage) if self._trainer is not None else None
        seen = self.left_out[stage] if stage else self.skipped_videos
        for path, reason in zip(batch.get("skipped", []), batch.get("skipped_reason", [])):
            if path in seen:
                continue
            seen.add(path)
            if stage:
                log.warning("unreadable %s video %s left out of the %s metrics: %s", stage, path, stage, reason)
            else:
                log.warning("unreadable video %s replaced by another of its split: %s", path, reason)
        return batch

    def _averaged_weights_evaluated(self) -> bool:
        """While fitting, from averaging's first step on; outside a fit a checkpoint's weights are the average."""
        fitting = self._trainer is not None and self.trainer.state.fn == "fit"
        return fitting and self.weight_average is not None and self.weight_average.count > 0

    def on_validation_epoch_start(self) -> None:
        self.evaluated["val"] = 0
        for metric in (self.val_loss, self.val_top1, self.val_top5):
            metric.reset()
        if self._averaged_weights_evaluated():
            self.weight_average.swap()

    def validation_step(self, batch, batch_idx):
        if batch["video"] is None:
            return
        logits = self(batch["video"])
        labels = batch["label"]
        self.evaluated["val"] += labels.shape[0]
        self.val_loss.update(F.cross_entropy(logits, labels), weight=labels.shape[0])
        self.val_top1.update(logits, labels)
        self.val_top5.update(logits, labels)

    def on_validation_epoch_end(self) -> None:
        """The metrics are logged here, where every rank comes, not in validation_step: under DDP a rank whose
        every validation video was unreadable has no step that logs, and the ranks' reductions would not match."""
        if self._averaged_weights_evaluated():
            self.weight_average.swap()
        self._merge_evaluation_counts("val")
        if self.evaluated["val"]:  # the metrics' states are summed over the ranks when Lightning computes them
            self.log("val/loss", self.val_loss)
            self.log("val/top1", self.val_top1, prog_bar=True)
            self.log("val/top5", self.val_top5)

    def _merge_evaluation_counts(self, stage: str) -> None:
        count = torch.tensor(self.evaluated[stage], device=self.device)  # NCCL reduces only tensors on the GPU
        self.evaluated[stage] = int(self.trainer.strategy.reduce(count, reduce_op="sum"))
        self.left_out[stage] = union_over_ranks(self.left_out[stage])

    def on_test_epoch_start(self) -> None:
        self.single_view = VideoLevelAccumulator()
        self.multiview = VideoLevelAccumulator()

    def test_step(self, batch, batch_idx):
        """A batch of whole videos: clip 0 is the central clip, the others the test views (see VideoClipDataset)."""
        if batch["video"] is None:
            return
        clips = normalise_clips(batch["video"])  # (B, N, C, T, H, W), from uint8 on this device
        videos, count = clips.shape[:2]
        probabilities = self(clips.flatten(0, 1)).float().softmax(1).view(videos, count, -1)
        self.single_view.update(batch["index"], probabilities[:, 0], batch["label"])
        if count > 1:
            self.multiview.update(batch["index"], probabilities[:, 1:].mean(1), batch["label"], count - 1)

    def on_test_epoch_end(self) -> None:
        single_view, multiview = self.single_view.merged(), self.multiview.merged()
        self.left_out["test"] = union_over_ranks(self.left_out["test"])
        num_classes = len(self.class_names)
        for suffix, predictions in (("", single_view), ("_multiview", multiview)):
            _, probabilities, labels = predictions.predictions()
            if len(labels):
                summary = accuracy_summary(probabilities, labels, num_classes)
                for name in ("top1", "top5", "mean_class_acc"):
                    self.log(f"test/{name}{suffix}", summary[name])
        self.test_predictions = multiview if multiview.scores else single_view
        self.evaluated["test"] = len(self.test_predictions.scores)

    # --- checkpoints --------------------------------------------------------------------------

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # every rank saves together (Lightning's save_checkpoint), so the run-wide state is gathered here
        checkpoint["skipped_videos"] = sorted(union_over_ranks(self.skipped_videos))
        checkpoint["epoch_totals"] = self.trainer.strategy.reduce(self.epoch_totals, reduce_op="sum").cpu()
        if self._averaged_weights_evaluated():
            trained = checkpoint["state_dict"]
            checkpoint["state_dict"] = self.weight_average.averaged_state_dict(trained)
            checkpoint["weight_averaging"] = {"count": self.weight_average.count, "trained_state_dict": trained}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.skipped_videos.update(checkpoint.get("skipped_videos", []))
        # the epoch so far belongs to rank 0: the others start from zero, and the epoch's sum adds them up
        if "epoch_totals" in checkpoint and self.global_rank == 0:
            self.epoch_totals = checkpoint["epoch_totals"].to(torch.float64)
        averaging = checkpoint.get("weight_averaging")
        if averaging and self.weight_average is not None:
            self.weight_average.load(checkpoint["state_dict"], averaging["count"])
            if self._trainer is not None and self.trainer.state.fn == "fit":
                checkpoint["state_dict"] = averaging["trained_state_dict"]  # training goes on from the trained weights

    # --- optimisation -------------------------------------------------------------------------

    def effective_batch_size(self) -> int:
        per_step = self.hparams.train_batch_size or 1
        return per_step * self.trainer.world_size * self.trainer.accumulate_grad_batches

    def configure_optimizers(self):
        settings = dict(self.hparams.optimizer)
        extras = {key: settings.pop(key) for key in OPTIMIZER_EXTRAS if key in settings}
        lr = settings["lr"]
        if self.hparams.train_batch_size:
            lr = scaled_learning_rate(
                lr,
                extras.get("lr_scaling", "none"),
                extras.get("reference_batch_size", self.hparams.train_batch_size),
                self.effective_batch_size(),
            )
        self.effective_lr = settings["lr"] = lr
        backbone, classifier = self.net.backbone_and_classifier_parameters()
        groups = [{"params": backbone}] if backbone else []  # empty when the backbone is frozen
        groups.append({"params": classifier, "lr": lr * extras.get("head_lr_mult", 1.0)})
        optimizer = instantiate(settings)(groups)
        scheduling = dict(self.hparams.scheduler or {})
        if not scheduling.get("scheduler"):
            return optimizer
        scheduler_cfg = dict(scheduling["scheduler"])
        if "total_steps" in scheduler_cfg and scheduler_cfg["total_steps"] is None:
            scheduler_cfg["total_steps"] = int(self.trainer.estimated_stepping_batches)
        per_group = {}
        if "max_lr" in scheduler_cfg:  # one-cycle: each group peaks at its own lr (head_lr_mult holds)
            per_group["max_lr"] = [group["lr"] for group in optimizer.param_groups]
            # torch's OneCycleLR refuses an optimiser without momentum (ASGD, the seed's): cycle only the lr then
            has_momentum = any(key in optimizer.defaults for key in ("momentum", "betas"))
            per_group["cycle_momentum"] = scheduler_cfg.get("cycle_momentum", True) and has_momentum
        scheduler = instantiate(scheduler_cfg)(optimizer, **per_group)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": scheduler,
                "interval": scheduling.get("interval", "epoch"),
                "monitor": scheduling.get("monitor", "val/top1"),
            },
        }
