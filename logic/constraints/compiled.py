"""The constraint set of one image: built once from its weak labels, evaluated many times."""

from __future__ import annotations

from typing import Dict, Optional, Tuple, Union

import numpy as np
import torch

from logic.constraints.background import BackgroundConstraint, boxes_cover
from logic.constraints.base import Atoms, Constraint, as_tensor
from logic.constraints.border_precision import BorderPrecisionConstraint
from logic.constraints.box_fill import BoxFillConstraint
from logic.constraints.box_tightness import BoxTightnessConstraint
from logic.constraints.colour_affinity import ColourAffinityConstraint
from logic.constraints.config import ConstraintConfig
from logic.constraints.neighbourhood import NeighbourhoodConstraint
from logic.constraints.scribbles import ScribbleConstraint
from logic.constraints.zero_shot_anchor import ZeroShotAnchorConstraint

ArrayLike = Union[np.ndarray, torch.Tensor]


class CompiledConstraints:
    """All constraints of one image over ``log_probs [K, H, W]`` (channel 0 background).

    Build with :meth:`build`; evaluate with :meth:`truths` (log-truth per constraint type) and
    :meth:`loss` (minus their weighted, optionally normalised, sum). Constraint types with weight 0,
    or without the data they need (no scribbles, no superpixels, no image, no zero-shot
    distribution), are left out.
    """

    def __init__(
        self,
        *,
        constraints: Dict[str, Constraint],
        valid: torch.Tensor,
        num_labels: int,
        config: ConstraintConfig,
        crop: Tuple[int, int, int, int],
        shape: Tuple[int, int],
    ) -> None:
        self.constraints = constraints
        self.valid = valid  # [h, w] inside the crop
        self.num_labels = num_labels
        self.config = config
        self.crop = crop  # (r0, r1, c0, c1): bounding box of the valid pixels
        self.shape = shape  # (H, W) of the full map

    @classmethod
    def build(
        cls,
        *,
        num_labels: int,
        boxes: ArrayLike,
        box_classes: ArrayLike,
        valid: ArrayLike,
        scribbles: Optional[ArrayLike] = None,
        superpixels: Optional[ArrayLike] = None,
        image: Optional[ArrayLike] = None,
        zero_shot_log_probs: Optional[ArrayLike] = None,
        config: ConstraintConfig = ConstraintConfig(),
        ignore_index: int = 255,
        device: Optional[torch.device] = None,
    ) -> "CompiledConstraints":
        """Compile the constraints of one image in the frame the loss is evaluated in.

        Args:
            num_labels: ``K``, background included.
            boxes: ``int [B, 4]`` boxes as half-open cells ``(x0, y0, x1, y1)`` of the ``H x W`` map
                (e.g. :meth:`wsss.core.frames.SamFrame.boxes_to_lowres`).
            box_classes: ``int [B]`` class of each box, in ``1..K-1``.
            valid: ``bool [H, W]`` pixels that take part in constraints (False on padding).
            scribbles: ``int [H, W]`` label map (``ignore_index`` unlabeled, ``0..K-1``), or None.
            superpixels: ``int [H, W]`` superpixel ids (negative: none), or None (no border precision).
            image: ``[H, W, 3]`` RGB image in this frame (0..255), or None (no colour affinity).
            zero_shot_log_probs: ``float [K, H, W]`` the frozen model's log class distribution in this
                frame, or None (no zero-shot anchor).
            config: weights and options.
            ignore_index: the unlabeled value of ``scribbles``.
            device: where the compiled tensors live (``log_probs`` must be there too).
        """
        full_valid = as_tensor(valid, dtype=torch.bool, device=device)
        if full_valid.ndim != 2:
            raise ValueError(f"valid must be [H, W], got shape {tuple(full_valid.shape)}")
        shape = (int(full_valid.shape[0]), int(full_valid.shape[1]))
        boxes_t = as_tensor(boxes, dtype=torch.long, device=device).reshape(-1, 4)
        box_classes_t = as_tensor(box_classes, dtype=torch.long, device=device).reshape(-1)
        if len(boxes_t) != len(box_classes_t):
            raise ValueError(f"{len(boxes_t)} boxes but {len(box_classes_t)} box classes")
        # Everything is evaluated on the bounding box of the valid pixels only (SAM's low-res frame
        # is padded on two sides: this skips a quarter of the work for a 4:3 image).
        rows, cols = torch.nonzero(full_valid.any(dim=1)), torch.nonzero(full_valid.any(dim=0))
        if len(rows) == 0:
            return cls(constraints={}, valid=full_valid[:0, :0], num_labels=num_labels, config=config, crop=(0, 0, 0, 0), shape=shape)
        r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        valid_t = full_valid[r0:r1, c0:c1]
        boxes_t = boxes_t - torch.tensor([c0, r0, c0, r0], device=boxes_t.device)
        boxes_t[:, 0::2] = boxes_t[:, 0::2].clamp(0, c1 - c0)
        boxes_t[:, 1::2] = boxes_t[:, 1::2].clamp(0, r1 - r0)
        if scribbles is not None:
            scribbles = as_tensor(scribbles, dtype=torch.long, device=device)[r0:r1, c0:c1]
        if superpixels is not None:
            superpixels = as_tensor(superpixels, dtype=torch.long, device=device)[r0:r1, c0:c1]
        if image is not None:
            image = as_tensor(image, dtype=torch.float32, device=device)[r0:r1, c0:c1]
        if zero_shot_log_probs is not None:
            zero_shot_log_probs = as_tensor(zero_shot_log_probs, dtype=torch.float32, device=device)[:, r0:r1, c0:c1]
        w = config.weights
        built: Dict[str, Constraint] = {}
        if w["background"] > 0:
            built["background"] = BackgroundConstraint.build(boxes=boxes_t, valid=valid_t)
        if w["box_tightness"] > 0 and len(boxes_t):
            built["box_tightness"] = BoxTightnessConstraint.build(
                boxes=boxes_t, box_classes=box_classes_t, valid=valid_t, num_labels=num_labels
            )
        if w["scribbles"] > 0 and scribbles is not None:
            built["scribbles"] = ScribbleConstraint.build(
                scribbles=as_tensor(scribbles, dtype=torch.long, device=device),
                valid=valid_t,
                num_labels=num_labels,
                ignore_index=ignore_index,
            )
        if w["neighbourhood"] > 0:
            built["neighbourhood"] = NeighbourhoodConstraint.build(
                valid=valid_t, num_labels=num_labels, connectivity=config.neighbourhood_connectivity
            )
        if w["border_precision"] > 0 and superpixels is not None:
            built["border_precision"] = BorderPrecisionConstraint.build(
                superpixels=as_tensor(superpixels, dtype=torch.long, device=device),
                valid=valid_t,
                connectivity=config.border_connectivity,
            )
        if w["box_fill"] > 0 and len(boxes_t):
            built["box_fill"] = BoxFillConstraint.build(
                boxes=boxes_t, box_classes=box_classes_t, valid=valid_t, num_labels=num_labels,
                fraction=config.box_fill_fraction,
            )
        if w["zero_shot_anchor"] > 0 and zero_shot_log_probs is not None:
            built["zero_shot_anchor"] = ZeroShotAnchorConstraint.build(
                zero_shot_log_probs=zero_shot_log_probs, valid=valid_t, threshold=config.zero_shot_threshold
            )
        if w["colour_affinity"] > 0 and image is not None:
            inside = boxes_cover(boxes_t, height=valid_t.shape[0], width=valid_t.shape[1]) if len(boxes_t) else None
            built["colour_affinity"] = ColourAffinityConstraint.build(
                image=image, valid=valid_t, inside=inside, theta=config.colour_theta,
                threshold=config.colour_threshold, dilation=config.colour_dilation,
            )
        # Types without groundings (e.g. boxes covering every pixel: no background pixel) are dropped.
        built = {name: c for name, c in built.items() if c.num_groundings > 0}
        return cls(constraints=built, valid=valid_t, num_labels=num_labels, config=config, crop=(r0, r1, c0, c1), shape=shape)

    # -- evaluation ----------------------------------------------------------------------------------
    def atoms(self, log_probs: torch.Tensor) -> Atoms:
        """The (cropped, clamped) atoms of ``log_probs [K, H, W]``."""
        if log_probs.ndim != 3 or log_probs.shape[0] != self.num_labels or tuple(log_probs.shape[1:]) != self.shape:
            raise ValueError(
                f"log_probs must be [{self.num_labels}, {self.shape[0]}, {self.shape[1]}] as built, got {tuple(log_probs.shape)}"
            )
        r0, r1, c0, c1 = self.crop
        return Atoms(
            log_probs[:, r0:r1, c0:c1],
            valid=self.valid,
            eps=self.config.eps,
            negate_all="neighbourhood" in self.constraints,
        )

    def truths(self, log_probs: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Log-truth of each constraint type (conjunction over its groundings; not normalised).

        Args:
            log_probs: ``[K, H, W]`` per-pixel class log-probabilities (e.g. ``log_softmax`` over K).

        Returns:
            ``{name: scalar tensor}`` for the constraint types present.
        """
        atoms = self.atoms(log_probs)
        return {name: c.truth(atoms) for name, c in self.constraints.items()}

    def loss_and_truths(self, log_probs: torch.Tensor) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """The loss and the per-type truths (:meth:`truths`) from one evaluation.

        The loss is ``-sum_type weight * truth(type) [/ num_groundings(type)]`` (``config.normalisation``);
        a zero attached to ``log_probs``' graph when no constraint type is present.
        """
        truths = self.truths(log_probs)
        total = log_probs[..., :0].sum()
        for name, truth in truths.items():
            scale = self.config.weights[name]
            if self.config.normalisation == "mean":
                scale /= self.constraints[name].num_groundings
            total = total - scale * truth
        return total, truths

    def loss(self, log_probs: torch.Tensor) -> torch.Tensor:
        """The loss of :meth:`loss_and_truths`."""
        return self.loss_and_truths(log_probs)[0]

    @property
    def num_groundings(self) -> Dict[str, int]:
        return {name: c.num_groundings for name, c in self.constraints.items()}

    def to(self, device: torch.device) -> "CompiledConstraints":
        """A copy on ``device``."""
        return CompiledConstraints(
            constraints={name: c.to(device) for name, c in self.constraints.items()},
            valid=self.valid.to(device),
            num_labels=self.num_labels,
            config=self.config,
            crop=self.crop,
            shape=self.shape,
        )
