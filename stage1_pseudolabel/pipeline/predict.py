"""From a cached embedding and a prepared image to object logits, class distributions and a mask."""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

from wsss.core.crf import CRFParams, dense_crf
from stage1_pseudolabel.pipeline.prepare import PreparedImage
from stage1_pseudolabel.sam.class_distribution import channel_labels, log_class_distribution
from stage1_pseudolabel.sam.decoder import decode_objects, dense_positional_encoding, encode_prompts
from wsss.core.weak_labels.classes import IGNORE_INDEX


class DecoderRunner:
    """Runs SAM's prompt encoder and mask decoder for all objects of an image in one call.

    Args:
        model: a SAM-like module (``.prompt_encoder``, ``.mask_decoder``).
        device: where the decoder runs.
        multimask_output: see :func:`stage1_pseudolabel.sam.decoder.decode_objects`.
    """

    def __init__(self, model: nn.Module, *, device: torch.device, multimask_output: bool = False) -> None:
        self.model = model
        self.device = device
        self.multimask_output = multimask_output
        self.dense_pe = dense_positional_encoding(model.prompt_encoder).to(device)

    def object_logits(
        self,
        prepared: PreparedImage,
        embedding: torch.Tensor,
        *,
        mask_decoder: Optional[Callable] = None,
    ) -> torch.Tensor:
        """``float [N, L, L]`` low-res mask logits of every object.

        Args:
            prepared: the image's objects and prompts.
            embedding: ``[1, 256, h, w]`` its image embedding, on the runner's device.
            mask_decoder: the module to call (e.g. a DDP wrapper); default the model's own.
        """
        boxes, coords, labels = prepared.prompts.to_tensors(self.device)
        sparse, dense = encode_prompts(self.model.prompt_encoder, boxes=boxes, point_coords=coords, point_labels=labels)
        if boxes is None and coords is None:  # no object: no prompt
            sparse = sparse[:0]
            dense = dense[:0]
        logits, _ = decode_objects(
            mask_decoder=mask_decoder or self.model.mask_decoder,
            image_embedding=embedding,
            dense_pe=self.dense_pe,
            sparse_embeddings=sparse,
            dense_embeddings=dense,
            multimask_output=self.multimask_output,
        )
        return logits


def lowres_log_distribution(prepared: PreparedImage, logits: torch.Tensor) -> torch.Tensor:
    """``[1 + K, L, L]`` log class distribution in the low-res frame (what the loss reads)."""
    return log_class_distribution(logits, prepared.channels.to(logits.device), num_channels=prepared.num_channels)


def pixel_log_distribution(prepared: PreparedImage, logits: torch.Tensor) -> torch.Tensor:
    """``[1 + K, H, W]`` log class distribution in pixel space (what the pseudo-mask is read from).

    Object logits (``float [N, L, L]``, N >= 1) are upsampled to the image as SAM's
    ``postprocess_masks`` does (:meth:`~wsss.core.frames.SamFrame.lowres_to_pixels`), then
    turned into the class distribution there.
    """
    pix = prepared.frame.lowres_to_pixels(logits)  # [N, H, W]
    return log_class_distribution(pix, prepared.channels.to(pix.device), num_channels=prepared.num_channels)


def mask_from_distribution(
    log_probs: torch.Tensor,
    classes: torch.Tensor,
    *,
    confidence_threshold: float = 0.0,
    crf: Optional[CRFParams] = None,
    image: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Argmax of a ``[1 + K, H, W]`` log class distribution as a ``uint8 [H, W]`` mask of class indices.

    With ``crf``, a dense CRF on ``image`` (``uint8 [H, W, 3]``) refines the distribution first (on the
    CPU; it only sees the image's own classes, so its cost does not grow with the label set). With
    ``confidence_threshold > 0``, pixels whose top probability is below it become 255.
    """
    if crf is not None:
        if image is None:
            raise ValueError("pseudo_mask: the dense CRF needs the image")
        probs = dense_crf(image, log_probs.exp().float().cpu().numpy(), crf)
        log_probs = torch.from_numpy(probs).clamp_min(1e-12).log()
    top, arg = log_probs.max(dim=0)
    labels = channel_labels(classes).to(arg.device)[arg]
    if confidence_threshold > 0:
        labels = torch.where(top.exp() < confidence_threshold, torch.full_like(labels, IGNORE_INDEX), labels)
    return labels.to(torch.uint8).cpu().numpy()


@torch.no_grad()
def pseudo_mask(
    prepared: PreparedImage,
    logits: torch.Tensor,
    *,
    confidence_threshold: float = 0.0,
    crf: Optional[CRFParams] = None,
    image: Optional[np.ndarray] = None,
) -> np.ndarray:
    """The pseudo-mask of an image: :func:`mask_from_distribution` of :func:`pixel_log_distribution`.

    Args:
        prepared: the image's objects and frame.
        logits: ``float [N, L, L]`` low-res object logits.
        confidence_threshold: see below.
        crf: dense-CRF parameters, or None for none.
        image: ``uint8 [H, W, 3]`` RGB image (required with ``crf``).

    Returns:
        ``uint8 [H, W]``: 0 background, class indices, 255 where the top probability is below
        ``confidence_threshold`` (when > 0).
    """
    if logits.shape[0] == 0:
        return np.zeros((prepared.frame.height, prepared.frame.width), np.uint8)
    return mask_from_distribution(pixel_log_distribution(prepared, logits), prepared.classes,
                                  confidence_threshold=confidence_threshold, crf=crf, image=image)
