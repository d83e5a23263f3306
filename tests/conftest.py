"""Shared fixtures: a small generated dataset, a shrunken Hydra config, and runs of it in this process."""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
CONF_DIR = str(REPO / "conf")

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs the fast tier in a process per core (pytest-xdist): one thread each, so that the
    # workers do not fight over the cores (the tiny runs gain nothing from more)
    torch.set_num_threads(1)


def run_train(
    args: list[str], env: dict[str, str] | None = None, wandb_mode: str = "disabled", timeout: int = 600
) -> subprocess.CompletedProcess:
    """`python -m ar_experiments.train ARGS` from the repository root, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "ar_experiments.train", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "WANDB_MODE": wandb_mode, **(env or {})},
    )


# Small enough to generate in a few seconds, large enough for three splits and a group holdout.
TINY_SYNTHETIC = {"classes": ["MoveRight", "MoveLeft", "RotateClockwise"], "clips_per_group": [1, 1], "seed": 7}


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    # AR_TEST_CACHE_DIR: a folder kept between sessions, so that `make mutation`, one session per mutant,
    # generates the tiny dataset once and not for every mutant (20 s each)
    # Under pytest-xdist the workers share one folder (their base temp's parent): the generation's lock lets
    # one worker generate the tiny dataset while the others wait, instead of each generating its own copy.
    kept = os.environ.get("AR_TEST_CACHE_DIR")
    if kept:
        return Path(kept)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return tmp_path_factory.getbasetemp().parent / "cache"
    return tmp_path_factory.mktemp("cache")


def synthetic_spec(**changes):
    """The generator settings of conf/data/synthetic.yaml (what `make sweep` trains on), with `changes` on top."""
    from omegaconf import OmegaConf

    from ar_experiments.data.synthetic import SyntheticSpec

    values = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "data" / "synthetic.yaml").synthetic)
    return SyntheticSpec.from_config({**values, **changes})


def tiny_spec():
    """The tiny dataset's settings, as a run with `tiny_overrides` builds them: the fixture and such runs
    share one dataset (same files, generated once)."""
    return synthetic_spec(**TINY_SYNTHETIC)


@pytest.fixture(scope="session")
def tiny_dataset(cache_dir) -> Path:
    """A generated UCF101-layout dataset of 3 classes x 25 groups x 1 clip: the one tiny runs train on."""
    from ar_experiments.data.synthetic import dataset_root, ensure_synthetic_dataset

    spec = tiny_spec()
    return ensure_synthetic_dataset(dataset_root(cache_dir, spec), spec)


def tiny_data(cache_dir: Path) -> list[str]:
    """Overrides that pick the tiny dataset (the `tiny_dataset` fixture's, generated once into `cache_dir`)."""
    return [
        f"paths.cache_dir={cache_dir}",
        f"data.synthetic.classes=[{','.join(TINY_SYNTHETIC['classes'])}]",
        "data.synthetic.clips_per_group=[1,1]",
        f"data.synthetic.seed={TINY_SYNTHETIC['seed']}",
    ]


# the smallest model and clip, a single test view, CSV logs only: on top of tiny_overrides where a test
# needs no more than a run that goes through
SMALLEST_RUN = ["model=x3d_xs", "frames=4", "logger=csv", "test.temporal_views=1", "test.spatial_crops=1"]


def tiny_overrides(cache_dir: Path, output_dir: Path | None = None) -> list[str]:
    """Overrides that shrink a run of the demo's recipe (conf/experiment/demo.yaml) to seconds on the tiny dataset."""
    overrides = [
        "experiment=demo",
        *tiny_data(cache_dir),
        "data.num_workers=0",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=2",
        "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1",
        "trainer.enable_progress_bar=false",
    ]
    if output_dir is not None:
        overrides.append(f"paths.output_dir={output_dir}")
    return overrides


def compose(overrides: list[str], return_hydra_config: bool = False, config_name: str = "train"):
    """The config for `overrides`, as `python -m ar_experiments.train` (or the command of `config_name`,
    conf/<config_name>.yaml) would see it."""
    from hydra import compose, initialize_config_dir

    import ar_experiments  # noqa: F401  (registers resolvers)

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name, overrides=overrides, return_hydra_config=return_hydra_config)


