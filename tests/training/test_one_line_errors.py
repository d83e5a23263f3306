"""A config error: its one line on the console, its traceback in train.log (the train_log_only logger)."""

from __future__ import annotations

import io
import logging
import logging.config

import pytest
from omegaconf import OmegaConf

from tests.conftest import CONF_DIR, run_train, tiny_overrides

NO_VALIDATION = "data.val_groups_per_class=0"  # with the default checkpoint watching val/top1: a config error


@pytest.fixture
def hydra_logging(tmp_path):
    """The run's logging as conf/hydra/default.yaml sets it up; yields (what the console got, train.log)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        settings = OmegaConf.to_container(compose("train", return_hydra_config=True).hydra.job_logging)
    settings["handlers"]["console"]["level"] = "INFO"  # a single run's level (cpu_share.console_log_level)
    settings["handlers"]["file"]["filename"] = str(tmp_path / "train.log")
    console = settings["handlers"]["console"]["stream"] = io.StringIO()
    root = logging.getLogger()
    before = root.handlers[:], root.level
    logging.config.dictConfig(settings)
    yield console, tmp_path / "train.log"
    for handler in root.handlers:
        handler.close()
    root.handlers[:], root.level = before[0], before[1]


def test_a_config_errors_traceback_is_in_train_log_and_not_on_the_console(
    hydra_logging, compose_config, cache_dir, tmp_path
):
    from ar_experiments.config.checks import ConfigError
    from ar_experiments.training.run import run_in_this_process

    cfg = compose_config([*tiny_overrides(cache_dir, tmp_path / "run"), NO_VALIDATION])
    with pytest.raises(ConfigError):
        run_in_this_process(cfg)
    console, train_log = hydra_logging
    assert console.getvalue() == ""
    logged = train_log.read_text()
    assert "Traceback" in logged and "ConfigError: callbacks.model_checkpoint watches val/top1" in logged


@pytest.mark.slow
def test_the_command_prints_a_config_error_as_its_one_line(tmp_path):
    # one problem (the default recipe's early stopping off): one line; each further problem adds its own line
    result = run_train([NO_VALIDATION, "callbacks.early_stopping=null", f"hydra.run.dir={tmp_path}"])
    assert result.returncode == 1
    (line,) = (result.stdout + result.stderr).strip().splitlines()
    assert line.startswith("error: callbacks.model_checkpoint watches val/top1, but data.val_groups_per_class=0")
    assert "Traceback" in (tmp_path / "train.log").read_text()


def test_a_split_file_errors_traceback_is_in_train_log_and_not_on_the_console(hydra_logging, compose_config, tmp_path):
    from ar_experiments.data.splits import DatasetIndexError
    from ar_experiments.training.run import run_in_this_process

    empty = [f"paths.output_dir={tmp_path / 'run'}", "data=ucf101", f"data.root={tmp_path}", "model.pretrained=null"]
    cfg = compose_config(empty)
    with pytest.raises(DatasetIndexError):
        run_in_this_process(cfg)
    console, train_log = hydra_logging
    assert "Traceback" not in console.getvalue() and "classInd.txt" not in console.getvalue()
    assert "DatasetIndexError: 1 problem(s) in the dataset index" in train_log.read_text()
