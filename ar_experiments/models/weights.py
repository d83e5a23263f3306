"""Kinetics-400 weights from pytorchvideo's model zoo: found offline first, loaded strictly.

Where a checkpoint comes from, in order: `model.weights_path`, the torch hub
cache (`torch.hub.get_dir()/checkpoints/`, where pytorchvideo's own hub puts
it), else a download from the model zoo into that cache. With no network the
download is given up within seconds and the error says which file to put where.

Loading is strict for the backbone: every tensor of the network except the
classifier (`blocks.<last>.proj.*`, replaced for the dataset's classes) must
be in the file with the same shape, or nothing loads and every mismatch is listed.
"""

from __future__ import annotations

import logging
import os
import threading
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..safety.safe_load import load_checkpoint
from .builders import ARCHITECTURES, VideoNet

log = logging.getLogger(__name__)

KINETICS400 = "kinetics400"
MODEL_ZOO_URL = "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics"
# how long to wait for the model zoo to answer before deciding we are offline
NETWORK_TIMEOUT_S = 3.0


class PretrainedMismatchError(ValueError):
    """A checkpoint whose backbone does not fit the network; nothing was loaded."""


@dataclass(frozen=True)
class PretrainedLoad:
    """What loading a checkpoint did: tensors copied into the network and tensors left out (the classifier)."""

    source: str
    loaded: int
    skipped: list[str]

    def as_record(self) -> dict[str, Any]:
        return {
            "pretrained": KINETICS400,
            "pretrained_weights": self.source,
            "pretrained_tensors_loaded": self.loaded,
            "pretrained_tensors_skipped": len(self.skipped),
        }


def checkpoint_url(model_name: str) -> str:
    return f"{MODEL_ZOO_URL}/{ARCHITECTURES[model_name].checkpoint}"


def hub_cache_path(model_name: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / ARCHITECTURES[model_name].checkpoint


def _answers(url: str, timeout: float) -> str | None:
    """None when `url` answers within `timeout` seconds, else why not.

    The request runs in a daemon thread: a name lookup can block far longer
    than any socket timeout, and a daemon thread does not hold up the exit.
    """
    outcome: list[str | None] = []

    def probe() -> None:
        try:
            # a new opener reads the proxy settings of the environment as it is now
            with urllib.request.build_opener().open(urllib.request.Request(url, method="HEAD"), timeout=timeout):
                outcome.append(None)
        except Exception as err:  # noqa: BLE001 - any failure means "not reachable"
            outcome.append(f"{type(err).__name__}: {err}")

    thread = threading.Thread(target=probe, name="model-zoo-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    return outcome[0] if outcome else f"no answer within {timeout:.0f} s"


def _not_found_message(model_name: str, reason: str) -> str:
    file, cache = ARCHITECTURES[model_name].checkpoint, hub_cache_path(model_name).parent
    return (
        f"Kinetics-400 weights for model.name={model_name} not found: {file} is not in the torch hub cache "
        f"({cache}) and {checkpoint_url(model_name)} could not be downloaded ({reason}). "
        f"Download it on a machine with internet and put it in {cache}/, or pass model.weights_path=/path/to/{file}; "
        "model.pretrained=null trains from random initialisation instead."
    )


def find_pretrained(model_cfg: Mapping[str, Any]) -> Path | None:
    """The checkpoint file to load for `model.pretrained=kinetics400` or a `model.weights_path`, downloading
    it if needed; None for random initialisation (`model.pretrained=null` and no weights_path)."""
    source = model_cfg.get("pretrained")
    if source not in (None, KINETICS400):
        raise ValueError(
            f"model.pretrained={source!r} is not a weight source; use {KINETICS400!r} or null (random initialisation)"
        )
    if source is None and not model_cfg.get("weights_path"):
        return None
    name = model_cfg["name"]
    if model_cfg.get("weights_path"):
        path = Path(model_cfg["weights_path"]).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"model.weights_path={model_cfg['weights_path']} does not exist; point it at "
                f"{ARCHITECTURES[name].checkpoint} (from {checkpoint_url(name)})"
            )
        return path
    cached = hub_cache_path(name)
    if cached.is_file():
        return cached
    url = checkpoint_url(name)
    problem = _answers(url, NETWORK_TIMEOUT_S)
    if problem is not None:
        raise FileNotFoundError(_not_found_message(name, problem))
    log.info("downloading %s to %s", url, cached)
    cached.parent.mkdir(parents=True, exist_ok=True)
    try:
        # written to a temporary file and moved into place, so a broken download leaves no partial file
        torch.hub.download_url_to_file(url, os.fspath(cached), progress=False)
    except OSError as err:
        raise FileNotFoundError(_not_found_message(name, f"{type(err).__name__}: {err}")) from err
    return cached


def load_backbone(net: VideoNet, state: Mapping[str, torch.Tensor], source: str) -> PretrainedLoad:
    """Copy every tensor but the classifier's from `state` into `net.net`; all or nothing."""
    prefix = net.classifier_prefix
    own = net.net.state_dict()
    problems = []
    for key, tensor in own.items():
        if key.startswith(prefix):
            continue
        if key not in state:
            problems.append(f"missing in checkpoint: {key} {tuple(tensor.shape)}")
        elif state[key].shape != tensor.shape:
            problems.append(
                f"shape mismatch: {key} checkpoint {tuple(state[key].shape)} vs model {tuple(tensor.shape)}"
            )
    problems += [f"not in the model: {key}" for key in state if key not in own and not key.startswith(prefix)]
    if problems:
        raise PretrainedMismatchError(
            f"{source} does not fit model.name={net.name} ({len(problems)} problem(s); the classifier {prefix}* "
            "is exempt). Is it the checkpoint of this model?\n  " + "\n  ".join(problems)
        )
    backbone = {key: value for key, value in state.items() if not key.startswith(prefix)}
    net.net.load_state_dict(backbone, strict=False)
    return PretrainedLoad(source, len(backbone), sorted(key for key in state if key.startswith(prefix)))


def load_pretrained(net: VideoNet, path: Path) -> PretrainedLoad:
    """Load a pytorchvideo model-zoo checkpoint into `net`, keeping its own classifier.

    pytorchvideo's format is {"model_state": state_dict, ...}; a bare state dict is accepted too.
    """
    checkpoint = load_checkpoint(path)
    state = checkpoint.get("model_state", checkpoint) if isinstance(checkpoint, Mapping) else None
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PretrainedMismatchError(
            f"{path} is not a pytorchvideo checkpoint: expected a dict with 'model_state' (a state dict of tensors)"
        )
    result = load_backbone(net, state, str(path))
    log.info(
        "pretrained weights %s: %d tensors loaded, %d skipped (%s)",
        path,
        result.loaded,
        len(result.skipped),
        ", ".join(result.skipped) or "none",
    )
    return result
