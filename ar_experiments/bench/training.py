"""Training and evaluation speed: the real fit loop against a plain loop, per model and variant.

The fit loop is `trainer.fit` with the run's datamodule and LightningModule (worker processes,
metrics and logging calls included); the plain loop is forward, loss, backward and optimiser step
on one batch already on the device (torch.utils.benchmark's Timer): what the model alone allows.
A clock on Lightning's hooks also records how long each step waited after the previous one ended:
the time the model sat idle for its batch. Validation and the multi-view test run through
`trainer.validate` and `trainer.test`, as a run does.
"""

from __future__ import annotations

import contextlib
import gc
import sys
import time
from dataclasses import dataclass, field

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils import benchmark

from ..config.compose import compose_train_config
from .figures import TEST_VIDEOS, Measurement, Pooled, goal, grid_hours, run_seconds

# The training settings compared with the seed's (batch 8, no compile, the trainer's precision), as Hydra
# overrides; any other setting is measured by passing its overrides to the bench (they apply to every variant).
SEED = "seed"
VARIANTS = {
    SEED: (),
    "batch16": ("data.batch_size=16",),
    "batch32": ("data.batch_size=32",),  # the learning rate follows optimizer.lr_scaling
    "compile": ("model.compile=true",),
    "fp32": ("trainer.precision=32-true", "model.fp32_precision=tf32"),
    "no-channels-last": ("model.channels_last=false",),
    "pointwise-conv": ("model.pointwise_matmul=false",),
    "pointwise-matmul": ("model.pointwise_matmul=true",),
}
DEFAULT_VARIANTS = {
    "cpu": ("batch16", "no-channels-last", "pointwise-conv"),
    "cuda": ("batch32", "compile", "fp32", "no-channels-last", "pointwise-matmul"),
    "quick": ("batch16",),
}


@dataclass
class VariantResult:
    """Every round of one model under one variant, and the seed's evaluation; `error` when it could not run."""

    model: str
    variant: str
    batch_size: int
    setting: str
    fit: Pooled = field(default_factory=Pooled)  # clips over the fit loop's timed seconds
    idle: Pooled = field(default_factory=Pooled)  # idle seconds over the same seconds
    plain: Pooled = field(default_factory=Pooled)  # clips over the plain loop's seconds
    # what the warm-up steps took beyond as many steady ones: compilation, cuDNN autotuning, first allocations
    compile_s: list[float] = field(default_factory=list)
    peak_gpu_gib: list[float] = field(default_factory=list)
    val: Pooled | None = None  # clips, after the first batch
    test: Pooled | None = None  # videos, the whole multi-view `trainer.test`
    views: str = ""  # temporal x spatial views per test video
    error: str | None = None


class BatchClock(pl.Callback):
    """Start and end of every training step, end and clip count of every validation batch.

    A batch ends once its GPU work has (synchronised).
    """

    def __init__(self, device: torch.device):
        self.synchronize = torch.cuda.synchronize if device.type == "cuda" else lambda: None
        self.starts: list[float] = []
        self.ends: list[float] = []
        self.clips: list[int] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.starts.append(time.perf_counter())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._end(batch)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._end(batch)

    def _end(self, batch: dict) -> None:
        self.synchronize()
        self.ends.append(time.perf_counter())
        self.clips.append(int(batch["label"].shape[0]))


