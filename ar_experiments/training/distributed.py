"""DDP on one machine, started by train() itself so that it works inside Hydra multiruns.

Lightning's `strategy=ddp` starts ranks 1..N-1 by re-running the command line
(`sys.argv`). Under Hydra that command is the whole sweep (`-m` and every sweep
value), so each rank would start a sweep of its own, and a failing rank kills
the launching process, and with it the sweep. Instead train() starts all N ranks
as spawned processes that run train() on the already-resolved config (same run
folder, same values), and waits for them:

- rank 0 writes results.json, checkpoints and logs, as in a single-process run;
- a failed rank stops the others, and the job fails with that rank's error,
  so the sweep records it and goes on;
- Ctrl-C or SIGTERM to this process is passed on to the ranks as SIGTERM: they
  stop together after the same batch and save a checkpoint (interruption.py),
  and this process ends as interrupted; a second Ctrl-C kills the ranks;
- when the ranks are started by someone else (several SLURM tasks, torchrun),
  train() leaves them alone: Lightning finds them through the environment;
  that is how a run spans several nodes (trainer.num_nodes): train() starts
  the ranks of one machine only;
- the ranks die with this process, even when it is SIGKILLed (it holds the
  run folder's lock).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from pathlib import Path
from typing import Any

from lightning_fabric.utilities.exceptions import MisconfigurationException
from omegaconf import DictConfig, ListConfig, OmegaConf

from ..config.checks import ConfigError
from ..safety.atomic import read_json

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # prctl(2), linux/prctl.h
LIGHTNING_ENVIRONMENT = "lightning_fabric.plugins.environments.LightningEnvironment"


def ranks_to_start(trainer_cfg: DictConfig) -> int:
    """How many DDP processes train() must start on this machine: 0 when it is not its job.

    Every multi-device run on one machine is train()'s job, in a single run and in any multirun, whatever
    trainer.strategy says: `auto` (which Lightning turns into `ddp` for several devices) and the DDP, FSDP
    and DeepSpeed strategies that Lightning would start by re-running the command line. A strategy that
    starts its processes another way (spawn, fork) or one given as an object is refused, in one line.
    """
    try:
        processes = _local_devices(trainer_cfg.get("accelerator", "auto"), trainer_cfg.get("devices", "auto"))
    except MisconfigurationException:
        return 0  # e.g. accelerator=gpu without a GPU: Lightning says so itself, in its own words
    nodes = int(trainer_cfg.get("num_nodes", 1) or 1)
    if _ranks_started_externally(processes, nodes) or processes <= 1:
        return 0
    strategy = trainer_cfg.get("strategy", "auto")
    if strategy == "auto" or (isinstance(strategy, str) and _starts_ranks_by_rerunning_the_command(strategy)):
        return processes
    raise ConfigError(
        [
            f"trainer.strategy={strategy!r} with {processes} devices: this project starts the DDP processes itself "
            "(so that they work inside sweeps); use trainer.strategy=ddp (trainer=ddp, or trainer=ddp_cpu on CPU)"
        ]
    )


def _starts_ranks_by_rerunning_the_command(strategy: str) -> bool:
    """Lightning's `ddp`, `fsdp`, `deepspeed` and their variants with start_method `popen`."""
    from pytorch_lightning.strategies import DDPStrategy, FSDPStrategy, StrategyRegistry

    if strategy not in StrategyRegistry:
        return False
    entry = StrategyRegistry[strategy]  # (its .get() would build the strategy)
    launched_by_command = entry["init_params"].get("start_method", "popen") == "popen"
    return issubclass(entry["strategy"], (DDPStrategy, FSDPStrategy)) and launched_by_command


