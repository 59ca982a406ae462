"""Registers stage 2's additions in mmseg's registries (the configs' ``custom_imports`` name this)."""

from . import datasets, metrics, models  # noqa: F401

__all__ = ["datasets", "metrics", "models"]