def quiet_lightning() -> None:
    """Keep the bench's table readable: Lightning's notices and deprecation warnings, set up when it is imported."""
    import logging
    import warnings

    for name in ("pytorch_lightning", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for category in (UserWarning, DeprecationWarning, FutureWarning):  # advice on workers and logging; API deprecations
        warnings.filterwarnings("ignore", category=category)


def _parts(cfg: DictConfig, device: torch.device):
    """The run's datamodule and LightningModule, seeded as a run seeds them, and a clock for the trainer."""
    from ..training.module import VideoClassifier

    pl.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    module = VideoClassifier(
        model=OmegaConf.to_container(cfg.model, resolve=True),
        class_names=datamodule.classes,
        optimizer=OmegaConf.to_container(cfg.optimizer, resolve=True),
        scheduler=OmegaConf.to_container(cfg.scheduler, resolve=True),
    )
    return datamodule, module, BatchClock(device)


def _trainer(cfg: DictConfig, callbacks: list, **limits) -> pl.Trainer:
    switched_off = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    return instantiate(
        cfg.trainer, callbacks=callbacks, **switched_off, enable_model_summary=False, num_sanity_val_steps=0, **limits
    )


def fit_loop(cfg: DictConfig, steps: int, warmup: int, device: torch.device, result: VariantResult) -> None:
    """`trainer.fit` for `warmup` + `steps` steps (validation off), timed step by step: a round of `result`."""
    datamodule, module, clock = _parts(cfg, device)
    trainer = _trainer(cfg, [clock], max_epochs=1, limit_train_batches=warmup + steps, limit_val_batches=0)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    trainer.fit(module, datamodule=datamodule)
    starts, ends = clock.starts, clock.ends
    if len(ends) < warmup + steps:
        raise RuntimeError(
            f"the fit loop ran {len(ends)} steps, not {warmup + steps}: the training split has too few batches "
            f"({len(datamodule.train_set)} videos at data.batch_size={cfg.data.batch_size})"
        )
    # a timed step runs from its start to the next one's; its idle part from the end of the one before
    seconds = ends[-1] - starts[warmup]
    result.fit.add(steps * result.batch_size, seconds)
    result.idle.add(sum(starts[i + 1] - ends[i] for i in range(warmup, len(ends) - 1)), seconds)
    result.compile_s.append(max(0.0, starts[warmup] - starts[0] - warmup * seconds / steps))
    if device.type == "cuda":
        result.peak_gpu_gib.append(torch.cuda.max_memory_allocated() / 2**30)


def plain_loop(cfg: DictConfig, steps: int, warmup: int, device: torch.device) -> float:
    """Seconds of `steps` plain steps on one random batch of the run's clip shape, after `warmup` steps."""
    from ..models.run_options import prepare_to_run

    _, module, _ = _parts(cfg, device)
    net = module.net.to(device).train()
    prepare_to_run(net, module.hparams.model)  # torch.compile, float32 precision: as the fit loop's setup does
    optimizer = module.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    size, crop = cfg.data.batch_size, cfg.data.crop_size
    video = torch.randn(size, 3, cfg.data.frames, crop, crop, device=device)
    label = torch.randint(len(module.class_names), (size,), device=device)
    bf16 = str(cfg.trainer.precision).startswith("bf16")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = F.cross_entropy(net(video), label)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    # Timer runs its statement on one thread unless told; it synchronises the GPU around its clock
    timer = benchmark.Timer("step()", globals={"step": step}, num_threads=torch.get_num_threads())
    return timer.timeit(steps).mean * steps


def evaluation(cfg: DictConfig, device: torch.device) -> tuple[Pooled, Pooled]:
    """(val clips, test videos) over their seconds: `trainer.validate`, then the whole `trainer.test`.

    Validation is timed from the end of its first batch to the end of its last (a run's persistent
    workers are already up, and the first batch pays for compiling the evaluation graph); the test is
    the whole call, worker start-up and compilation included, as a run pays it once.
    """
    datamodule, module, clock = _parts(cfg, device)
    _trainer(cfg, [clock]).validate(module, datamodule=datamodule, verbose=False)
    if len(clock.ends) < 2:
        raise RuntimeError(f"validation ran {len(clock.ends)} batch(es); the bench needs at least 2 to time it")
    started = time.perf_counter()
    _trainer(cfg, []).test(module, datamodule=datamodule, verbose=False)
    test = Pooled().add(len(datamodule.index.test), time.perf_counter() - started)
    return Pooled().add(sum(clock.clips[1:]), clock.ends[-1] - clock.ends[0]), test


def measure_training(
    models: dict[str, list[str]], variants: dict[str, tuple[str, ...]], rounds: int, steps: int, warmup: int, device
) -> list[VariantResult]:
    """Every variant of every model: fit loop and plain loop each round, the seed's evaluation in the first round.

    `models` maps a model name to the overrides of its base setting, `variants` a variant's name to its own.
    Rounds alternate all paths, so machine load hits them alike.
    """
    quiet_lightning()
    configs = {(m, v): compose_train_config([*models[m], *variants[v]]) for v in variants for m in models}
    results = {}
    for (model, variant), cfg in configs.items():
        data = cfg.data
        setting = (
            f"{device.type}: {model} {data.frames}f {data.crop_size}px batch {data.batch_size} {cfg.trainer.precision}"
        )
        results[model, variant] = VariantResult(model, variant, data.batch_size, setting)
    for round_number in range(rounds):
        for (model, variant), result in results.items():
            if result.error:
                continue
            cfg = configs[(model, variant)]
            print(f"bench: {model} {variant} round {round_number + 1}", file=sys.stderr, flush=True)
            try:
                fit_loop(cfg, steps, warmup, device, result)
                _release(device)
                result.plain.add(steps * result.batch_size, plain_loop(cfg, steps, warmup, device))
                if round_number == 0 and variant == SEED:
                    _release(device)
                    result.val, result.test = evaluation(cfg, device)
                    result.views = f"{cfg.test.temporal_views}x{cfg.test.spatial_crops}"
            except Exception as err:  # noqa: BLE001 - one failing setting (e.g. out of memory) must not end the bench
                result.error = f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0]}"
                print(f"bench: {model} {variant} failed: {result.error}", file=sys.stderr, flush=True)
            finally:
                _release(device)
    return list(results.values())


