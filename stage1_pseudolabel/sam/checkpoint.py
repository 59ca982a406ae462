"""Reading SAM checkpoints safely and strictly, with errors that say what went wrong.

* Files are read with ``torch.load(map_location=..., weights_only=True)``: no pickled code runs.
* The state dict is loaded with ``strict=True``: a checkpoint of another variant never half-loads.
* A missing file, a truncated / non-PyTorch file, and a checkpoint of another variant each raise
  :class:`CheckpointError`, whose message says which variant the file looks like (inferred from the
  state-dict shapes: ViT width 1280 / 1024 / 768 and depth 32 / 24 / 12 for vit_h / vit_l / vit_b;
  TinyViT keys for MobileSAM) and where the official checkpoints are published.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Callable, Dict, Mapping, Optional, Union

import torch
from torch import nn

from stage1_pseudolabel.sam.registry import OFFICIAL_CHECKPOINTS_URL, SAM_VARIANTS
from wsss.core.cli import UserError

PathLike = Union[str, Path]

_WHERE = (
    f"Official SAM checkpoints are published at {OFFICIAL_CHECKPOINTS_URL} "
    "(`make weights SAM_MODEL=vit_b` downloads one where there is internet)."
)


class CheckpointError(UserError, RuntimeError):
    """A checkpoint that cannot be used: missing, truncated, not a SAM state dict, or another variant."""


def missing_checkpoint_error(path: Path, model_type: str) -> CheckpointError:
    hint = ""
    if model_type in SAM_VARIANTS:
        hint = f" The official {model_type} file is named {SAM_VARIANTS[model_type].checkpoint_file}."
    return CheckpointError(f"SAM checkpoint {path} does not exist.{hint} {_WHERE}")


def describe_state_dict(state_dict: Mapping[str, torch.Tensor]) -> str:
    """A short description of the SAM variant a state dict belongs to, from its shapes and keys.

    Examples: ``"vit_b (ViT width 768, 12 blocks)"``, ``"vit_t (MobileSAM TinyViT encoder)"``,
    ``"a mask-decoder-only checkpoint (no image encoder)"``.
    """
    keys = list(state_dict.keys())
    patch = state_dict.get("image_encoder.patch_embed.proj.weight")
    if patch is not None and hasattr(patch, "shape"):
        width = int(patch.shape[0])
        blocks = {int(m.group(1)) for k in keys if (m := re.match(r"image_encoder\.blocks\.(\d+)\.", k))}
        depth = len(blocks)
        image_size = None
        pos = state_dict.get("image_encoder.pos_embed")
        if pos is not None and hasattr(pos, "shape") and pos.dim() == 4:
            image_size = int(pos.shape[1]) * int(patch.shape[-1])
        for name, variant in SAM_VARIANTS.items():
            arch = variant.architecture
            if width == arch.encoder_embed_dim and depth == arch.encoder_depth and image_size in (None, arch.image_size):
                return f"{name} (ViT width {width}, {depth} blocks)"
        size = f", input {image_size}px" if image_size else ""
        return f"a custom-size SAM ViT (width {width}, {depth} blocks{size}), not an official variant"
    if any(k.startswith("image_encoder.layers.") for k in keys) or any(k.startswith("image_encoder.patch_embed.seq") for k in keys):
        return "vit_t (MobileSAM TinyViT encoder)"
    if any(k.startswith("image_encoder.") for k in keys):
        return "a SAM-architecture model with a non-ViT image encoder (e.g. the project's proxy SAM)"
    if any(k.startswith("mask_decoder.") or k.startswith("transformer.") for k in keys) and not any(
        k.startswith("image_encoder.") for k in keys
    ):
        return "a mask-decoder-only checkpoint (no image encoder), e.g. one written by stage-1 training"
    return f"not a SAM state dict (first keys: {', '.join(keys[:3]) or 'none'})"


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
        raise CheckpointError(f"SAM checkpoint {path} does not exist. {_WHERE}")
    size = path.stat().st_size
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as exc:  # zip / unpickling errors of a truncated or foreign file
        expected = ", ".join(f"{n} {_human(e)}" for n, e in _OFFICIAL_SIZES.items())
        raise CheckpointError(
            f"cannot read SAM checkpoint {path} ({_human(size)}): it is truncated, corrupt or not a PyTorch "
            f"weights file ({type(exc).__name__}: {str(exc).split('. ')[0][:200]}). Official files "
            f"are about: {expected}. Download it again. {_WHERE}"
        ) from exc
    try:
        return _unwrap(obj)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}. {_WHERE}") from None


def load_sam_checkpoint(
    model: nn.Module,
    path: PathLike,
    *,
    model_type: str,
    map_location: Union[str, torch.device] = "cpu",
    describe: Callable[[Mapping[str, torch.Tensor]], str] = describe_state_dict,
    where: str = _WHERE,
    mmap: bool = False,
) -> None:
    """Strictly load ``path`` into ``model``; every failure raises :class:`CheckpointError`.

    The one strict loader of every backend (SAM 1 here, SAM 2.1 and HQ-SAM through
    :func:`stage1_pseudolabel.sam.backends.loading.load_strict`).

    Args:
        model: the freshly built model of ``model_type``.
        path: the checkpoint file.
        model_type: the variant the caller asked for (used in the error message).
        map_location: where tensors are loaded.
        describe: what a state dict that does not fit looks like (SAM 1's variants by default).
        where: where the official files are published (appended to errors).
        mmap: map the file and assign its tensors to the model instead of copying them (a model
            built on the ``meta`` device takes its weights this way; parts never used are never read).
    """
    try:
        state_dict = read_state_dict(path, map_location=map_location, mmap=mmap)
    except CheckpointError as exc:
        if where == _WHERE:
            raise
        raise CheckpointError(f"{exc}{where}") from None
    try:
        model.load_state_dict(state_dict, strict=True, assign=mmap)
    except RuntimeError as exc:
        looks_like = describe(state_dict)
        first = [line.strip() for line in str(exc).splitlines() if line.strip()][1:3]
        raise CheckpointError(
            f"checkpoint {path} does not fit model type {model_type!r}: it looks like {looks_like}. "
            f"Pass --model-type matching the file (or the file matching the model type). {where} "
            f"[details: {' '.join(first)[:300]}]"
        ) from None


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


def module_fingerprint(module: nn.Module) -> str:
    """SHA-256 over the names, shapes and values of a module's state dict (random-weight models)."""
    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return f"weights:{h.hexdigest()[:16]}"


def encoder_fingerprint(model: nn.Module, checkpoint: Optional[PathLike]) -> str:
    """Fingerprint of the weights that produce the image embeddings (checkpoint file, else weights)."""
    if checkpoint is not None:
        return checkpoint_fingerprint(checkpoint)
    return module_fingerprint(model.image_encoder)


_OFFICIAL_SIZES = {"vit_h": 2_564_550_879, "vit_l": 1_249_524_607, "vit_b": 375_042_383}


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


__all__ = [
    "CheckpointError",
    "checkpoint_fingerprint",
    "describe_state_dict",
    "encoder_fingerprint",
    "load_sam_checkpoint",
    "missing_checkpoint_error",
    "module_fingerprint",
    "read_state_dict",
]
