"""Training and evaluation speed: the real fit loop against a plain loop, per model and setting.

The fit loop is what `train` runs (Lightning, the datamodule and its worker
processes, the LightningModule with its metrics and logging calls); the plain
loop is forward, loss, backward and optimiser step on one batch already in
memory (on the device), so it is what the model alone allows. A clock callback
also records how long each step waited between the end of the previous one and
the start of its own: the time the model sat idle for the next batch.
Validation and the multi-view test run through `trainer.validate` and
`trainer.test` with the project's datamodule, as a run does.
"""

from __future__ import annotations

import contextlib
import gc
import sys
import time
from collections.abc import Callable

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from ..config.compose import compose_train_config
from .clocks import BatchClock, EvaluationTiming, LoopTiming, VariantResult
from .plans import SEED


def prepare_dataset(overrides: list[str]) -> None:
    """Generate the config's dataset beforehand, so no measured run pays for it."""
    from hydra.utils import instantiate

    instantiate(compose_train_config(overrides).data).prepare_data()


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


def _build_module(cfg: DictConfig, class_names: list[str]):
    from ..training.module import VideoClassifier

    return VideoClassifier(
        model=OmegaConf.to_container(cfg.model, resolve=True),
        class_names=class_names,
        optimizer=OmegaConf.to_container(cfg.optimizer, resolve=True),
        scheduler=OmegaConf.to_container(cfg.scheduler, resolve=True),
    )


def _synchronizer(device: torch.device) -> Callable[[], None]:
    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def _trainer(cfg: DictConfig, callbacks: list, **limits):
    from hydra.utils import instantiate

    return instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **limits,
    )


def _parts(cfg: DictConfig, device: torch.device):
    """The run's datamodule and LightningModule, seeded as a run seeds them, and a clock for the trainer."""
    from hydra.utils import instantiate

    pl.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    return datamodule, _build_module(cfg, datamodule.classes), BatchClock(_synchronizer(device))


def fit_loop(cfg: DictConfig, steps: int, warmup: int, device: torch.device) -> LoopTiming:
    """`trainer.fit` for `warmup` + `steps` steps (validation off), timed step by step."""
    datamodule, module, clock = _parts(cfg, device)
    trainer = _trainer(cfg, [clock], max_epochs=1, limit_train_batches=warmup + steps, limit_val_batches=0)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    trainer.fit(module, datamodule=datamodule)
    if len(clock.ends) < warmup + steps:
        raise RuntimeError(
            f"the fit loop ran {len(clock.ends)} steps, not {warmup + steps}: the training split has too few batches "
            f"({len(datamodule.train_set)} videos at data.batch_size={cfg.data.batch_size})"
        )
    timing = clock.timing(warmup)
    if device.type == "cuda":
        timing.peak_gpu_bytes = torch.cuda.max_memory_allocated()
    return timing


def plain_loop(
    cfg: DictConfig, names: list[str], batch: dict, steps: int, warmup: int, device: torch.device
) -> LoopTiming:
    """Forward, loss, backward and optimiser step on one batch already on the device, with the run's options."""
    from ..models.run_options import prepare_to_run

    pl.seed_everything(cfg.seed)
    module = _build_module(cfg, names)
    net = module.net.to(device).train()
    prepare_to_run(net, module.hparams.model)  # torch.compile, float32 precision: as the fit loop's setup does
    optimizer = module.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    size = cfg.data.batch_size
    video, label = batch["video"][:size].to(device), batch["label"][:size].to(device)
    bf16 = str(cfg.trainer.precision).startswith("bf16")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    synchronize = _synchronizer(device)
    durations = []
    for _ in range(warmup + steps):
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = F.cross_entropy(net(video), label)
        loss.backward()
        optimizer.step()
        synchronize()
        durations.append(time.perf_counter() - started)
    return LoopTiming(steps, sum(durations[warmup:]), warmup, sum(durations[:warmup]))


def evaluation(cfg: DictConfig, device: torch.device) -> EvaluationTiming:
    """`trainer.validate` (single central clip per video) and `trainer.test` (single view, then multi-view).

    Validation is timed from the end of its first batch to the end of its last
    (a run's persistent workers are already up, and the first batch pays for
    compiling the evaluation graph); the test is the whole `trainer.test` call,
    worker start-up and compilation included, as a run pays it once.
    """
    datamodule, module, clock = _parts(cfg, device)
    _trainer(cfg, [clock]).validate(module, datamodule=datamodule, verbose=False)
    if len(clock.ends) < 2:
        raise RuntimeError(f"validation ran {len(clock.ends)} batch(es); the bench needs at least 2 to time it")
    started = time.perf_counter()
    _trainer(cfg, []).test(module, datamodule=datamodule, verbose=False)
    test_seconds = time.perf_counter() - started
    return EvaluationTiming(
        val_clips=sum(clock.clips[1:]),
        val_seconds=clock.ends[-1] - clock.ends[0],
        test_videos=len(datamodule.index.test),
        test_seconds=test_seconds,
        views=f"{cfg.test.temporal_views}x{cfg.test.spatial_crops}",
    )


def first_batch(overrides: list[str]) -> tuple[list[str], dict]:
    """The config's class names and one training batch of its data (the plain loop's input)."""
    from hydra.utils import instantiate

    datamodule = instantiate(compose_train_config(overrides).data)
    datamodule.setup("fit")
    return datamodule.classes, next(iter(datamodule.train_dataloader()))


def _release(device: torch.device) -> None:
    """Free what a finished measurement held, so the next one starts from the same memory."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def measure_training(
    models: dict[str, list[str]],
    variants: dict[str, tuple[str, ...]],
    rounds: int,
    steps: int,
    warmup: int,
    device: torch.device,
) -> list[VariantResult]:
    """Every variant of every model: fit loop and plain loop each round, the seed's evaluation in the first round.

    `models` maps a model name to the overrides of its base setting, `variants` a variant's name to its own.
    Rounds alternate all paths, so machine load hits them alike; within a round every model runs a variant
    before the next variant starts. The plain loops of a model share one batch, of its largest variant's size.
    """
    quiet_lightning()
    configs = {(m, v): compose_train_config([*models[m], *variants[v]]) for v in variants for m in models}
    results = {
        key: VariantResult(
            *key,
            cfg.data.batch_size,
            f"{device.type}: {cfg.model.name} {cfg.data.frames}f {cfg.data.crop_size}px "
            f"batch {cfg.data.batch_size} {cfg.trainer.precision}",
        )
        for key, cfg in configs.items()
    }
    batches: dict[str, tuple[list[str], dict]] = {}
    for round_number in range(rounds):
        for (model, variant), result in results.items():
            if result.error:
                continue
            cfg = configs[(model, variant)]
            print(f"bench: {model} {variant} round {round_number + 1}", file=sys.stderr, flush=True)
            try:
                if model not in batches:
                    largest = max(r.batch_size for (m, _), r in results.items() if m == model)
                    batches[model] = first_batch([*models[model], f"data.batch_size={largest}"])
                result.fit.append(fit_loop(cfg, steps, warmup, device))
                _release(device)
                result.plain.append(plain_loop(cfg, *batches[model], steps, warmup, device))
                if round_number == 0 and variant == SEED:
                    _release(device)
                    result.evaluation = evaluation(cfg, device)
            except Exception as err:  # noqa: BLE001 - one failing setting (e.g. out of memory) must not end the bench
                result.error = f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0]}"
                print(f"bench: {model} {variant} failed: {result.error}", file=sys.stderr, flush=True)
            finally:
                _release(device)
    return list(results.values())
