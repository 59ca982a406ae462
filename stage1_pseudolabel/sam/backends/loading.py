"""Strict, ``weights_only`` checkpoint loading for the SAM 2.1 and HQ-SAM backends.

The file is read by :func:`stage1_pseudolabel.sam.checkpoint.read_state_dict` (``weights_only=True``;
a ``{"model": state_dict}`` wrapper, the SAM 2 release format, is unwrapped) and loaded with
``strict=True``; every failure is a :class:`~stage1_pseudolabel.sam.checkpoint.CheckpointError` that
names the file, the model type, the official file name and where it is published.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

from torch import nn

from stage1_pseudolabel.sam.backends.variants import variant
from stage1_pseudolabel.sam.checkpoint import CheckpointError, load_sam_checkpoint

PathLike = Union[str, Path]


def _where(model_type: str) -> str:
    v = variant(model_type)
    if v.checkpoint_file is None:
        return ""
    return f" The official {model_type} file is {v.checkpoint_file} ({v.checkpoint_url})."


def check_checkpoint_exists(path: PathLike, model_type: str) -> None:
    """Fail before building a large model when the checkpoint file is missing."""
    if not Path(path).is_file():
        raise CheckpointError(f"{variant(model_type).backend} checkpoint {path} does not exist.{_where(model_type)}")


def load_strict(model: nn.Module, path: PathLike, *, model_type: str) -> None:
    """Load ``path`` into ``model`` with ``strict=True`` (:func:`load_sam_checkpoint`, the one strict
    loader); errors say what the file looks like and where the official file is."""
    check_checkpoint_exists(path, model_type)

    def describe(state) -> str:
        return f"another model ({len(state)} tensors, first keys {', '.join(list(state)[:2])}), not {variant(model_type).backend}"

    load_sam_checkpoint(model, path, model_type=model_type, describe=describe, where=_where(model_type))