@pytest.fixture
def compose_config():
    """compose(overrides) -> the training config, as `python -m ar_experiments.train` would see it."""
    return compose


@contextmanager
def process_state_restored():
    """Puts back what a run in this process changes for the code after it: signal handlers (GracefulStop),
    PyTorch's threads and matmul precision, the random generators (seed_everything), environment variables,
    logging handlers, filters and levels, Hydra's job config and Lightning's rank."""
    from hydra.core.hydra_config import HydraConfig
    from pytorch_lightning.utilities import rank_zero_only

    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    threads, matmul = torch.get_num_threads(), torch.get_float32_matmul_precision()
    generators = random.getstate(), np.random.get_state(), torch.get_rng_state()
    environment = dict(os.environ)
    loggers = [logging.root, *(logging.getLogger(name) for name in list(logging.root.manager.loggerDict))]
    logger_state = [
        (logger, logger.level, _own_handlers(logger), logger.propagate, list(logger.filters)) for logger in loggers
    ]
    hydra_config, rank = HydraConfig.instance().cfg, getattr(rank_zero_only, "rank", 0)
    try:
        yield
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        torch.set_num_threads(threads)
        torch.set_float32_matmul_precision(matmul)
        random.setstate(generators[0])
        np.random.set_state(generators[1])
        torch.set_rng_state(generators[2])
        for name in set(os.environ) - set(environment):
            del os.environ[name]
        os.environ.update(environment)
        for logger, level, attached, propagate, filters in logger_state:
            logger.filters[:] = filters  # a logging config (Hydra's, in a sweep run here) adds filters
            for handler in _own_handlers(logger):
                if handler not in attached:
                    logger.removeHandler(handler)
                    handler.close()
            for handler in attached:
                logger.addHandler(handler)  # no-op for one still attached
            if logger.level != level:  # setLevel clears every logger's cache: hundreds of loggers, each test
                logger.setLevel(level)
            logger.propagate = propagate
        known = {logger.name for logger in loggers}
        for name, created in list(logging.root.manager.loggerDict.items()):
            if name not in known and isinstance(created, logging.Logger):  # first used in this test
                created.filters.clear()
        HydraConfig.instance().cfg = hydra_config
        rank_zero_only.rank = rank


@pytest.fixture(autouse=True)
def process_state():
    """Every test leaves the process as it found it (process_state_restored): runs in this process
    (train_in_process) change signal handlers, threads, logging and Hydra's global state."""
    with process_state_restored():
        yield


def _own_handlers(logger: logging.Logger) -> list[logging.Handler]:
    """The logger's handlers other than pytest's, which it adds and removes around each phase of a test."""
    return [handler for handler in logger.handlers if not type(handler).__module__.startswith("_pytest")]


@pytest.fixture
def train_in_process(tmp_path):
    """train_in_process(overrides, run_dir=tmp_path/"run") -> what `python -m ar_experiments.train OVERRIDES
    hydra.run.dir=RUN_DIR` returns, run in this process: the job's overrides and run folder are Hydra's, as the
    command sets them (results.json records the overrides, paths.output_dir is the run folder); Hydra's own
    part (its .hydra/ files, train.log, the one-line error) is left to the command-line tests."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import open_dict

    from ar_experiments.train import train

    def _train(overrides: list[str], run_dir: Path | None = None) -> float:
        run_dir = Path(run_dir or tmp_path / "run").absolute()
        cfg = compose([*overrides, f"hydra.run.dir={run_dir}"], return_hydra_config=True)
        with open_dict(cfg):
            cfg.hydra.mode, cfg.hydra.runtime.output_dir = RunMode.RUN, str(run_dir)
        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]
        return train(cfg)

    return _train
