"""The stage-1 model as the pipeline uses it: SAM from the config, its cache key, decoder checkpoints.

Only the mask decoder is ever trained. :func:`freeze_for_decoder_training` turns every other
parameter off (``requires_grad=False``, eval mode) and, with ``train_heads="single"``, also the
decoder parts that the single-mask output never uses (the three multimask hyper-network MLPs and the
IoU head), so that every trainable parameter receives a gradient (DDP needs no unused-parameter scan).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from stage1_pseudolabel.pipeline.cache import CacheKey, atomic_torch_save
from stage1_pseudolabel.pipeline.config import Stage1Config
from stage1_pseudolabel.sam.checkpoint import CheckpointError, encoder_fingerprint
from stage1_pseudolabel.sam.registry import build_sam, encoder_input_size

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> ``cuda`` when available, else ``cpu``; under torchrun ``cuda`` means this rank's GPU."""
    import os

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return device


def load_model(cfg: Stage1Config, *, device: torch.device) -> Tuple[nn.Module, CacheKey]:
    """Build SAM as configured (strict checkpoint load) and the key of its embeddings.

    Raises:
        CheckpointError: missing / truncated / wrong-variant checkpoint (the message says which).
    """
    ckpt = cfg.checkpoint_path
    if ckpt is None:
        log.warning("no SAM checkpoint: using RANDOM weights (model_seed=%d); only for tests and benchmarks", cfg.model_seed)
    model = build_sam(cfg.model_type, checkpoint=ckpt, seed=cfg.model_seed, device="cpu", **cfg.model_kwargs)
    key = CacheKey(
        model_type=cfg.model_type,
        encoder_fingerprint=encoder_fingerprint(model, ckpt),
        encoder_size=encoder_input_size(model),
        embedding_shape=(
            int(model.prompt_encoder.embed_dim),
            int(model.prompt_encoder.image_embedding_size[0]),
            int(model.prompt_encoder.image_embedding_size[1]),
        ),
    )
    return model.to(device).eval(), key


def freeze_for_decoder_training(model: nn.Module, *, train_heads: str = "single") -> List[nn.Parameter]:
    """Freeze everything but the mask decoder; returns the trainable parameters.

    The image and prompt encoders get ``requires_grad=False`` and stay in eval mode.
    """
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    decoder = model.mask_decoder
    for p in decoder.parameters():
        p.requires_grad_(True)
    if train_heads == "single":
        for mlp in list(decoder.output_hypernetworks_mlps)[1:]:
            for p in mlp.parameters():
                p.requires_grad_(False)
        for p in decoder.iou_prediction_head.parameters():
            p.requires_grad_(False)
    decoder.train()
    return [p for p in decoder.parameters() if p.requires_grad]


def save_decoder(
    path: Path,
    *,
    model: nn.Module,
    key: CacheKey,
    extra: Optional[Dict[str, Any]] = None,
) -> None:
    """Write the mask decoder's state dict and what it was trained on (atomic)."""
    obj = {
        "mask_decoder": {k: v.detach().cpu() for k, v in model.mask_decoder.state_dict().items()},
        "meta": dict(key.as_dict(), **(extra or {})),
    }
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
    mismatch = {k: (meta.get(k), v) for k, v in expected.items() if meta.get(k) != v}
    if mismatch:
        raise CheckpointError(f"decoder {path} was trained on embeddings of another model: {mismatch} (found, expected)")
    model.mask_decoder.load_state_dict(obj["mask_decoder"], strict=True)
    return meta