def _release(device: torch.device) -> None:
    """Free what a finished measurement held, so the next one starts from the same memory."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def training_figures(results: list[VariantResult], on_gpu: bool) -> dict[str, list[Measurement]]:
    """Per model and variant the loop's rates (a variant's also over its model's seed), the seed's
    evaluation, and the seed grid's projected hours."""
    figures: dict[str, list[Measurement]] = {}
    runs: dict[str, float] = {}
    measured = [r for r in results if r.fit.units and r.plain.units and r.error is None]
    seeds = {r.model: r for r in measured if r.variant == SEED}
    for result in measured:
        setting = result.setting if result.variant == SEED else f"{result.setting} ({result.variant})"
        named = {
            "train_loop_clips_per_s": Measurement.pooled(
                result.fit, setting, goal=goal("train_loop_clips_per_s", on_gpu, result.model)
            ),
            "train_model_clips_per_s": Measurement.pooled(result.plain, setting),
            "train_vs_model_bound": Measurement.ratio(
                result.fit, result.plain, setting, goal=goal("train_vs_model_bound", on_gpu)
            ),
            "train_idle_fraction": Measurement.pooled(result.idle, setting, goal=goal("train_idle_fraction", on_gpu)),
            "train_compile_s": Measurement(result.compile_s[0], result.compile_s, setting),
        }
        if result.variant != SEED and result.model in seeds:
            named["train_loop_vs_seed"] = Measurement.ratio(result.fit, seeds[result.model].fit, setting)
        if result.peak_gpu_gib:
            named["peak_gpu_gib"] = Measurement(max(result.peak_gpu_gib), result.peak_gpu_gib, setting)
        if result.test is not None:
            views = f"{result.setting}, {result.views} views"
            seconds = TEST_VIDEOS / result.test.rate
            named["val_clips_per_s"] = Measurement.pooled(result.val, result.setting)
            named["test_videos_per_s"] = Measurement.pooled(result.test, views)
            named["test_seconds_per_run"] = Measurement(
                seconds, [seconds], views, goal=goal("test_seconds_per_run", on_gpu)
            )
            compile_s = result.compile_s[0]
            runs[result.model] = run_seconds(result.fit.rate, result.val.rate, result.test.rate, compile_s)
        for name, measurement in named.items():
            figures.setdefault(name, []).append(measurement)
    if runs:
        hours = grid_hours(runs)
        setting = f"seed: 18 runs x 20 epochs, UCF101 split-1 sizes, at {'+'.join(runs)}'s rates"
        figures["grid_hours"] = [Measurement(hours, [hours], setting, goal=goal("grid_hours", on_gpu))]
    return figures
