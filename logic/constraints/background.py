"""Background: every valid pixel outside all boxes is background, ``forall p outside boxes: bg(p)``.

When some classes are annotated without a box (clicks or scribbles only), the boxes say nothing
about them: ``forall p outside boxes: bg(p) or c_1(p) or ... `` over those classes. The classes are
mutually exclusive at a pixel, so that disjunction's truth is the sum of their probabilities (a
``logsumexp`` of the atoms), not the product t-norm's ``or`` of independent events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple

import torch

from logic.constraints.registry import register_constraint
from logic.grounding import Atoms, Constraint, ConstraintInputs, boxes_cover


@dataclass(frozen=True)
class BackgroundConstraint(Constraint):
    """Groundings: one per valid pixel outside every box; truth ``log p(bg at p)``.

    Attributes:
        mask: ``bool [H, W]`` the grounded pixels.
        num_groundings: ``mask.sum()``.
    """

    mask: torch.Tensor
    num_groundings: int
    also: Tuple[int, ...] = ()  #: channels besides background allowed outside the boxes
    name: str = "background"

    @classmethod
    def build(cls, *, boxes: torch.Tensor, valid: torch.Tensor, also: Sequence[int] = ()) -> "BackgroundConstraint":
        """Args: ``boxes`` ``long [N, 4]`` half-open cells ``(x0, y0, x1, y1)``; ``valid`` ``bool [H, W]``;
        ``also``: channels of box-less classes (module docstring)."""
        height, width = valid.shape
        mask = valid & ~boxes_cover(boxes, height=height, width=width)
        return cls(mask=mask, num_groundings=int(mask.sum()), also=tuple(int(c) for c in also))

    def dense(self, atoms: Atoms) -> Tuple[torch.Tensor, torch.Tensor]:
        if not self.also:
            return atoms.x[0], self.mask
        return torch.logsumexp(atoms.x[[0, *self.also]], dim=0).clamp_max(0.0), self.mask


@register_constraint("background", requires=("boxes",), default_weight=1.0)
def build_background(inputs: ConstraintInputs) -> BackgroundConstraint:
    """forall p outside every box: background(p) (or a class annotated without a box)"""
    return BackgroundConstraint.build(boxes=inputs.boxes, valid=inputs.valid, also=inputs.unboxed_labels)
