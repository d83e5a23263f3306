"""No credential reaches a file: not from the environment, not from an override."""

import logging
import os
import subprocess
import sys

import pytest

from ar_experiments.safety.redaction import REDACTED, is_secret_name, redact_log_records, redact_secrets
from tests.conftest import REPO, tiny_overrides

ENV_SECRET = "fake-secret-123-from-the-environment"
OVERRIDE_SECRET = "fake-secret-456-from-an-override"
LOGGER_SECRET = "fake-secret-789-for-the-logger"


@pytest.mark.parametrize(
    "name", ["WANDB_API_KEY", "+wandb_api_key", "++logger.wandb.api_key", "token", "db.password", "key", "ssh_key"]
)
def test_credential_names_are_recognised(name):
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["monitor", "exclude_keys", "key_frames", "model.name", "lr", "save_top_k"])
def test_ordinary_names_are_left_alone(name):
    assert not is_secret_name(name)


def test_redaction_covers_keys_overrides_and_environment_values(monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", ENV_SECRET)
    config = {
        "model": {"name": "x3d_m", "frames": 8},
        "logger": {"wandb": {"api_key": LOGGER_SECRET, "token": None}},
        "overrides": ["frames=8", f"+wandb_api_key={OVERRIDE_SECRET}"],
        "note": f"key is {ENV_SECRET}",
    }
    assert redact_secrets(config) == {
        "model": {"name": "x3d_m", "frames": 8},
        "logger": {"wandb": {"api_key": REDACTED, "token": None}},
        "overrides": ["frames=8", f"+wandb_api_key={REDACTED}"],
        "note": f"key is {REDACTED}",
    }


def test_log_records_are_redacted_whatever_their_handler(monkeypatch, caplog):
    monkeypatch.setenv("WANDB_API_KEY", ENV_SECRET)
    monkeypatch.setattr(logging, "_logRecordFactory", logging.getLogRecordFactory())  # restored afterwards
    redact_log_records()
    logging.getLogger("hydra.launcher").warning("#0 : %s %s", f"+api_key={OVERRIDE_SECRET}", ENV_SECRET)
    assert caplog.messages == [f"#0 : +api_key={REDACTED} {REDACTED}"]


@pytest.mark.slow
def test_a_run_leaves_no_trace_of_credentials(tiny_dataset, cache_dir, tmp_path):
    sweep = tmp_path / "sweep"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ar_experiments.train",
            "-m",
            "model=x3d_m",
            "frames=6",
            f"hydra.sweep.dir={sweep}",
            *tiny_overrides(cache_dir),
            f"+wandb_api_key={OVERRIDE_SECRET}",
            f"+logger.wandb.api_key={LOGGER_SECRET}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "WANDB_MODE": "offline", "WANDB_API_KEY": ENV_SECRET},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for secret in (ENV_SECRET, OVERRIDE_SECRET, LOGGER_SECRET):
        assert secret not in result.stdout + result.stderr  # the launcher logs each job's overrides
    job = sweep / "0-x3d_m-6f-split1"
    files = [path for path in sweep.rglob("*") if path.is_file()]
    # the places a leak would show up all exist, so a clean grep means something
    for expected in (
        "multirun.yaml",
        ".hydra/config.yaml",
        ".hydra/hydra.yaml",
        ".hydra/overrides.yaml",
        "train.log",
        "results.json",
        "csv/hparams.yaml",
        "checkpoints/last.ckpt",
    ):
        assert (sweep / expected).is_file() or (job / expected).is_file(), expected
    assert list(job.glob("wandb/offline-run-*/run-*.wandb")) and list(job.glob("wandb/offline-run-*/logs/debug.log"))
    for path in files:
        content = path.read_bytes()
        for secret in (ENV_SECRET, OVERRIDE_SECRET, LOGGER_SECRET):
            assert secret.encode() not in content, f"{secret} in {path.relative_to(sweep)}"
    assert f"+wandb_api_key={REDACTED}" in (job / ".hydra" / "overrides.yaml").read_text()
    assert "ignoring logger.wandb.api_key" in (job / "train.log").read_text()
