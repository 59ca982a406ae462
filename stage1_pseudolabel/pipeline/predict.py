"""From a cached embedding and a prepared image to object logits, class distributions and a mask."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from wsss.core.crf import CRFParams, dense_crf
from stage1_pseudolabel.pipeline.prepare import PreparedImage
from stage1_pseudolabel.sam.backends.base import as_features
from stage1_pseudolabel.sam.class_distribution import channel_labels, log_class_distribution, log_object_distribution
from stage1_pseudolabel.sam.precision import autocast
from wsss.core.weak_labels.classes import IGNORE_INDEX


class DecoderRunner:
    """Runs the backend's prompt encoder and mask decoder for all objects of an image in one call
    (:meth:`object_logits`), or for the objects of several images together (:meth:`batch_object_logits`).

    Args:
        model: a :class:`~stage1_pseudolabel.sam.backends.base.SamBackend`.
        device: where the decoder runs.
        multimask_output: see :meth:`~stage1_pseudolabel.sam.backends.base.SamBackend.decode`.
        precision: ``fp32`` | ``bf16`` | ``fp16``: autocast of the decoder call; the logits come back
            as fp32 (the loss and the masks are computed in fp32).
    """

    def __init__(self, model: nn.Module, *, device: torch.device, multimask_output: bool = False,
                 precision: str = "fp32") -> None:
        self.model = model
        self.device = device
        self.multimask_output = multimask_output
        self.precision = precision
        self.dense_pe = model.dense_pe().to(device)

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
            embedding: ``[1, 256, h, w]`` its image embedding (or the backend's
                :class:`~stage1_pseudolabel.sam.backends.base.ImageFeatures`), on the runner's device.
            mask_decoder: the module to call (e.g. a DDP wrapper); default the model's own.
        """
        # One call per kind of prompt: boxed, point-prompted, prompt-less (SAM's prompt encoder takes
        # boxes, and points, for all objects of a call or for none).
        parts = [(idx, self._call(self._prompt_embeddings(tensors, n), embedding, mask_decoder))
                 for idx, n, tensors in prepared.prompt_tensors(self.device)]
        return _in_object_order(prepared.prompts.num_objects, parts)

    def batch_object_logits(
        self,
        prepared_list: Sequence[PreparedImage],
        features_list: Sequence[torch.Tensor],
        *,
        mask_decoder: Optional[Callable] = None,
    ) -> List[torch.Tensor]:
        """:meth:`object_logits` of several images with as few decoder calls as their prompts allow.

        Every image's prompt groups (:meth:`~stage1_pseudolabel.sam.prompts.ObjectPrompts.groups`:
        boxed, point-prompted and prompt-less objects) are bucketed across the images by their sparse token count (one
        decoder call has one token sequence length), and each bucket is one
        :meth:`~stage1_pseudolabel.sam.backends.base.SamBackend.decode_images` call in which every
        object attends to its own image's features. With one prompt kind and one point count in
        the batch (e.g. boxes only) that is one call for all images. Results are put back in each
        image's object order: ``[float [N_i, L, L]]``, ``[0, L, L]`` for an image without objects,
        equal to :meth:`object_logits` per image up to float rounding of the larger batch.

        Args:
            prepared_list: the images' objects and prompts.
            features_list: their features (batch 1 each), on the runner's device.
            mask_decoder: the module to call (a DDP wrapper, a frozen copy); default the model's own.
        """
        if len(prepared_list) != len(features_list):
            raise ValueError(f"batch_object_logits: {len(prepared_list)} images, {len(features_list)} features")
        if len(prepared_list) == 1:  # one image: exactly object_logits
            return [self.object_logits(prepared_list[0], features_list[0], mask_decoder=mask_decoder)]
        entries = []  # (image, object indices, sparse, dense)
        for j, prepared in enumerate(prepared_list):
            for idx, n, tensors in prepared.prompt_tensors(self.device):
                sparse, dense = self._prompt_embeddings(tensors, n)
                if sparse.shape[0]:
                    entries.append((j, idx, sparse, dense))
        buckets: Dict[Tuple[int, ...], List[int]] = {}
        for e, (_, _, sparse, _) in enumerate(entries):
            buckets.setdefault(tuple(sparse.shape[1:]), []).append(e)
        results: Dict[int, torch.Tensor] = {}
        for members in buckets.values():
            with autocast(self.precision, self.device):
                outs = self.model.decode_images(
                    [features_list[entries[e][0]] for e in members],
                    sparse_embeddings=[entries[e][2] for e in members],
                    dense_embeddings=[entries[e][3] for e in members],
                    dense_pe=self.dense_pe,
                    mask_decoder=mask_decoder,
                    multimask_output=self.multimask_output,
                )
            for e, (logits, _) in zip(members, outs):
                results[e] = logits.float()
        out: List[torch.Tensor] = []
        for j, (prepared, features) in enumerate(zip(prepared_list, features_list)):
            parts = [(entries[e][1], results[e]) for e in range(len(entries)) if entries[e][0] == j]
            n = prepared.prompts.num_objects
            if not parts:
                out.append(self.model._empty(as_features(features))[0].float())
            else:
                out.append(_in_object_order(n, parts))
        return out

    def _prompt_embeddings(self, tensors, n: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Sparse ``[n, T, C]`` and dense ``[n, C, h, w]`` prompt embeddings of a prompt group of ``n``
        objects from its ``(boxes, point_coords, point_labels)`` tensors (``T = 0`` for prompt-less
        objects; ``n = 0`` for an image without objects)."""
        boxes, coords, labels = tensors
        sparse, dense = self.model.encode_prompts(boxes=boxes, point_coords=coords, point_labels=labels)
        if boxes is None and coords is None:  # no prompt: [1, 0, C] and [1, C, h, w], one per prompt-less object
            sparse = sparse.expand(n, *sparse.shape[1:])
            dense = dense.expand(n, *dense.shape[1:])
        return sparse, dense

    def _call(self, embeddings: Tuple[torch.Tensor, torch.Tensor], embedding: torch.Tensor,
              mask_decoder: Optional[Callable]) -> torch.Tensor:
        sparse, dense = embeddings
        with autocast(self.precision, self.device):
            logits, _ = self.model.decode(
                embedding,
                sparse_embeddings=sparse,
                dense_embeddings=dense,
                dense_pe=self.dense_pe,
                mask_decoder=mask_decoder,
                multimask_output=self.multimask_output,
            )
        return logits.float()


def _in_object_order(num_objects: int, parts) -> torch.Tensor:
    """An image's logits ``[N, L, L]`` in object order from its prompt groups' ``[(object indices, [n, L, L])]``."""
    if len(parts) == 1 and len(parts[0][0]) == num_objects:  # one group: all objects, in order
        return parts[0][1]
    out = parts[0][1].new_empty((num_objects, *parts[0][1].shape[1:]))
    for idx, logits in parts:
        out = out.index_copy(0, torch.as_tensor(idx, device=logits.device), logits)
    return out


def lowres_log_distribution(prepared: PreparedImage, logits: torch.Tensor) -> torch.Tensor:
    """``[1 + K, L, L]`` log class distribution in the low-res frame (what the loss reads)."""
    return log_class_distribution(logits, prepared.channels.to(logits.device), num_channels=prepared.num_channels)


def lowres_object_distribution(logits: torch.Tensor) -> torch.Tensor:
    """``[1 + N, L, L]`` log distribution over background and the objects (instance-aware constraints)."""
    return log_object_distribution(logits)


def pixel_log_distribution(prepared: PreparedImage, logits: torch.Tensor) -> torch.Tensor:
    """``[1 + K, H, W]`` log class distribution in pixel space (what the pseudo-mask is read from).

    Object logits (``float [N, L, L]``, N >= 1) are upsampled to the image as SAM's
    ``postprocess_masks`` does (:meth:`~wsss.core.frames.SamFrame.lowres_to_pixels`), then
    turned into the class distribution there.
    """
    return _distribution_of_pixel_logits(prepared, prepared.frame.lowres_to_pixels(logits))  # [N, H, W] in


def _distribution_of_pixel_logits(prepared: PreparedImage, pix: torch.Tensor) -> torch.Tensor:
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
    log_probs = refined_distribution(log_probs, crf=crf, image=image)
    top, arg = log_probs.max(dim=0)
    return _labels(classes, top, arg, confidence_threshold)


def refined_distribution(log_probs: torch.Tensor, *, crf: Optional[CRFParams] = None,
                         image: Optional[np.ndarray] = None) -> torch.Tensor:
    """``log_probs`` after the dense CRF on ``image`` when ``crf`` is set (unchanged otherwise)."""
    if crf is None:
        return log_probs
    if image is None:
        raise ValueError("pseudo_mask: the dense CRF needs the image")
    probs = dense_crf(image, log_probs.exp().float().cpu().numpy(), crf)
    return torch.from_numpy(probs).clamp_min(1e-12).log()


def _labels(classes: torch.Tensor, top: torch.Tensor, arg: torch.Tensor, confidence_threshold: float) -> np.ndarray:
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


@dataclass
class PseudoInstances:
    """The objects of one image that own pixels, from the same argmax as its semantic mask.

    Attributes:
        masks: ``bool [M, H, W]`` disjoint object masks (objects that own no pixel are left out).
        classes: ``int64 [M]`` their classes.
        scores: ``float [M]`` the mean probability of the object's class over its mask.
        objects: ``int64 [M]`` index of each in the image's objects (its weak box).
    """

    masks: np.ndarray
    classes: np.ndarray
    scores: np.ndarray
    objects: np.ndarray


@torch.no_grad()
def pseudo_mask_and_instances(
    prepared: PreparedImage,
    logits: torch.Tensor,
    *,
    confidence_threshold: float = 0.0,
    crf: Optional[CRFParams] = None,
    image: Optional[np.ndarray] = None,
) -> Tuple[np.ndarray, PseudoInstances]:
    """The pseudo-mask of :func:`pseudo_mask` and, from the same argmax, one mask per object.

    Ownership: a pixel whose argmax channel is class ``k`` (and that is not set to 255 by the
    confidence threshold) belongs to the object of class ``k`` with the highest pixel-space logit
    there (the logits the class distribution was made from); background and 255 pixels belong to no
    object. So the objects are disjoint and their union, labelled with their classes, is the
    semantic mask. Score: the mean of ``p(class k)`` (after the CRF, when set) over the object's mask.
    """
    h, w = prepared.frame.height, prepared.frame.width
    if logits.shape[0] == 0:
        empty = PseudoInstances(np.zeros((0, h, w), bool), np.zeros(0, np.int64), np.zeros(0, np.float32),
                                np.zeros(0, np.int64))
        return np.zeros((h, w), np.uint8), empty
    pix = prepared.frame.lowres_to_pixels(logits)  # [N, H, W]
    log_probs = refined_distribution(_distribution_of_pixel_logits(prepared, pix), crf=crf, image=image)
    top, arg = log_probs.max(dim=0)
    mask = _labels(prepared.classes, top, arg, confidence_threshold)
    channels = prepared.channels.to(pix.device)
    candidates = pix.float().masked_fill(channels.view(-1, 1, 1) != arg.to(pix.device).unsqueeze(0), float("-inf"))
    owner = candidates.argmax(dim=0)  # [H, W]; meaningless where arg == 0 (masked below)
    owned = torch.from_numpy((mask != 0) & (mask != IGNORE_INDEX)).to(pix.device)
    masks = (owner.unsqueeze(0) == torch.arange(len(channels), device=pix.device).view(-1, 1, 1)) & owned
    keep = masks.flatten(1).any(dim=1)
    idx = torch.nonzero(keep).flatten()
    probs = log_probs.to(pix.device).exp()
    scores = [float(probs[channels[i]][masks[i]].mean()) for i in idx.tolist()]
    classes = torch.as_tensor(prepared.objects.classes)[idx.cpu()]
    return mask, PseudoInstances(masks[idx].cpu().numpy(), classes.numpy().astype(np.int64),
                                 np.asarray(scores, np.float32), idx.cpu().numpy().astype(np.int64))
