"""Training steps per second: the real fit loop against a plain loop on the same model and batch.

The fit loop is what `train` runs (Lightning, the datamodule and its worker
processes, the LightningModule with its metrics and logging calls); the plain
loop is forward, loss, backward and optimiser step on one batch already in
memory (on the device), so it is what the model alone allows. A clock callback
also records how long each step waited between the end of the previous one and
the start of its own: the time the model sat idle for the next batch.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def compose_config(overrides: list[str]) -> DictConfig:
    """The training config as `python -m ar_experiments.train OVERRIDES` would see it."""
    from hydra import compose, initialize_config_dir

    from .. import config_resolvers  # noqa: F401  (registers the resolvers the configs use)

    if not CONF_DIR.is_dir():
        raise FileNotFoundError(f"no conf/ folder at {CONF_DIR}; run the bench from a checkout of the project")
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=overrides)


def quiet_lightning() -> None:
    """Keep the bench's table readable: Lightning's notices and deprecation warnings, set up when it is imported."""
    import logging
    import warnings

    for name in ("pytorch_lightning", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for category in (UserWarning, DeprecationWarning, FutureWarning):  # advice on workers and logging; API deprecations
        warnings.filterwarnings("ignore", category=category)


def require_cuda() -> None:
    if not torch.cuda.is_available():
        built = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise SystemExit(
            f"--device cuda: no CUDA device is available (torch {torch.__version__}, {built}); "
            "run on a machine with an NVIDIA GPU and a CUDA build of torch, or use --device cpu"
        )


class StepClock(pl.Callback):
    """Each step's full cycle (batch start to next batch start) after `warmup` steps, and its idle part.

    The idle part runs from the end of one step to the start of the next: the
    model waits for its batch (and for the loop's bookkeeping).
    """

    def __init__(self, warmup: int, synchronize: Callable[[], None]):
        self.warmup, self.synchronize = warmup, synchronize
        self.starts: list[float] = []
        self.ends: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx >= self.warmup:
            self.starts.append(time.perf_counter())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.synchronize()  # on a GPU the step is only over once its kernels are
        if batch_idx >= self.warmup:
            self.ends.append(time.perf_counter())

    @property
    def steps(self) -> int:
        return len(self.ends)

    @property
    def cycles(self) -> list[float]:
        return [later - earlier for earlier, later in zip(self.starts, self.starts[1:] + self.ends[-1:])]

    @property
    def idle_fraction(self) -> float:
        idle = sum(start - end for end, start in zip(self.ends, self.starts[1:]))
        return idle / (self.ends[-1] - self.starts[0])


@dataclass
class TrainingRound:
    loop_steps_per_s: float
    model_steps_per_s: float
    idle_fraction: float
    stock_steps_per_s: float  # the plain loop with PyTorch's Conv3d for 1x1x1 and the unfused optimiser step


def _build_module(cfg: DictConfig, class_names: list[str], stock: bool = False):
    """The run's LightningModule; `stock`: without the project's faster kernels (the bench's baseline)."""
    from ..models.builders import use_stock_conv3d
    from ..module import VideoClassifier

    optimizer = OmegaConf.to_container(cfg.optimizer, resolve=True)
    if stock:
        optimizer.pop("fused", None)  # torch's default step: a loop over parameters (foreach on CUDA)
    module = VideoClassifier(
        model=OmegaConf.to_container(cfg.model, resolve=True),
        class_names=class_names,
        optimizer=optimizer,
        scheduler=OmegaConf.to_container(cfg.scheduler, resolve=True),
    )
    if stock:
        use_stock_conv3d(module.net)
    return module


def _synchronizer(device: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def steps_per_second(durations: list[float]) -> float:
    """From the median step: another process's burst on a shared machine slows a few steps, not the median."""
    return 1.0 / statistics.median(durations)


def fit_loop(cfg: DictConfig, steps: int, warmup: int, device: torch.device) -> tuple[float, float]:
    """(steps/s, idle fraction) of `trainer.fit` over `steps` steps after `warmup`."""
    from hydra.utils import instantiate

    pl.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    module = _build_module(cfg, datamodule.classes)
    clock = StepClock(warmup, _synchronizer(device))
    trainer = instantiate(
        cfg.trainer,
        callbacks=[clock],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        max_epochs=1,
        limit_train_batches=warmup + steps,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, datamodule=datamodule)
    if clock.steps < steps:
        raise RuntimeError(
            f"the fit loop ran {clock.steps} measured steps, not {steps}: the training split has too few batches "
            f"({len(datamodule.train_set)} videos at data.batch_size={cfg.data.batch_size})"
        )
    return steps_per_second(clock.cycles), clock.idle_fraction


def plain_loop(
    cfg: DictConfig,
    class_names: list[str],
    batch: dict,
    steps: int,
    warmup: int,
    device: torch.device,
    stock: bool = False,
) -> float:
    """Steps/s of forward, loss, backward and optimiser step on one batch already on the device."""
    pl.seed_everything(cfg.seed)
    module = _build_module(cfg, class_names, stock)
    net = module.net.to(device).train()
    optimizer = module.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    video, label = batch["video"].to(device), batch["label"].to(device)
    bf16 = str(cfg.trainer.precision).startswith("bf16")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    synchronize = _synchronizer(device)
    durations = []
    for step in range(warmup + steps):
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = F.cross_entropy(net(video), label)
        loss.backward()
        optimizer.step()
        synchronize()
        if step >= warmup:
            durations.append(time.perf_counter() - started)
    return steps_per_second(durations)


def measure_training(
    cfg: DictConfig, repeats: int, steps: int, warmup: int, device: torch.device
) -> list[TrainingRound]:
    """Fit loop and plain loop, alternated `repeats` times so machine load affects both alike."""
    from hydra.utils import instantiate

    quiet_lightning()
    datamodule = instantiate(cfg.data)
    datamodule.setup("fit")
    batch = next(iter(datamodule.train_dataloader()))
    rounds = []
    for _ in range(repeats):
        loop_rate, idle = fit_loop(cfg, steps, warmup, device)
        model_rate = plain_loop(cfg, datamodule.classes, batch, steps, warmup, device)
        stock_rate = plain_loop(cfg, datamodule.classes, batch, steps, warmup, device, stock=True)
        rounds.append(TrainingRound(loop_rate, model_rate, idle, stock_rate))
    return rounds
