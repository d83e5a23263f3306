"""A wrong setting fails at once, in one line naming the key, its value and what it may be."""

import json
import subprocess
import sys

import pytest

from ar_experiments.config.checks import ConfigError, check_config
from tests.conftest import REPO, tiny_overrides


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["model.name=x3d_q"], "model.name='x3d_q' is not a model; choose model=<x3d_xs|x3d_s|x3d_m|x3d_l|slowfast>"),
        (["optimizer._target_=torch.optim.Adamm"], "optimizer._target_='torch.optim.Adamm' is not a torch optimizer"),
        (["optimizer.lr=-0.1"], "optimizer.lr=-0.1: the learning rate must be a finite number > 0"),
        (
            ["scheduler=step", "scheduler.scheduler._target_=torch.nn.Linear"],
            "is not a learning-rate scheduler; choose scheduler=<",
        ),
        (["frames=5"], "frames=5 has no sampling stride; choose one of [4, 6, 8, 16, 32] or set data.stride=N"),
        (["frames=0", "data.stride=4"], "frames=0: a clip needs a whole number of frames, at least 1"),
        (["data.crop_size=16"], "data.crop_size=16 is too small: models downsample space 32x; use at least 32"),
        (["data.crop_size=48"], "data.crop_size=48 is larger than data.short_side=36"),
        (["split=4"], "split=4: UCF101 has the official splits 1, 2, 3"),
        (["data.on_bad_video=ignore"], "data.on_bad_video='ignore'; choose one of skip, error"),
        (["test.spatial_crops=2"], "test.spatial_crops=2; choose one of [1, 3]"),
        (["test.crop_size=64"], "test.crop_size=64 is larger than data.short_side=36"),
        (["data.num_workers=-1"], "data.num_workers=-1: use a whole number >= 0 (0 loads in-process)"),
        (["optimizer.reference_batch_size=0"], "optimizer.reference_batch_size=0: use a whole number >= 1"),
        (["data=ucf101"], "data.root is not set; pass data.root=..."),
        (["data=ucf101", "data.root=/no/such/folder"], "data.root='/no/such/folder' does not exist"),
        (["resume=/no/such/run"], "resume='/no/such/run' does not exist; use resume=auto or resume=<run folder"),
    ],
)
def test_a_wrong_setting_is_one_line_naming_key_value_and_choices(
    compose_config, cache_dir, tmp_path, overrides, expected
):
    # the tiny overrides shrink the synthetic data, which data=ucf101 does not have
    base = [f"paths.output_dir={tmp_path}"] if "data=ucf101" in overrides else tiny_overrides(cache_dir, tmp_path)
    cfg = compose_config([*base, *overrides])
    with pytest.raises(ConfigError) as caught:
        check_config(cfg)
    assert len(caught.value.problems) == 1 and "\n" not in str(caught.value)
    assert expected in str(caught.value)


def test_the_default_config_passes(compose_config, cache_dir, tmp_path):
    check_config(compose_config(tiny_overrides(cache_dir, tmp_path / "run")))


def test_config_errors_stop_train_before_any_data_is_read(compose_config, tmp_path):
    from ar_experiments.train import train

    cache = tmp_path / "cache"  # the synthetic data would be generated here
    cfg = compose_config([*tiny_overrides(cache, tmp_path / "run"), "data.crop_size=16"])
    with pytest.raises(ConfigError):
        train(cfg)
    assert not cache.exists()  # no data was read, let alone generated
    # the job is still on record, so a sweep's report lists it as failed with the reason
    record = json.loads((tmp_path / "run" / "results.json").read_text())
    assert record["status"] == "failed" and "data.crop_size=16" in record["error"]


@pytest.mark.slow
def test_the_command_line_shows_a_config_error_as_one_line_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "ar_experiments.train", "frames=5", f"hydra.run.dir={tmp_path}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: frames=5 has no sampling stride")
