"""OmegaConf resolvers the configs use; registered when the package is imported."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf


def project_root() -> str:
    """The repository folder (the one holding conf/), else the current folder."""
    here = Path(__file__).resolve().parent.parent
    return str(here if (here / "conf").is_dir() else Path.cwd())


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("ar.project_root"):
        OmegaConf.register_new_resolver("ar.project_root", project_root)
