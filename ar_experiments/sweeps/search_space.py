"""Conditional parameters for the Optuna search (hydra.sweeper.custom_search_space).

Hydra's sweeper params form a flat search space; some parameters exist for one
choice only (momentum for SGD). `conditional_params` in the config maps a chosen
parameter and its value to the parameters sampled only then, in the sweeper's
own syntax:

    conditional_params:
      optimizer:
        sgd:
          optimizer.momentum: interval(0.8, 0.99)
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf


def suggest_conditional_params(cfg: DictConfig, trial: Any) -> None:
    """Sample the parameters that belong to the values this trial chose."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra_plugins.hydra_optuna_sweeper._impl import create_optuna_distribution_from_override

    parser = OverridesParser.create()
    for choice_key, branches in (cfg.get("conditional_params") or {}).items():
        chosen = _chosen(cfg, trial, choice_key)
        for name, expression in (branches.get(chosen) or {}).items():
            override = parser.parse_override(f"{name}={expression}")
            trial._suggest(name, create_optuna_distribution_from_override(override))


def _chosen(cfg: DictConfig, trial: Any, key: str) -> str:
    """The trial's value of `key`: sampled, fixed on the command line, or the config's default choice."""
    if key in trial.params:
        return str(trial.params[key])
    if key in trial.user_attrs:  # the sweeper stores fixed values (e.g. optimizer=sgd) as user attributes
        return str(trial.user_attrs[key])
    default = OmegaConf.select(cfg, f"hydra.runtime.choices.{key}", default=None)
    return str(default if default is not None else OmegaConf.select(cfg, key, default=""))
