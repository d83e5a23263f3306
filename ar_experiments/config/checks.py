"""Checks of a training config that run before any data is read or any model is built: each problem is one line
naming the key, its value and what it may be, so a typo fails in a second instead of after the data has loaded
(or, for a value only the model or the clip transform would notice, after the first batch).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from ..data.splits import SPLITS
from ..data.video_limits import ON_BAD_VIDEO
from .resolvers import CONF_DIR

LR_SCALING_RULES = ("none", "linear", "sqrt")  # optimizer.lr_scaling (training/optimization.py)
COUNTS = {  # key: (default, least value, what the least means)
    "data.batch_size": (1, 1, ""),
    "data.num_workers": (0, 0, " (0 loads in-process)"),
    "data.val_groups_per_class": (0, 0, " (0 trains on the whole trainlist, without validation)"),
    "test.temporal_views": (1, 1, ""),
    "optimizer.reference_batch_size": (1, 1, ""),
}


class ConfigError(ValueError):
    """Every problem found in a config, one line each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


def group_options(group: str) -> list[str]:
    """The options of a config group, e.g. group_options('optimizer') -> ['adamw', 'asgd', 'sgd']."""
    return sorted(path.stem for path in (CONF_DIR / group).glob("*.yaml"))


def resolve(cfg: DictConfig) -> dict[str, Any]:
    """The config with every interpolation resolved; a missing or unresolvable value is a ConfigError."""
    try:
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as err:
        key = err.full_key
        hint = " (the folder holding UCF-101/ and ucfTrainTestlist/)" if key == "data.root" else ""
        raise ConfigError([f"{key} is not set; pass {key}=...{hint} or put it in conf/local/default.yaml"]) from None
    except OmegaConfBaseException as err:
        # a resolver's own message (e.g. the stride table's) already names the key and the fix
        message = str(err).splitlines()[0].split("resolving interpolation: ", 1)[-1]
        raise ConfigError([f"{err.full_key}: {message}" if "=" not in message else message]) from None


