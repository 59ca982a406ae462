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
from stage1_pseudolabel.sam.checkpoint import CheckpointError, read_state_dict

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
    """Load ``path`` into ``model`` with ``strict=True``; errors say what the file looks like."""
    check_checkpoint_exists(path, model_type)
    try:
        state = read_state_dict(path)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc}{_where(model_type)}") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = [line.strip() for line in str(exc).splitlines() if line.strip()][1:3]
        raise CheckpointError(
            f"checkpoint {path} does not fit model type {model_type!r} ({variant(model_type).backend}, "
            f"{len(state)} tensors in the file, first keys {', '.join(list(state)[:2])}). Pass the model type "
            f"matching the file.{_where(model_type)} [details: {' '.join(first)[:300]}]"
        ) from None
