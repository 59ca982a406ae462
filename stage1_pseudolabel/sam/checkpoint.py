"""Reading checkpoint files safely, and fingerprints of checkpoints and weights.

* Files are read with ``torch.load(map_location=..., weights_only=True)``: no pickled code runs.
* A missing file, a truncated / non-PyTorch file, and a file that holds no state dict each raise
  :class:`CheckpointError`. Which model type a file is meant for, and where the official file is,
  are added by the strict loader of the backends
  (:func:`stage1_pseudolabel.sam.backends.loading.load_strict`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Dict, Mapping, Union

import torch

from wsss.core.cli import UserError

PathLike = Union[str, Path]


class CheckpointError(UserError, RuntimeError):
    """A checkpoint that cannot be used: missing, truncated, not a SAM state dict, or another variant."""


def _unwrap(obj) -> Dict[str, torch.Tensor]:
    if isinstance(obj, Mapping):
        for key in ("model", "state_dict"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
                return dict(inner)
        if all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
    raise CheckpointError("the file holds no state dict (a mapping of parameter names to tensors)")


def read_state_dict(path: PathLike, *, map_location: Union[str, torch.device] = "cpu",
                    mmap: bool = False) -> Dict[str, torch.Tensor]:
    """Read a state dict with ``weights_only=True``; errors are :class:`CheckpointError`.

    A dict with a ``"model"`` or ``"state_dict"`` entry holding the tensors is unwrapped. With
    ``mmap`` the tensors are mapped from the file, read from disk only where they are used.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist.")
    size = path.stat().st_size
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as exc:  # zip / unpickling errors of a truncated or foreign file
        raise CheckpointError(
            f"cannot read checkpoint {path} ({human_size(size)}): it is truncated, corrupt or not a PyTorch "
            f"weights file ({type(exc).__name__}: {str(exc).split('. ')[0][:200]}). Download it again."
        ) from exc
    try:
        return _unwrap(obj)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}.") from None


def checkpoint_fingerprint(path: PathLike, *, chunk: int = 4 << 20) -> str:
    """A cheap, stable fingerprint of a checkpoint file: size + SHA-256 of its first and last 4 MiB.

    Used to tag embedding caches; reading a 2.5 GB file in full for every run would cost seconds.
    """
    path = Path(path)
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        h.update(f.read(chunk))
        if size > chunk:
            f.seek(max(chunk, size - chunk))
            h.update(f.read(chunk))
    return f"file:{size}:{h.hexdigest()[:16]}"


def state_fingerprint(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over the names, shapes and values of a state dict (the weights of a random-weight model)."""
    h = hashlib.sha256()
    for name, t in state.items():
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return f"weights:{h.hexdigest()[:16]}"


def human_size(n: float) -> str:
    """``375042383`` -> ``"357.7 MiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


__all__ = [
    "CheckpointError",
    "PathLike",
    "checkpoint_fingerprint",
    "human_size",
    "read_state_dict",
    "state_fingerprint",
]
