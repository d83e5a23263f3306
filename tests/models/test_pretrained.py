"""Kinetics-400 checkpoints in pytorchvideo's published format load into our networks, strictly."""

import functools
import http.server
import json
import logging
import socket
import threading
import time

import pytest
import torch

from ar_experiments.models import build_model
from ar_experiments.models import weights as weights_module
from ar_experiments.models.weights import PretrainedMismatchError, find_pretrained, load_pretrained
from ar_experiments.safety.safe_load import load_checkpoint
from tests.conftest import tiny_overrides

HUB_BUILDERS = {"x3d_m": "x3d_m", "x3d_xs": "x3d_xs", "slowfast": "slowfast_r50"}
# a proxy nobody listens on: every download fails at once, as with no network at all
NO_NETWORK = {"HTTPS_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "NO_PROXY": "", "no_proxy": ""}


@functools.cache
def published_state(name: str) -> dict[str, torch.Tensor]:
    """pytorchvideo's own hub architecture for `name`, randomly initialised: the model zoo's tensors."""
    import pytorchvideo.models.hub as hub

    torch.manual_seed(123)
    return getattr(hub, HUB_BUILDERS[name])(pretrained=False).state_dict()


def save_published(name: str, path, state=None):
    """A checkpoint as the model zoo publishes it: a dict with `model_state`."""
    torch.save({"model_state": state if state is not None else published_state(name)}, path)
    return path


@pytest.mark.parametrize("name, frames", [("x3d_m", 6), ("x3d_m", 16), ("slowfast", 8)])
def test_published_checkpoint_loads_every_backbone_tensor(name, frames, tmp_path):
    checkpoint = save_published(name, tmp_path / "published.pyth")
    net = build_model(name, num_classes=7, frames=frames, crop_size=32)
    path = find_pretrained({"name": name, "pretrained": "kinetics400", "weights_path": str(checkpoint)})
    result = load_pretrained(net, path)

    published = published_state(name)
    head = net.classifier_prefix
    ours = net.net.state_dict()
    backbone = [key for key in ours if not key.startswith(head)]
    assert all(torch.equal(ours[key], published[key]) for key in backbone)
    assert result.loaded == len(backbone) == len(published) - 2
    assert result.skipped == [f"{head}bias", f"{head}weight"]
    assert ours[f"{head}weight"].shape[0] == 7  # the classifier is ours, sized for the dataset
    with torch.no_grad():
        assert net.eval()(torch.randn(1, 3, frames, 48, 40)).shape == (1, 7)


def test_a_checkpoint_that_does_not_fit_names_every_mismatch_and_loads_nothing(tmp_path):
    state = dict(published_state("x3d_m"))
    state["blocks.1.res_blocks.0.branch2.conv_a.weight"] = torch.zeros(3, 3, 1, 1, 1)
    del state["blocks.2.res_blocks.0.branch2.norm_c.running_var"]
    checkpoint = save_published("x3d_m", tmp_path / "wrong.pyth", state)
    net = build_model("x3d_m", num_classes=5, frames=6, crop_size=32)
    before = {key: value.clone() for key, value in net.net.state_dict().items()}
    with pytest.raises(PretrainedMismatchError) as caught:
        load_pretrained(net, checkpoint)
    message = str(caught.value)
    assert "shape mismatch: blocks.1.res_blocks.0.branch2.conv_a.weight checkpoint (3, 3, 1, 1, 1)" in message
    assert "missing in checkpoint: blocks.2.res_blocks.0.branch2.norm_c.running_var" in message
    assert "wrong.pyth" in message
    assert all(torch.equal(value, before[key]) for key, value in net.net.state_dict().items())


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    checkpoint = save_published("x3d_m", tmp_path / "X3D_M.pyth")
    with pytest.raises(PretrainedMismatchError, match="model.name=slowfast"):
        load_pretrained(build_model("slowfast", num_classes=5, frames=8, crop_size=32), checkpoint)


def test_missing_weights_path_names_the_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.weights_path=.*X3D_M.pyth"):
        find_pretrained({"name": "x3d_m", "pretrained": "kinetics400", "weights_path": str(tmp_path / "none.pyth")})


def test_unknown_pretrained_source_is_an_error():
    with pytest.raises(ValueError, match="model.pretrained='imagenet'"):
        find_pretrained({"name": "x3d_m", "pretrained": "imagenet"})


def test_no_pretrained_means_no_file_is_looked_for():
    assert find_pretrained({"name": "x3d_m", "pretrained": None, "weights_path": None}) is None


def test_weights_come_from_the_hub_cache_then_the_model_zoo(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for variable in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(variable, raising=False)
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    save_published("x3d_xs", zoo / "X3D_XS.pyth")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(zoo))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(weights_module, "MODEL_ZOO_URL", f"http://127.0.0.1:{server.server_address[1]}")
    try:
        path = find_pretrained({"name": "x3d_xs", "pretrained": "kinetics400"})
    finally:
        server.shutdown()
    assert path == tmp_path / "torch" / "hub" / "checkpoints" / "X3D_XS.pyth"
    assert load_pretrained(build_model("x3d_xs", num_classes=3, frames=4, crop_size=32), path).loaded > 300
    # now cached: found with the model zoo gone
    assert find_pretrained({"name": "x3d_xs", "pretrained": "kinetics400"}) == path


def test_a_model_zoo_that_never_answers_is_given_up_quickly(tmp_path, monkeypatch):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts connections, never answers
    proxy = f"http://127.0.0.1:{silent.getsockname()[1]}"
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HTTPS_PROXY", proxy)
    monkeypatch.setenv("https_proxy", proxy)
    monkeypatch.setattr(weights_module, "NETWORK_TIMEOUT_S", 1.0)
    started = time.perf_counter()
    try:
        with pytest.raises(FileNotFoundError) as caught:
            find_pretrained({"name": "x3d_m", "pretrained": "kinetics400"})
    finally:
        silent.close()
    assert time.perf_counter() - started < 10  # a 1 s network timeout, not a hang (load-tolerant margin)
    message = str(caught.value)
    assert "X3D_M.pyth" in message and str(tmp_path / "torch" / "hub" / "checkpoints") in message
    assert "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics/X3D_M.pyth" in message
    assert "model.weights_path=" in message


@pytest.mark.parametrize("freeze", [pytest.param(False, marks=pytest.mark.slow), True])
def test_a_run_fine_tunes_from_the_checkpoint(
    train_in_process, tiny_dataset, cache_dir, tmp_path, freeze, monkeypatch, caplog
):
    checkpoint = save_published("x3d_m", tmp_path / "X3D_M.pyth")
    run_dir = tmp_path / "run"
    for name, value in NO_NETWORK.items():
        monkeypatch.setenv(name, value)
    overrides = [
        "model=x3d_m",
        "frames=6",
        "model.pretrained=kinetics400",
        f"model.weights_path={checkpoint}",
        f"model.freeze_backbone={str(freeze).lower()}",
        "optimizer.head_lr_mult=10",
        "logger=csv",
        "data.batch_size=2",
        "test.temporal_views=1",
        *tiny_overrides(cache_dir),
    ]
    with caplog.at_level(logging.INFO, logger="ar_experiments"):
        train_in_process(overrides, run_dir)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["status"] == "completed"
    assert results["pretrained"] == "kinetics400" and results["pretrained_weights"] == str(checkpoint)
    assert results["pretrained_tensors_loaded"] == len(published_state("x3d_m")) - 2
    assert results["pretrained_tensors_skipped"] == 2
    assert f"{results['pretrained_tensors_loaded']} tensors loaded, 2 skipped" in caplog.text

    # our own checkpoint is weights-only loadable, with everything a resume needs
    saved = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert {"state_dict", "optimizer_states", "callbacks", "loops", "hyper_parameters"} <= set(saved)
    published = published_state("x3d_m")
    trained = {k.removeprefix("net.net."): v for k, v in saved["state_dict"].items() if k.startswith("net.net.")}
    backbone = [k for k in published if not k.startswith("blocks.5.proj.")]
    unchanged = [k for k in backbone if torch.equal(trained[k].float(), published[k].float())]
    if freeze:  # weights and BatchNorm statistics alike
        assert unchanged == backbone
    else:
        assert len(unchanged) < len(backbone) / 2


def test_a_run_without_the_weights_offline_fails_fast_naming_the_file(
    train_in_process, tiny_dataset, cache_dir, tmp_path, monkeypatch
):
    run_dir = tmp_path / "run"
    for name, value in {**NO_NETWORK, "TORCH_HOME": str(tmp_path / "torch")}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(FileNotFoundError) as error:
        train_in_process(["model=slowfast", "model.pretrained=kinetics400", *tiny_overrides(cache_dir)], run_dir)
    assert "SLOWFAST_8x8_R50.pyth" in str(error.value) and "model.weights_path=" in str(error.value)
    results = json.loads((run_dir / "results.json").read_text())
    assert results["status"] == "failed" and str(tmp_path / "torch" / "hub" / "checkpoints") in results["error"]
    # fast: it failed while building the model, before any training or checkpoint
    assert results["train_seconds"] is None and results["epochs"] is None  # the record has every key (one definition)
    assert not list(run_dir.glob("checkpoints/*.ckpt"))
