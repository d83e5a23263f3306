"""Resuming: a run folder that already holds a run continues it instead of starting over.

`resume=auto` (the default): a completed run's folder is skipped (its recorded best_val_acc returned, so a
re-run sweep only does what is left), else training continues from `checkpoints/last.ckpt` if present;
`resume=<run folder or .ckpt>` continues from that checkpoint in this run's own folder (docs/faults.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config.checks import ConfigError
from ..safety.atomic import read_json

log = logging.getLogger(__name__)

LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"


@dataclass(frozen=True)
class ResumePlan:
    """What a run does with the state it finds: nothing, continue from `checkpoint`, or skip as `completed`."""

    checkpoint: str | None = None
    completed: dict[str, Any] | None = None


def job_overrides() -> list[str] | None:
    """This job's command-line overrides (a sweep's values included) minus `resume=`; None outside Hydra."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return sorted(o for o in HydraConfig.get().overrides.task if not o.lstrip("+~").startswith("resume="))


def plan_resume(resume: str, run_dir: Path, overrides: list[str] | None) -> ResumePlan:
    """Decide from `resume` and the state in `run_dir`; refuse state left by a job with other overrides."""
    if resume != "auto":
        path = Path(resume).expanduser()
        checkpoint = path / LAST_CHECKPOINT if path.is_dir() else path
        if not checkpoint.is_file():
            raise ConfigError([f"resume={resume}: no checkpoint at {checkpoint}; pass a run folder or a .ckpt file"])
        return ResumePlan(checkpoint=str(checkpoint))
    results = run_dir / "results.json"
    previous = read_json(results)
    if previous is None and results.is_file():  # written atomically: a hand-edited or foreign file; do not guess
        raise ConfigError([f"{results} cannot be read as JSON; delete it or run in a new folder"])
    recorded = (previous or {}).get("overrides")
    if recorded is not None and overrides is not None and sorted(recorded) != overrides:
        raise ConfigError(
            [
                f"{run_dir} holds a run with other overrides ({' '.join(recorded)}); re-run with exactly "
                "those to resume it, or give this run a new folder (hydra.run.dir=... / hydra.sweep.dir=...)"
            ]
        )
    if previous is not None and previous.get("status") == "completed":
        return ResumePlan(completed=previous)
    last = run_dir / LAST_CHECKPOINT
    return ResumePlan(checkpoint=str(last)) if last.is_file() else ResumePlan()
