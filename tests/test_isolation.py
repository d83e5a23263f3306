"""Runs in the test process (conftest.train_in_process): Hydra sees the job as the command line makes it,
and the run leaves nothing behind for the tests after it (conftest.process_state_restored)."""

from __future__ import annotations

import json
import logging
import os
import signal

import torch

from tests.conftest import SMALLEST_RUN, process_state_restored, tiny_overrides


def process_state() -> dict:
    from hydra.core.hydra_config import HydraConfig
    from pytorch_lightning.utilities import rank_zero_only

    return {
        "threads": torch.get_num_threads(),
        "seed": os.environ.get("PL_GLOBAL_SEED"),
        "hydra job": HydraConfig.initialized(),
        "signals": [signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)],
        "rank": rank_zero_only.rank,
        "root handlers": len(logging.root.handlers),
    }


def test_a_run_in_this_process_is_the_commands_job_and_leaves_the_process_as_it_found_it(
    train_in_process, tiny_dataset, cache_dir, tmp_path
):
    # the run trains on one thread (more would oversubscribe the cores that the other test workers use),
    # from a process on two: a change it has to undo
    own_threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        before = process_state()
        overrides = [*tiny_overrides(cache_dir), *SMALLEST_RUN, "threads_per_job=1"]
        with process_state_restored():
            train_in_process(overrides, tmp_path / "run")
            changed = process_state()
            signal.signal(signal.SIGTERM, lambda *_: None)  # as a run killed between installing and restoring would
            logging.root.addHandler(logging.NullHandler())  # as Hydra's job logging does
        after = process_state()
    finally:
        torch.set_num_threads(own_threads)
    # the run changed them, so finding them back means something
    assert changed["threads"] == 1 and changed["seed"] == "0" and changed["hydra job"]
    assert after == before
    # the job's overrides as `python -m ar_experiments.train OVERRIDES` records them (resume=auto compares them)
    assert json.loads((tmp_path / "run" / "results.json").read_text())["overrides"] == sorted(overrides)
