"""Instance-aware constraints: over the *object* distribution instead of the class distribution.

The class distribution adds the instances of one class up (``log p(class k) = logsumexp`` over its
objects), so class-level box tightness is satisfied by *any* object of the class in a box's rows and
columns, and nothing keeps an object inside its own box when another box of its class is near. The
object distribution ``[1 + N, H, W]`` (channel 0 background, channel ``i`` object ``i``; the softmax of
:mod:`stage1_pseudolabel.sam.class_distribution` before instances are summed) states the same
knowledge per object:

* ``object_tightness``: ``forall objects i, forall rows (columns) r of box(i): exists p in r: obj_i(p)``,
  box tightness (:mod:`logic.constraints.box_tightness`) with one "class" per object;
* ``object_in_box``: ``forall objects i, forall p outside box(i): not obj_i(p)``, an object's pixels
  stay inside its own box (a pixel in the overlap of two boxes may go to either).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import torch

from logic.constraints.box_tightness import BoxTightnessConstraint
from logic.constraints.registry import register_constraint
from logic.grounding import Atoms, Constraint, ConstraintInputs, box_spans


@dataclass(frozen=True)
class ObjectInBoxConstraint(Constraint):
    """Groundings: ``(object i, valid pixel p outside box(i))``; truth ``not obj_i(p)``.

    Attributes:
        mask: ``bool [N, H, W]`` the grounded pairs.
        num_groundings: ``mask.sum()``.
    """

    mask: torch.Tensor
    num_groundings: int
    name: str = "object_in_box"

    @classmethod
    def build(cls, *, object_boxes: torch.Tensor, valid: torch.Tensor) -> "ObjectInBoxConstraint":
        """Args: ``object_boxes`` ``long [N, 4]`` half-open cells ``(x0, y0, x1, y1)``; ``valid`` ``bool [H, W]``."""
        height, width = valid.shape
        in_rows, in_cols = box_spans(object_boxes, height=height, width=width)  # [N, H], [N, W]
        mask = ~(in_rows[:, :, None] & in_cols[:, None, :]) & valid[None]
        return cls(mask=mask, num_groundings=int(mask.sum()))

    def dense(self, atoms: Atoms) -> Tuple[torch.Tensor, torch.Tensor]:
        objects = torch.arange(1, self.mask.shape[0] + 1, device=self.mask.device)
        return atoms.negated_valid_of(objects), self.mask


@register_constraint("object_tightness", requires=("objects",), atoms="objects")
def build_object_tightness(inputs: ConstraintInputs) -> BoxTightnessConstraint:
    """forall objects i, rows (columns) r of box(i): exists p in r: obj_i(p)"""
    n = len(inputs.object_boxes)
    return BoxTightnessConstraint.build(
        boxes=inputs.object_boxes, box_classes=torch.arange(1, n + 1, device=inputs.object_boxes.device),
        valid=inputs.valid, num_labels=n + 1,
    )


@register_constraint("object_in_box", requires=("objects",), atoms="objects")
def build_object_in_box(inputs: ConstraintInputs) -> ObjectInBoxConstraint:
    """forall objects i, p outside box(i): not obj_i(p)"""
    return ObjectInBoxConstraint.build(object_boxes=inputs.object_boxes, valid=inputs.valid)
