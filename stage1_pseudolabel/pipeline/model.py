"""The stage-1 model as the pipeline uses it: the configured backend, its cache key, decoder checkpoints.

The model is a :class:`~stage1_pseudolabel.sam.backends.base.SamBackend` (SAM 1, SAM 2.1 or HQ-SAM,
:mod:`stage1_pseudolabel.sam.backends`) with ``.image_encoder``, ``.prompt_encoder`` and
``.mask_decoder``. Only the mask decoder is ever trained. :func:`freeze_for_decoder_training` turns
every other parameter off (``requires_grad=False``, eval mode) and, with ``train_heads="single"``,
also the decoder parts that the single-mask output never uses (the backend says which), so that
every trainable parameter receives a gradient (DDP needs no unused-parameter scan).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from stage1_pseudolabel.pipeline.cache import CacheKey, atomic_torch_save
from stage1_pseudolabel.pipeline.config_sections import ModelSection
from stage1_pseudolabel.sam.backends.base import EMBED, SamBackend
from stage1_pseudolabel.sam.backends.build import build_backend
from stage1_pseudolabel.sam.checkpoint import CheckpointError
from stage1_pseudolabel.sam.lora import add_lora, has_lora, lora_layers, lora_state_dict
from stage1_pseudolabel.sam.precision import set_tf32

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> ``cuda`` when available, else ``cpu``; under torchrun ``cuda`` means this rank's GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return device


def load_model(model_cfg: ModelSection, *, device: torch.device, encoder: bool = True) -> Tuple[SamBackend, CacheKey]:
    """Build SAM as the config's ``model`` section says (strict checkpoint load) and the key of its
    embeddings; sets the process's TF32 mode to ``model_cfg.tf32``. ``encoder=False``: without the image encoder
    (``model.image_encoder`` is None), whose weights SAM 1 then does not even read.

    Raises:
        CheckpointError: missing / truncated / wrong-variant checkpoint (the message says which).
    """
    ckpt = model_cfg.checkpoint_path
    if ckpt is None:
        log.warning("no SAM checkpoint: using RANDOM weights (model.seed=%d); only for tests and benchmarks",
                    model_cfg.seed)
    model = build_backend(model_cfg.type, checkpoint=ckpt, seed=model_cfg.seed, device="cpu", encoder=encoder,
                          **model_cfg.kwargs)
    key = cache_key(model, ckpt)
    if not encoder:
        model.image_encoder = None
    model.set_speed_options(attention=model_cfg.attention, compile_encoder=model_cfg.compile_encoder)
    set_tf32(model_cfg.tf32)
    return model.to(device).eval(), key


def cache_key(model: SamBackend, checkpoint: Optional[Path]) -> CacheKey:
    """What the backend's cached features depend on: backend, variant, weights, input size, geometry, shapes."""
    shapes = model.feature_shapes()
    return CacheKey(
        model_type=model.model_type,
        encoder_fingerprint=model.encoder_fingerprint(checkpoint),
        encoder_size=model.encoder_size,
        embedding_shape=tuple(shapes[EMBED]),
        backend=model.backend,
        geometry=model.geometry,
        extra_shapes=tuple((k, tuple(v)) for k, v in shapes.items() if k != EMBED),
    )


def freeze_for_decoder_training(model: nn.Module, *, train_heads: str = "single", lora_rank: int = 0,
                                lora_alpha: float = 16.0) -> List[nn.Parameter]:
    """Freeze everything but the mask decoder; returns the trainable parameters.

    The image and prompt encoders get ``requires_grad=False`` and stay in eval mode; which decoder
    parameters train is the backend's :meth:`~stage1_pseudolabel.sam.backends.base.SamBackend.trainable_parameters`.
    With ``lora_rank > 0`` only LoRA adapters on the decoder's attention projections train
    (:mod:`stage1_pseudolabel.sam.lora`).
    """
    if lora_rank > 0:
        params = add_lora(model.mask_decoder, rank=lora_rank, alpha=lora_alpha)
        for p in model.parameters():
            p.requires_grad_(False)
        for p in params:
            p.requires_grad_(True)
        model.eval()
        model.mask_decoder.train()
        return params
    return model.trainable_parameters(train_heads=train_heads)


def save_decoder(
    path: Path,
    *,
    model: nn.Module,
    key: CacheKey,
    extra: Optional[Dict[str, Any]] = None,
) -> None:
    """Write the mask decoder's state dict and what it was trained on (atomic). With LoRA adapters,
    only the adapters are written (``meta["adapter"]`` says which rank and scale)."""
    decoder = model.mask_decoder
    state = lora_state_dict(decoder) if has_lora(decoder) else decoder.state_dict()
    meta = dict(key.as_dict(), **(extra or {}))
    if has_lora(decoder):
        layer = next(iter(lora_layers(decoder).values()))
        meta["adapter"] = {"type": "lora", "rank": int(layer.lora_A.shape[0]),
                           "alpha": float(layer.lora_scale * layer.lora_A.shape[0])}
    obj = {"mask_decoder": {k: v.detach().cpu() for k, v in state.items()}, "meta": meta}
    atomic_torch_save(obj, path)


def load_decoder(path: Path, *, model: nn.Module, key: CacheKey) -> Dict[str, Any]:
    """Strictly load a fine-tuned mask decoder into ``model``; returns its metadata.

    Raises:
        CheckpointError: missing file, or a decoder trained on another model's embeddings.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"fine-tuned decoder {path} does not exist: run the train step first (or pass --zero-shot)")
    obj = torch.load(path, map_location="cpu", weights_only=True)
    meta = dict(obj.get("meta", {}))
    expected = key.as_dict()
    adapter = meta.pop("adapter", None)
    mismatch = {k: (meta.get(k), v) for k, v in expected.items() if meta.get(k) != v}
    if mismatch:
        raise CheckpointError(f"decoder {path} was trained on embeddings of another model: {mismatch} (found, expected)")
    if adapter is not None:  # the official decoder plus the trained LoRA adapters, nothing else
        add_lora(model.mask_decoder, rank=adapter["rank"], alpha=adapter["alpha"])
        expected_keys = set(lora_state_dict(model.mask_decoder))
        if set(obj["mask_decoder"]) != expected_keys:
            raise CheckpointError(f"decoder {path}: its LoRA adapters do not fit this decoder's attention projections")
        model.mask_decoder.load_state_dict(obj["mask_decoder"], strict=False)
    else:
        model.mask_decoder.load_state_dict(obj["mask_decoder"], strict=True)
    model.mark_fine_tuned()
    return meta
