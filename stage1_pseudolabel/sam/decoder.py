"""One batched SAM mask-decoder call for all objects of an image, from a cached image embedding.

The prompt encoder is frozen and has no input that needs a gradient, so it runs under ``no_grad``;
the mask decoder runs with autograd on when it is being trained. ``mask_decoder`` may be a
``DistributedDataParallel`` wrapper around SAM's ``MaskDecoder``: it is only called.
"""

from __future__ import annotations

from typing import Callable, Optional, Tuple

import torch
from torch import nn


def dense_positional_encoding(prompt_encoder: nn.Module) -> torch.Tensor:
    """SAM's dense positional encoding of the embedding grid: ``[1, 256, h, w]`` (compute once, reuse)."""
    with torch.no_grad():
        return prompt_encoder.get_dense_pe()


def encode_prompts(
    prompt_encoder: nn.Module,
    *,
    boxes: Optional[torch.Tensor],
    point_coords: Optional[torch.Tensor],
    point_labels: Optional[torch.Tensor],
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Sparse ``[N, T, 256]`` and dense ``[N, 256, h, w]`` prompt embeddings (no gradient).

    Args:
        boxes: ``float [N, 4]`` in the SAM input frame, or None.
        point_coords: ``float [N, P, 2]`` in the SAM input frame, or None.
        point_labels: ``float [N, P]`` (1 / 0 / -1 padding), or None.
    """
    points = None if point_coords is None else (point_coords, point_labels)
    with torch.no_grad():
        return prompt_encoder(points=points, boxes=boxes, masks=None)


def decode_objects(
    *,
    mask_decoder: Callable[..., Tuple[torch.Tensor, torch.Tensor]],
    image_embedding: torch.Tensor,
    dense_pe: torch.Tensor,
    sparse_embeddings: torch.Tensor,
    dense_embeddings: torch.Tensor,
    multimask_output: bool = False,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Low-res mask logits of every object of one image in one decoder call.

    Args:
        mask_decoder: SAM's ``MaskDecoder`` (or a DDP wrapper of it).
        image_embedding: ``float [1, 256, h, w]`` the image's cached embedding.
        dense_pe: ``[1, 256, h, w]`` from :func:`dense_positional_encoding`.
        sparse_embeddings, dense_embeddings: from :func:`encode_prompts` (``N`` objects).
        multimask_output: use SAM's three multimask outputs and keep, per object, the one with the
            highest predicted IoU (the selection itself carries no gradient); otherwise the single
            mask output.

    Returns:
        ``float [N, 4h, 4w]`` mask logits (256x256 for SAM) and ``float [N]`` predicted IoU.
    """
    n = sparse_embeddings.shape[0]
    if n == 0:
        h, w = image_embedding.shape[-2:]
        empty = image_embedding.new_zeros((0, 4 * h, 4 * w))
        return empty, image_embedding.new_zeros((0,))
    masks, iou = mask_decoder(
        image_embeddings=image_embedding,
        image_pe=dense_pe,
        sparse_prompt_embeddings=sparse_embeddings,
        dense_prompt_embeddings=dense_embeddings,
        multimask_output=multimask_output,
    )
    if multimask_output:
        best = iou.argmax(dim=1)
        idx = torch.arange(n, device=masks.device)
        return masks[idx, best], iou[idx, best]
    return masks[:, 0], iou[:, 0]
