"""Train, validate and test one configuration; a Hydra multirun of it is the experiment grid.

python -m ar_experiments.train model=slowfast frames=16 split=2
python -m ar_experiments.train -m model=x3d_m,slowfast frames=6,8,16

The entry only wires the parts: DDP ranks (training/distributed.py) or one process
(training/run.py), and the one-line message for a config or split-file error.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig

from .config import resolvers  # noqa: F401  (registers the resolvers the configs use)


def train(cfg: DictConfig, wandb_group: str | None = None) -> float:
    """Fit, test with the best checkpoint, write results.json; return best val top-1 (what a sweeper optimises).

    The run folder is held (training/run_lock.py) from before resume planning reads it: one live process
    writes it. Under trainer=ddp/ddp_cpu this process starts the ranks and waits for them.
    """
    started = time.perf_counter()  # before the imports: the first job of a process pays for them
    from .training.distributed import ranks_to_start, train_on_started_ranks
    from .training.run import log_how_to_resume, run_in_this_process, sweep_group
    from .training.run_lock import holding

    with holding(Path(cfg.paths.output_dir)):
        if not (processes := ranks_to_start(cfg.trainer)):
            best = run_in_this_process(cfg, wandb_group, started).best_val_acc
            return float(best) if best is not None else float("nan")
        from .training.interruption import RunInterrupted

        try:
            return train_on_started_ranks(cfg, processes, sweep_group(cfg))
        except RunInterrupted:
            log_how_to_resume(Path(cfg.paths.output_dir))
            raise


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float:
    from .sweeps.gpu_placement import claim_gpus, release_gpu_memory
    from .sweeps.job_status import update_job_status
    from .training.run import ONE_LINE_ERRORS, sweep_dir

    logging.captureWarnings(True)  # to the py.warnings logger, which writes train.log (conf/hydra/default.yaml)
    try:
        with claim_gpus(cfg, status=update_job_status) as devices:  # a GPU job takes a GPU slot of its own
            if devices is not None:
                cfg.trainer.devices = devices
            return train(cfg)
    except ONE_LINE_ERRORS as err:
        if sweep_dir():  # in a multirun the job fails and the sweep goes on to the next one
            raise
        # the message names the key or file and the fix; a traceback would only bury it
        raise SystemExit(f"error: {err}") from None
    finally:
        release_gpu_memory()  # before the next job of this process (a multirun's)


if __name__ == "__main__":
    main()