def _ranks_started_externally(processes: int, nodes: int) -> bool:
    """Whether torchrun, SLURM tasks or train() itself started this process as one rank of several.

    A SLURM job of one task (sbatch, salloc, a submitit job with tasks_per_node=1) is not: train() starts
    the ranks on the job's devices. Several SLURM tasks must be one per device, counted per node, on as many
    nodes as trainer.num_nodes (what Lightning expects), which is checked here, before any data or model is
    loaded. Several nodes need ranks started on each of them: a run of `nodes` > 1 that nobody started so
    would wait for the other nodes' ranks until the rendezvous times out (30 minutes), so it is refused.
    """
    from lightning_fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    if "LOCAL_RANK" in os.environ or TorchElasticEnvironment.detect():
        return True
    if "SLURM_NTASKS" not in os.environ or not SLURMEnvironment.detect() or int(os.environ["SLURM_NTASKS"]) == 1:
        if nodes > 1:
            raise ConfigError(
                [
                    f"trainer.num_nodes={nodes}, but no one started this process as one rank of several: start "
                    f"the ranks of every node with srun --nodes={nodes} --ntasks-per-node=<trainer.devices> "
                    f"(inside sbatch --nodes={nodes}), or hydra/launcher=slurm hydra.launcher.nodes={nodes}"
                ]
            )
        return False
    tasks = os.environ["SLURM_NTASKS"]
    per_node = os.environ.get("SLURM_NTASKS_PER_NODE", "").split("(")[0]
    if not per_node:
        raise ConfigError(
            [
                f"SLURM started {tasks} tasks (srun -n/--ntasks {tasks}) without a count per node, which Lightning "
                f"needs: use srun --ntasks-per-node={tasks} (one task per device; --nodes for several machines)"
            ]
        )
    if int(per_node) != processes:
        raise ConfigError(
            [
                f"SLURM starts {per_node} tasks per node but trainer.devices asks for {processes} devices; "
                f"set trainer.devices={per_node} (one task per device)"
            ]
        )
    slurm_nodes = int(os.environ.get("SLURM_NNODES", nodes))
    if slurm_nodes != nodes:
        raise ConfigError(
            [
                f"SLURM runs the job's tasks on {slurm_nodes} nodes but trainer.num_nodes={nodes}; "
                f"set trainer.num_nodes={slurm_nodes}"
            ]
        )
    return True


def _local_devices(accelerator: str, devices: Any) -> int:
    """Devices on this machine as Lightning counts them for `accelerator` and `devices`."""
    import torch
    from pytorch_lightning.accelerators import CPUAccelerator, CUDAAccelerator

    if isinstance(devices, ListConfig):
        devices = list(devices)
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        if devices == "auto":
            devices = CUDAAccelerator.auto_device_count()
        return len(CUDAAccelerator.parse_devices(devices) or [])
    return CPUAccelerator.parse_devices(1 if devices == "auto" else devices)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def train_on_started_ranks(cfg: DictConfig, processes: int, wandb_group: str) -> float:
    """Run train(cfg) in `processes` spawned ranks; return rank 0's objective (its best val top-1)."""
    import torch.multiprocessing as mp
    from hydra.utils import instantiate
    from torch.multiprocessing.spawn import ProcessException

    run_dir = Path(cfg.paths.output_dir)
    config = OmegaConf.to_container(cfg, resolve=True)
    # one node: ranks_to_start refuses trainer.num_nodes > 1 for ranks that train() would start
    env = {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": os.environ.get("MASTER_PORT") or str(_free_port()),
        "NODE_RANK": "0",
        "WORLD_SIZE": str(processes),
    }
    from .interruption import RunInterrupted, restore_signals, take_signals

    forward = ForwardSignals()
    replaced: dict[int, object] = {}
    try:
        # generate the dataset (if synthetic) once here, not in N ranks at the same time
        instantiate(cfg.data).prepare_data()
        log.info("Starting %d DDP processes (master port %s) for %s", processes, env["MASTER_PORT"], run_dir)
        context = mp.start_processes(
            _run_rank,
            args=(config, env, wandb_group, os.getpid()),
            nprocs=processes,
            join=False,
            start_method="spawn",
        )
        forward.processes = context.processes
        replaced = take_signals(forward)
        while not context.join():
            pass
    except ProcessException as err:
        if forward.signum is not None:  # the ranks stopped on the signal; rank 0 recorded the interruption
            raise RunInterrupted(forward.signum) from None
        # the other ranks have been stopped; rank 0 may have died before writing its record
        message = f"DDP rank {err.error_index} failed: {_last_line(str(err))}"
        _record_failure(cfg, run_dir, message)
        raise RuntimeError(message) from None
    except Exception as err:
        _record_failure(cfg, run_dir, f"{type(err).__name__}: {err}")
        raise
    finally:
        restore_signals(replaced)
    if forward.signum is not None:  # the signal came after training: the run is complete, the sweep stops
        raise RunInterrupted(forward.signum)
    record = read_json(run_dir / "results.json") or {}
    value = record.get("best_val_acc")
    return float(value) if value is not None else float("nan")


