"""Credentials in names and quoted overrides (issue 18, item 5): none reaches a file or folder name or a file."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ar_experiments.safety.redaction import REDACTED, redact_text
from tests.conftest import REPO, tiny_overrides

LONG_SECRET = "fake-secret-0123456789-wandb"
SHORT_SECRET = "hunt3r7"  # under 8 characters: replaced where it stands as a word
QUOTED = ("abcdefgh123", "hunter3hunter3")
ENV = {"WANDB_API_KEY": LONG_SECRET, "DB_PASSWORD": SHORT_SECRET}


@pytest.mark.parametrize(
    "text,expected",
    [
        ('+cmd="--token=abcdefgh123"', f'+cmd="--token={REDACTED}"'),
        ("+misc='password=hunter3hunter3'", f"+misc='password={REDACTED}'"),
        ("+x=[password=abc12345]", f"+x=[password={REDACTED}]"),
        ("a: {token: zz}", f"a: {{token: {REDACTED}}}"),
        (f"note={SHORT_SECRET} other={SHORT_SECRET}8", f"note={REDACTED} other={SHORT_SECRET}8"),
        ("model=x3d_m frames=8 key_frames=3 url=http://host:8080/x?a=b", None),
    ],
)
def test_secrets_inside_quoted_and_nested_values_and_short_ones_are_redacted(monkeypatch, text, expected):
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    assert redact_text(text) == (text if expected is None else expected)


def run(args, tmp_path):
    return subprocess.run(
        [sys.executable, "-m", "ar_experiments.train", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "WANDB_MODE": "offline", **ENV},
    )


@pytest.mark.slow
def test_a_run_folder_built_from_a_credential_stops_naming_the_variable(tmp_path):
    result = run(["hydra.run.dir=" + str(tmp_path / "out") + "/${oc.env:WANDB_API_KEY}"], tmp_path)
    assert result.returncode == 1
    assert "hydra.run.dir would put the value of $WANDB_API_KEY into a folder name" in result.stderr
    assert not (tmp_path / "out").exists() and LONG_SECRET not in result.stdout + result.stderr


@pytest.mark.slow
def test_secrets_in_run_names_and_quoted_overrides_reach_no_file_or_folder_name(tiny_dataset, cache_dir, tmp_path):
    sweep = tmp_path / "sweep"
    args = [
        "-m",
        f"hydra.sweep.dir={sweep}",
        *tiny_overrides(cache_dir),
        "frames=4",
        "data.batch_size=2",
        "test.temporal_views=1",
        "test.spatial_crops=1",
        "run_name=r-${oc.env:WANDB_API_KEY}",
        '+cmd="--token=abcdefgh123"',
        "+misc='password=hunter3hunter3'",
        "+note=${oc.env:DB_PASSWORD}",
    ]
    result = run(args, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    secrets = (LONG_SECRET, SHORT_SECRET, *QUOTED)
    for secret in secrets:
        assert secret not in result.stdout + result.stderr
    (job,) = [path for path in sweep.iterdir() if path.is_dir() and not path.name.startswith(".")]  # .progress/
    assert job.name == "0-r-REDACTED"
    paths = list(sweep.rglob("*"))
    for expected in ("multirun.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml", "results.json", "checkpoints"):
        assert (sweep / expected).exists() or (job / expected).exists(), expected
    assert list(job.glob("wandb/offline-run-*/run-*.wandb"))
    for path in paths:
        for secret in secrets:
            assert secret not in str(path.relative_to(sweep)), path
            assert not path.is_file() or secret.encode() not in path.read_bytes(), f"{secret} in {path}"