def _is_count(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def count_problems(config: dict[str, Any]) -> list[str]:
    """The COUNTS settings that are not whole numbers of at least their least value."""
    problems = []
    for key, (default, least, meaning) in COUNTS.items():
        section, name = key.split(".")
        value = (config.get(section) or {}).get(name, default)
        if not _is_count(value, least):
            problems.append(f"{key}={value!r}: use a whole number >= {least}{meaning}")
    return problems


def _names_subclass(target: Any, bases: tuple[type, ...]) -> bool:
    from hydra.utils import get_class

    try:
        found = get_class(str(target))
    except Exception:  # noqa: BLE001 - any import failure means the same to the user: not a usable class
        return False
    return isinstance(found, type) and issubclass(found, bases)


def model_problems(config: dict[str, Any]) -> list[str]:
    from ..models.builders import ARCHITECTURES

    name, frames, stride = config.get("model", {}).get("name"), config.get("frames"), config["data"].get("stride")
    problems = []
    if name not in ARCHITECTURES:
        problems.append(f"model.name={name!r} is not a model; choose model=<{'|'.join(ARCHITECTURES)}>")
    if not _is_count(frames, 1):
        problems.append(f"frames={frames!r}: a clip needs a whole number of frames, at least 1 (e.g. frames=8)")
    if not _is_count(stride, 1):
        problems.append(f"data.stride={stride!r}: the sampling stride must be a whole number >= 1")
    return problems


def data_problems(config: dict[str, Any]) -> list[str]:
    """Problems of the `data`, `split` and `test` settings; no file is read (data.root is only looked up)."""
    from ..data.synthetic import SyntheticSpec
    from ..data.transforms import SPATIAL_VIEWS
    from ..models.builders import MIN_CROP

    data, test = config["data"], config.get("test", {})
    problems = []
    if config.get("split") not in SPLITS:
        problems.append(f"split={config.get('split')!r}: UCF101 has the official splits {', '.join(map(str, SPLITS))}")
    crop, short_side = data.get("crop_size"), data.get("short_side")
    crops = {"data.crop_size": crop}
    if test.get("crop_size", crop) != crop:  # a test crop of its own (protocol=paper: the full short side)
        crops["test.crop_size"] = test["crop_size"]
    for key, value in crops.items():
        if not _is_count(value, MIN_CROP):
            problems.append(f"{key}={value!r} is too small: models downsample space 32x; use at least {MIN_CROP}")
        elif _is_count(short_side, 1) and value > short_side:
            problems.append(
                f"{key}={value} is larger than data.short_side={short_side} (frames are scaled to that short "
                f"side, then cropped); raise data.short_side or lower {key}"
            )
    if data.get("on_bad_video", "skip") not in ON_BAD_VIDEO:
        problems.append(f"data.on_bad_video={data.get('on_bad_video')!r}; choose one of {', '.join(ON_BAD_VIDEO)}")
    if test.get("spatial_crops", 1) not in SPATIAL_VIEWS:
        problems.append(f"test.spatial_crops={test.get('spatial_crops')!r}; choose one of {sorted(SPATIAL_VIEWS)}")
    if data.get("synthetic"):
        try:
            SyntheticSpec.from_config(data["synthetic"])
        except (TypeError, ValueError) as err:
            problems.append(str(err))
    elif not data.get("root"):
        problems.append("data.root is not set; pass data.root=/path/to/the/folder/holding/UCF-101")
    elif not Path(data["root"]).expanduser().is_dir():
        problems.append(
            f"data.root={data['root']!r} does not exist; point it at the folder holding UCF-101/ and ucfTrainTestlist/"
        )
    return problems


def optimisation_problems(config: dict[str, Any]) -> list[str]:
    import torch

    optimizer, scheduler = config.get("optimizer", {}), (config.get("scheduler") or {}).get("scheduler")
    problems = []
    if not _names_subclass(optimizer.get("_target_"), (torch.optim.Optimizer,)):
        problems.append(
            f"optimizer._target_={optimizer.get('_target_')!r} is not a torch optimizer; "
            f"choose optimizer=<{'|'.join(group_options('optimizer'))}> or a torch.optim class"
        )
    lr = optimizer.get("lr")
    if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not math.isfinite(lr) or lr <= 0:
        problems.append(f"optimizer.lr={lr!r}: the learning rate must be a finite number > 0")
    schedulers = (torch.optim.lr_scheduler.LRScheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
    if scheduler and not _names_subclass(scheduler.get("_target_"), schedulers):
        problems.append(
            f"scheduler.scheduler._target_={scheduler.get('_target_')!r} is not a learning-rate scheduler; "
            f"choose scheduler=<{'|'.join(group_options('scheduler'))}> or a torch.optim.lr_scheduler class"
        )
    if optimizer.get("lr_scaling", "none") not in LR_SCALING_RULES:
        problems.append(
            f"optimizer.lr_scaling={optimizer.get('lr_scaling')!r}; choose one of {', '.join(LR_SCALING_RULES)}"
        )
    start, epochs = optimizer.get("average_from_epoch"), config.get("trainer", {}).get("max_epochs")
    if start is not None and not _is_count(start, 0):
        problems.append(f"optimizer.average_from_epoch={start!r}: use an epoch number >= 0 (0-based), or null")
    elif start is not None and _is_count(epochs, 1) and start >= epochs:
        problems.append(
            f"optimizer.average_from_epoch={start} never starts: the run has trainer.max_epochs={epochs} "
            f"(epochs 0 to {epochs - 1}); lower it or raise trainer.max_epochs"
        )
    return problems


def validation_problems(config: dict[str, Any]) -> list[str]:
    """Without a validation set (data.val_groups_per_class=0) nothing may wait for a validation metric."""
    if config["data"].get("val_groups_per_class") != 0:
        return []
    problems = []
    callbacks = config.get("callbacks") or {}
    for name, entry in callbacks.items():
        monitor = (entry or {}).get("monitor") if isinstance(entry, dict) else None
        if monitor and str(monitor).startswith("val/"):
            problems.append(
                f"callbacks.{name} watches {monitor}, but data.val_groups_per_class=0 leaves no validation set; "
                f"pass callbacks.{name}=null (protocol=paper does), or hold out groups for validation"
            )
    scheduler = config.get("scheduler") or {}
    if scheduler.get("scheduler") and str(scheduler.get("monitor", "")).startswith("val/"):
        problems.append(
            f"scheduler watches {scheduler['monitor']}, but data.val_groups_per_class=0 leaves no validation set; "
            "choose scheduler=<step|cosine|none>, or hold out groups for validation"
        )
    return problems


def resume_problems(config: dict[str, Any]) -> list[str]:
    resume = config.get("resume", "auto")
    if resume == "auto" or (isinstance(resume, str) and Path(resume).expanduser().exists()):
        return []
    return [f"resume={resume!r} does not exist; use resume=auto or resume=<run folder or .ckpt file>"]


def check_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config, or a ConfigError listing every problem (one line each)."""
    config = resolve(cfg)
    problems = [
        *model_problems(config),
        *data_problems(config),
        *count_problems(config),
        *optimisation_problems(config),
        *validation_problems(config),
        *resume_problems(config),
    ]
    if problems:
        raise ConfigError(problems)
    return config