class ForwardSignals:
    """While the ranks run: SIGINT or SIGTERM to this process reaches them as SIGTERM; a second Ctrl-C kills them."""

    def __init__(self):
        self.signum: int | None = None
        self.processes: list = []

    def __call__(self, signum: int, frame) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            for process in self.processes:
                if process.is_alive():
                    process.kill()
            raise KeyboardInterrupt
        if self.signum is None:
            self.signum = signum
            log.warning("%s received: the DDP ranks stop after their current batch", signal.Signals(signum).name)
        for process in self.processes:
            if process.is_alive():
                os.kill(process.pid, signal.SIGTERM)


def _record_failure(cfg: DictConfig, run_dir: Path, error: str) -> None:
    """Mark the run failed unless rank 0 already did (with its own, fuller, record)."""
    from dataclasses import replace

    from .run_record import base_record, write_results

    if (read_json(run_dir / "results.json") or {}).get("status") != "failed":
        write_results(run_dir, replace(base_record(cfg), status="failed", error=error))


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else text


def _run_rank(local_rank: int, config: dict[str, Any], env: dict[str, str], wandb_group: str, launcher: int) -> None:
    """One DDP process: Lightning finds its rank and peers in the environment (creates_processes_externally)."""
    _die_with(launcher)
    # the ranks' places come from `env`: inside a SLURM job of one task, Lightning would otherwise take
    # SLURM's task count (1) for the world size
    config["trainer"]["plugins"] = [*(config["trainer"].get("plugins") or []), {"_target_": LIGHTNING_ENVIRONMENT}]
    os.environ.update(env, LOCAL_RANK=str(local_rank))
    from pytorch_lightning.utilities import rank_zero_only

    rank_zero_only.rank = local_rank  # loggers ask before Lightning sets it
    _log_to_run_folder(Path(config["paths"]["output_dir"]), rank_zero_only.rank)

    from .run import run_in_this_process

    run_in_this_process(OmegaConf.create(config), wandb_group=wandb_group, started_rank=True)


def _die_with(launcher: int) -> None:
    """Linux kills this rank (SIGKILL) when the launching process dies, even of SIGKILL: the launcher holds
    the run folder's lock and the GPU slots, and releases them by dying; a rank going on would write
    checkpoints and results.json into a folder that another process may already own. Elsewhere the ranks
    only notice when their collectives fail."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return  # not Linux
    if os.getppid() != launcher:  # it died before the line above
        os.kill(os.getpid(), signal.SIGKILL)


def _log_to_run_folder(run_dir: Path, rank: int) -> None:
    """Spawned ranks have no Hydra logging: rank 0 appends to the run's train.log, every rank to stderr."""
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if rank == 0:
        handlers.append(logging.FileHandler(run_dir / "train.log"))
    fields = f"[%(asctime)s][%(name)s][%(levelname)s][rank {rank}] - %(message)s"
    logging.basicConfig(level=logging.INFO, format=fields, handlers=handlers)
