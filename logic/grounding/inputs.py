"""What one image offers its constraints: the weak labels and the image in the loss frame.

A constraint type (:mod:`logic.constraints.registry`) or a formula (:mod:`logic.formula`) names the
inputs it requires (:data:`INPUTS`); an image that lacks one leaves it out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import FrozenSet, Optional, Tuple

import torch

from logic.grounding.boxes import boxes_cover

#: Inputs a constraint type or a formula may require. ``objects``: the per-object boxes of an instance-aware
#: type, whose atoms are the object distribution (``atoms="objects"``).
INPUTS: Tuple[str, ...] = ("boxes", "scribbles", "superpixels", "image", "zero_shot", "tags", "objects")


@dataclass
class ConstraintInputs:
    """What one image offers its constraints: the ``H x W`` loss frame, cropped to the valid pixels.

    Attributes:
        num_labels: ``K``, channels of the class distribution (channel 0 background).
        valid: ``bool [H, W]`` pixels that take part in constraints.
        boxes: ``long [B, 4]`` half-open cells ``(x0, y0, x1, y1)``, or None when the image has no box
            annotation (an annotated image without objects has ``B = 0``).
        box_classes: ``long [B]`` channel of each box.
        scribbles: ``long [H, W]`` channel labels (``ignore_index`` unlabelled), or None.
        superpixels: ``long [H, W]`` superpixel ids (negative: none), or None.
        image: ``float [H, W, 3]`` RGB (0..255), or None.
        zero_shot_log_probs: ``float [K, H, W]`` the frozen model's log class distribution, or None.
        tags: ``bool [K]`` channels tagged as present in the image (image-level labels), or None.
        object_boxes: ``long [N, 4]`` the box of each object (object channel ``i + 1``), or None.
        unboxed_labels: channels of classes annotated without a box (by clicks or scribbles), which
            the boxes say nothing about.
        class_names: name of each channel (``K`` names, ``background`` first), or None.
        ignore_index: the unlabelled value of ``scribbles``.
    """

    num_labels: int
    valid: torch.Tensor
    boxes: Optional[torch.Tensor] = None
    box_classes: Optional[torch.Tensor] = None
    scribbles: Optional[torch.Tensor] = None
    superpixels: Optional[torch.Tensor] = None
    image: Optional[torch.Tensor] = None
    zero_shot_log_probs: Optional[torch.Tensor] = None
    tags: Optional[torch.Tensor] = None
    object_boxes: Optional[torch.Tensor] = None
    unboxed_labels: Tuple[int, ...] = ()
    class_names: Optional[Tuple[str, ...]] = None
    ignore_index: int = 255
    _cover: Optional[torch.Tensor] = field(default=None, repr=False)

    @property
    def available(self) -> FrozenSet[str]:
        """The names in :data:`INPUTS` this image provides."""
        have = {
            "boxes": self.boxes is not None,
            "scribbles": self.scribbles is not None,
            "superpixels": self.superpixels is not None,
            "image": self.image is not None,
            "zero_shot": self.zero_shot_log_probs is not None,
            "tags": self.tags is not None,
            "objects": self.object_boxes is not None and len(self.object_boxes) > 0,
        }
        return frozenset(name for name, ok in have.items() if ok)

    @property
    def height(self) -> int:
        return int(self.valid.shape[0])

    @property
    def width(self) -> int:
        return int(self.valid.shape[1])

    @property
    def box_cover(self) -> torch.Tensor:
        """``bool [H, W]`` pixels inside at least one box (all False without boxes)."""
        if self._cover is None:
            boxes = self.boxes if self.boxes is not None else torch.zeros((0, 4), dtype=torch.long, device=self.valid.device)
            self._cover = boxes_cover(boxes, height=self.height, width=self.width)
        return self._cover
