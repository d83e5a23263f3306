"""ar-experiments: Hydra sweeps of video action recognition models."""

from .config.resolvers import register_resolvers

register_resolvers()
