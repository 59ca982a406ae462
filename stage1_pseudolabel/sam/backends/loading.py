"""Building a model of a model type, seeded, and strictly loading its checkpoint: the path of every backend.

The file is read by :func:`stage1_pseudolabel.sam.checkpoint.read_state_dict` (``weights_only=True``;
a ``{"model": state_dict}`` wrapper, the SAM 2 release format, is unwrapped) and loaded with
``strict=True``, so a checkpoint of another variant never half-loads. Every failure is a
:class:`~stage1_pseudolabel.sam.checkpoint.CheckpointError` that names the file, the model type, what
the file looks like (:func:`describe_state_dict`), and the official file's name and where it is
published (the variant table, :mod:`~stage1_pseudolabel.sam.backends.variants`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Mapping, Optional, Union

import torch
from torch import nn

from stage1_pseudolabel.sam.backends.variants import VARIANTS, variant
from stage1_pseudolabel.sam.checkpoint import CheckpointError, PathLike, human_size, read_state_dict

#: a key only HQ-SAM's mask decoder has (its HQ output token)
_HQ_KEY = "mask_decoder.hf_token.weight"


def official_file(model_type: str) -> str:
    """`` The official <model type> file is <file> (<size>), from <where>; <how to get it>.``"""
    v = variant(model_type)
    size = f" ({human_size(v.checkpoint_bytes)})" if v.checkpoint_bytes else ""
    get = f" `make weights SAM_MODEL={model_type}` downloads it." if v.checkpoint_url else ""
    return f" The official {model_type} file is {v.checkpoint_file}{size}, from {v.release.published_at}.{get}"


def check_checkpoint_exists(path: PathLike, model_type: str) -> None:
    """Fail before building a large model when the checkpoint file is missing."""
    if not Path(path).is_file():
        raise CheckpointError(f"{variant(model_type).backend} checkpoint {path} does not exist.{official_file(model_type)}")


def _describe_vit(state: Mapping[str, torch.Tensor], patch: torch.Tensor) -> str:
    """A ViT image encoder's state dict: the variant of matching width, depth and input size, if any."""
    width = int(patch.shape[0])
    depth = len({m.group(1) for k in state if (m := re.match(r"image_encoder\.blocks\.(\d+)\.", k))})
    pos = state.get("image_encoder.pos_embed")
    image_size = int(pos.shape[1]) * int(patch.shape[-1]) if pos is not None and pos.dim() == 4 else None
    backend = "hq-sam" if _HQ_KEY in state else "sam1"
    for v in VARIANTS.values():
        arch = v.architecture
        if v.backend == backend and arch is not None and (width, depth) == (arch.encoder_embed_dim, arch.encoder_depth) \
                and image_size in (None, arch.image_size):
            return f"{v.name} (ViT width {width}, {depth} blocks)"
    size = f", input {image_size}px" if image_size else ""
    family = "HQ-SAM" if backend == "hq-sam" else "SAM"
    return f"a custom-size {family} ViT (width {width}, {depth} blocks{size}), not an official variant"


def describe_state_dict(state: Mapping[str, torch.Tensor]) -> str:
    """A short description of the model a state dict belongs to, from its keys and shapes.

    Examples: ``"vit_b (ViT width 768, 12 blocks)"``, ``"hq_vit_l (ViT width 1024, 24 blocks)"``,
    ``"vit_t (MobileSAM TinyViT encoder)"``, ``"a mask-decoder-only checkpoint (no image encoder), ..."``.
    """
    keys = list(state)
    patch = state.get("image_encoder.patch_embed.proj.weight")
    if patch is not None and hasattr(patch, "shape"):
        return _describe_vit(state, patch)
    if any(k.startswith("image_encoder.trunk.") for k in keys):
        return "a SAM 2 model (Hiera image encoder)"
    if any(k.startswith(("image_encoder.layers.", "image_encoder.patch_embed.seq")) for k in keys):
        return "hq_vit_tiny (Light HQ-SAM: TinyViT encoder)" if _HQ_KEY in state else "vit_t (MobileSAM TinyViT encoder)"
    if any(k.startswith("image_encoder.") for k in keys):
        return "a SAM-architecture model with a non-ViT image encoder (e.g. the project's proxy SAM)"
    if any(k.startswith(("mask_decoder.", "transformer.")) for k in keys):
        return "a mask-decoder-only checkpoint (no image encoder), e.g. one written by stage-1 training"
    return f"not a SAM state dict (first keys: {', '.join(keys[:3]) or 'none'})"


def load_strict(model: nn.Module, path: PathLike, *, model_type: str,
                map_location: Union[str, torch.device] = "cpu", mmap: bool = False) -> None:
    """Load ``path`` into ``model`` (freshly built for ``model_type``) with ``strict=True``.

    ``mmap``: map the file and assign its tensors to the model instead of copying them (a model built
    on the ``meta`` device takes its weights this way; parts never used are never read).

    Raises:
        CheckpointError: a missing, unreadable or foreign file, or one of another variant.
    """
    check_checkpoint_exists(path, model_type)
    try:
        state = read_state_dict(path, map_location=map_location, mmap=mmap)
    except CheckpointError as exc:
        raise CheckpointError(f"{exc}{official_file(model_type)}") from None
    try:
        model.load_state_dict(state, strict=True, assign=mmap)
    except RuntimeError as exc:
        first = [line.strip() for line in str(exc).splitlines() if line.strip()][1:3]
        raise CheckpointError(
            f"checkpoint {path} does not fit model type {model_type!r}: it looks like {describe_state_dict(state)}. "
            f"Pass --model-type matching the file (or the file matching the model type).{official_file(model_type)} "
            f"[details: {' '.join(first)[:300]}]"
        ) from None


def build_strict(build: Callable[[], nn.Module], *, model_type: str, checkpoint: Optional[PathLike],
                 seed: Optional[int], mmap: bool = False) -> nn.Module:
    """``build()`` seeded, then ``checkpoint`` strictly loaded into it (None: random weights), eval mode.

    A missing checkpoint fails before the (possibly large) model is built. ``seed`` seeds the random
    initialisation; the global RNG state is restored afterwards. ``mmap``: :func:`load_strict`.
    """
    if checkpoint is not None:
        check_checkpoint_exists(checkpoint, model_type)
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        model = build()
    if checkpoint is not None:
        load_strict(model, checkpoint, model_type=model_type, mmap=mmap)
    return model.eval()
