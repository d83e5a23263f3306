"""Redaction's parts in-process: the YAML files Hydra writes, folder names, which environment values count."""

import logging

import pytest
from omegaconf import OmegaConf

from ar_experiments.safety import redaction
from ar_experiments.safety.redaction import (
    REDACTED,
    RedactSecretsCallback,
    SecretFoldersCallback,
    folder_problem,
    redact_log_records,
    redact_yaml_file,
    safe_name,
    secret_environment_values,
    secret_variables_in,
)

SECRET = "s3cr3t-value-0123"


def test_a_yaml_file_with_secrets_is_rewritten_and_one_without_is_left_alone(tmp_path):
    saved = tmp_path / "config.yaml"
    saved.write_text("logger:\n  api_key: abcdef123456\nmodel: x3d_m\nlr: ${optimizer.lr}\n")
    assert redact_yaml_file(saved)
    assert saved.read_text() == f"logger:\n  api_key: {REDACTED}\nmodel: x3d_m\nlr: ${{optimizer.lr}}\n"
    clean = tmp_path / "overrides.yaml"
    clean.write_text("- model=x3d_m\n")
    before = clean.stat().st_mtime_ns
    assert not redact_yaml_file(clean) and clean.stat().st_mtime_ns == before
    assert not redact_yaml_file(tmp_path / "missing.yaml")


def test_the_callback_rewrites_each_jobs_saved_configs_and_the_sweeps(tmp_path):
    job, sweep = tmp_path / "sweep" / "0", tmp_path / "sweep"
    (job / ".hydra").mkdir(parents=True)
    for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
        (job / ".hydra" / name).write_text("- +wandb.api_key=abcdef123456\n")
    (sweep / "multirun.yaml").write_text("token: abcdef123456\n")
    config = OmegaConf.create(
        {
            "hydra": {
                "output_subdir": ".hydra",
                "runtime": {"output_dir": str(job)},
                "mode": "MULTIRUN",
                "sweep": {"dir": str(sweep)},
            }
        }
    )
    config.hydra.mode = redaction.RunMode.MULTIRUN
    RedactSecretsCallback().on_job_start(config)
    for path in [*(job / ".hydra").iterdir(), sweep / "multirun.yaml"]:
        assert "abcdef123456" not in path.read_text(), path
    (sweep / "multirun.yaml").write_text("token: abcdef123456\n")
    RedactSecretsCallback().on_multirun_end(config)
    assert "abcdef123456" not in (sweep / "multirun.yaml").read_text()


def test_environment_values_count_by_their_length_longest_first(monkeypatch):
    monkeypatch.setenv("A_TOKEN", "zzzzzzzz")  # 8 characters: replaced everywhere
    monkeypatch.setenv("B_TOKEN", "aaaaaaaaaaaa")  # longest first, not in reverse alphabetical order
    monkeypatch.setenv("C_TOKEN", "zzzz")  # 4 to 7: replaced as whole words only
    monkeypatch.setenv("D_TOKEN", "aaaaaaa")
    monkeypatch.setenv("E_TOKEN", "123")  # shorter: never
    monkeypatch.setenv("DISABLE_TOKEN", "TRUE")  # a flag, not a secret
    monkeypatch.setenv("PLAIN_NAME", "abcdefghij")
    values = secret_environment_values()
    assert values[:2] == ["aaaaaaaaaaaa", "zzzzzzzz"] and "abcdefghij" not in values
    assert secret_environment_values(4, below=8) == ["aaaaaaa", "zzzz"]


def test_log_records_are_redacted_once_however_often_it_is_asked(monkeypatch):
    monkeypatch.setattr(logging, "_logRecordFactory", logging.LogRecord)  # whatever an earlier test installed
    redact_log_records()
    factory = logging.getLogRecordFactory()
    redact_log_records()
    assert logging.getLogRecordFactory() is factory and factory.redacts is True
    record = factory("x", logging.INFO, "f.py", 1, "%s", ("token=abcdef123456",), None, func="f")
    assert record.getMessage() == f"token={REDACTED}" and record.funcName == "f"


def test_folder_names_carry_no_credential(monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", SECRET)
    assert safe_name(f"x3d_m-{SECRET}") == "x3d_m-REDACTED" and safe_name(8) == "8"
    assert secret_variables_in(f"outputs/{SECRET}") == ["WANDB_API_KEY"] and secret_variables_in("outputs") == []
    assert folder_problem("hydra.run.dir", "outputs/run") is None
    assert folder_problem("hydra.run.dir", f"outputs/{SECRET}") == (
        "hydra.run.dir would put the value of $WANDB_API_KEY into a folder name; a credential must not name a "
        "folder: set hydra.run.dir (or what it is built from) without it"
    )
    monkeypatch.setenv("A_TOKEN", SECRET)
    assert folder_problem("hydra.run.dir", f"outputs/{SECRET}").startswith(
        "hydra.run.dir would put the value of $A_TOKEN, $WANDB_API_KEY into a folder name"
    )
    monkeypatch.delenv("A_TOKEN")
    assert folder_problem("hydra.sweep.dir", "multirun/token=abcdefgh").startswith(
        "hydra.sweep.dir would put a credential (a secret-named name=value) into a folder name"
    )
    config = OmegaConf.create({"hydra": {"run": {"dir": f"outputs/{SECRET}"}, "sweep": {"dir": "multirun/ok"}}})
    with pytest.raises(SystemExit, match=r"^error: hydra.run.dir would put the value of \$WANDB_API_KEY"):
        SecretFoldersCallback().on_run_start(config)
    SecretFoldersCallback().on_multirun_start(config)
    config.hydra.sweep.dir = f"multirun/{SECRET}"
    with pytest.raises(SystemExit, match="^error: hydra.sweep.dir would put"):
        SecretFoldersCallback().on_multirun_start(config)


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("'+logger.wandb.api_key'", True),
        ("my.key", True),
        ("+key", True),
        ("access-key", True),
        ("ssh-key", True),
        ("wandb.mode", False),
        ("monkey", False),
    ],
)
def test_secret_names_by_their_dotted_parts(name, secret):
    assert redaction.is_secret_name(name) is secret


def test_assignments_inside_a_quoted_value_are_redacted_and_the_rest_kept():
    assert redaction.redact_text('+cmd="run --token=abc123 now"') == f'+cmd="run --token={REDACTED} now"'


def test_a_secret_that_breaks_an_interpolation_when_redacted_is_written_as_plain_yaml_in_order(tmp_path, monkeypatch):
    monkeypatch.setenv("A_TOKEN", "abcdefgh1234")  # `<redacted>` is no valid interpolation argument
    saved = tmp_path / "config.yaml"
    saved.write_text("url: ${oc.env:URL,abcdefgh1234}\nmodel: x3d_m\n")
    assert redact_yaml_file(saved)
    assert saved.read_text() == f"url: ${{oc.env:URL,{REDACTED}}}\nmodel: x3d_m\n"
