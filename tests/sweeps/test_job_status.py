"""A job's own status file at its end (sweeps/job_status.py), in-process."""

from __future__ import annotations

import json

from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from ar_experiments.sweeps.job_status import STATUS_ENV, JobStatusCallback


def test_a_failed_job_records_its_error_redacted_and_a_completed_one_its_top1(tmp_path, monkeypatch):
    job_dir = tmp_path / "0-x3d_m-8f-split1"
    job_dir.mkdir()
    config = OmegaConf.create({"hydra": {"runtime": {"output_dir": str(job_dir)}}})
    status_file = tmp_path / "0.json"
    for outcome in ("failed", "completed"):
        status_file.write_text(json.dumps({"started_at": 0.0, "state": "running"}))
        monkeypatch.setenv(STATUS_ENV, str(status_file))
        if outcome == "failed":
            job_return = JobReturn(status=JobStatus.FAILED, _return_value=ValueError("bad token=abc123"))
        else:
            (job_dir / "results.json").write_text(json.dumps({"status": "completed", "test_top1_multiview": 0.75}))
            job_return = JobReturn(status=JobStatus.COMPLETED, _return_value=0.5)
        JobStatusCallback().on_job_end(config, job_return)
        status = json.loads(status_file.read_text())
        assert status["state"] == outcome
        if outcome == "failed":
            assert status["error"] == "ValueError: bad token=<redacted>"
        else:
            assert status["top1"] == 0.75 and "error" not in status
