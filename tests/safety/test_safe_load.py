"""A checkpoint that would run code when unpickled is refused before any of it runs."""

import pytest
import pytorch_lightning as pl
import torch

from ar_experiments.models import build_model
from ar_experiments.models.weights import load_pretrained
from ar_experiments.safety.safe_load import UnsafeCheckpointError, explain_unsafe_checkpoint, load_checkpoint
from ar_experiments.training.module import VideoClassifier
from tests.conftest import tiny_overrides


class WritesMarker:
    """Unpickling this calls open(marker, "w"): the file appears only if the pickle's code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def booby_trapped(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "X3D_M.pyth"
    torch.save({"model_state": {"blocks.0.conv.weight": torch.zeros(1)}, "extra": WritesMarker(marker)}, path)
    return path, marker


def assert_refused(error: UnsafeCheckpointError, path, marker):
    message = str(error)
    assert f"refusing to load {path}" in message
    assert "io.open" in message  # what the file needed
    assert "state_dict" in message and "weights_only=False" in message  # how to convert a trusted file
    assert not marker.exists()


def test_refused_even_when_the_environment_asks_torch_for_full_unpickling(booby_trapped, monkeypatch):
    path, marker = booby_trapped
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    with pytest.raises(UnsafeCheckpointError) as caught:
        load_checkpoint(path)
    assert_refused(caught.value, path, marker)


def test_pretrained_weights_are_loaded_safely(booby_trapped):
    path, marker = booby_trapped
    with pytest.raises(UnsafeCheckpointError) as caught:
        load_pretrained(build_model("x3d_m", num_classes=3, frames=4, crop_size=32), path)
    assert_refused(caught.value, path, marker)


def test_lightning_checkpoints_are_loaded_safely(booby_trapped, tmp_path):
    path, marker = booby_trapped
    checkpoint = tmp_path / "last.ckpt"
    checkpoint.write_bytes(path.read_bytes())
    module = VideoClassifier(
        model={"name": "x3d_m", "frames": 4, "crop_size": 32},
        class_names=["a", "b"],
        optimizer={"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1},
    )
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False)
    never_read = [{"video": torch.zeros(1, 3, 4, 32, 32), "label": torch.zeros(1, dtype=torch.long)}]
    with pytest.raises(UnsafeCheckpointError) as caught, explain_unsafe_checkpoint(checkpoint):
        trainer.test(module, dataloaders=never_read, ckpt_path=checkpoint, weights_only=True)
    assert_refused(caught.value, checkpoint, marker)


def test_a_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.ckpt"):
        load_checkpoint(tmp_path / "nothing.ckpt")


def test_predict_loads_a_checkpoint_weights_only(booby_trapped, tmp_path, monkeypatch):
    from ar_experiments.predict import load_trained_model

    path, marker = booby_trapped
    checkpoint = tmp_path / "best-epoch00.ckpt"
    checkpoint.write_bytes(path.read_bytes())
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    with pytest.raises(ValueError, match=f"(?s)cannot load checkpoint {checkpoint}: .*GLOBAL io.open"):
        load_trained_model(checkpoint)
    assert not marker.exists()


@pytest.mark.parametrize("path", ["resumed", "tested"])
def test_a_run_loads_the_checkpoint_it_resumes_from_and_the_one_it_tests_weights_only(
    booby_trapped, compose_config, tiny_dataset, cache_dir, tmp_path, monkeypatch, path
):
    """Both checkpoints a run reads go through Lightning: removing `weights_only=True` from either call
    would let the file's code run (the environment asks torch for full unpickling by default)."""
    from ar_experiments.training.run import run_in_this_process

    trap, marker = booby_trapped
    run_dir = tmp_path / "run"
    if path == "resumed":
        (run_dir / "checkpoints").mkdir(parents=True)
        (run_dir / "checkpoints" / "last.ckpt").write_bytes(trap.read_bytes())
    else:  # no training: the best checkpoint the fit leaves is the trapped file

        def fit_leaving_the_trap(trainer, *args, **kwargs):
            trainer.checkpoint_callback.best_model_path = str(trap)

        monkeypatch.setattr(pl.Trainer, "fit", fit_leaving_the_trap)
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    with pytest.raises(UnsafeCheckpointError, match="refusing to load"):
        run_in_this_process(compose_config([*tiny_overrides(cache_dir, run_dir), "logger=csv", "model=x3d_xs"]))
    assert not marker.exists()
    assert "refusing to load" in (run_dir / "results.json").read_text()


def test_the_refusal_says_what_the_file_needed_in_one_line():
    from ar_experiments.safety.safe_load import CONVERT_HINT, unsafe_checkpoint_message

    needs_a_class = Exception(
        "Weights only load failed.\nWeightsUnpickler error: Unsupported global: GLOBAL io.open was"
    )
    assert unsafe_checkpoint_message("a.ckpt", needs_a_class) == (
        "refusing to load a.ckpt: it refers to io.open, which is not a tensor or plain container. Loading it would "
        f"unpickle arbitrary objects, which can run code from the file. {CONVERT_HINT}."
    )
    other = Exception("Weights only load failed.\nWeightsUnpickler error:  Unsupported operand 149 \nmore")
    assert unsafe_checkpoint_message("a.ckpt", other).startswith("refusing to load a.ckpt: Unsupported operand 149. ")
    unknown = Exception("first line\nsecond line")
    assert unsafe_checkpoint_message("a.ckpt", unknown).startswith("refusing to load a.ckpt: first line. ")


def test_a_checkpoint_loads_onto_the_device_asked_for(tmp_path):
    torch.save({"weight": torch.ones(2)}, tmp_path / "w.pyth")
    assert load_checkpoint(tmp_path / "w.pyth", map_location="meta")["weight"].device.type == "meta"
    assert load_checkpoint(tmp_path / "w.pyth")["weight"].device.type == "cpu"
