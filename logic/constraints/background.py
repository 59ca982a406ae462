"""Background: every valid pixel outside all boxes is background, ``forall p outside boxes: bg(p)``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import torch

from logic.constraints.base import Atoms, Constraint, boxes_cover
from logic.constraints.registry import ConstraintInputs, register_constraint


@dataclass(frozen=True)
class BackgroundConstraint(Constraint):
    """Groundings: one per valid pixel outside every box; truth ``log p(bg at p)``.

    Attributes:
        mask: ``bool [H, W]`` the grounded pixels.
        num_groundings: ``mask.sum()``.
    """

    mask: torch.Tensor
    num_groundings: int
    name: str = "background"

    @classmethod
    def build(cls, *, boxes: torch.Tensor, valid: torch.Tensor) -> "BackgroundConstraint":
        """Args: ``boxes`` ``long [N, 4]`` half-open cells ``(x0, y0, x1, y1)``; ``valid`` ``bool [H, W]``."""
        height, width = valid.shape
        mask = valid & ~boxes_cover(boxes, height=height, width=width)
        return cls(mask=mask, num_groundings=int(mask.sum()))

    def dense(self, atoms: Atoms) -> Tuple[torch.Tensor, torch.Tensor]:
        return atoms.x[0], self.mask


@register_constraint("background", requires=("boxes",), default_weight=1.0)
def build_background(inputs: ConstraintInputs) -> BackgroundConstraint:
    """forall p outside every box: background(p)"""
    return BackgroundConstraint.build(boxes=inputs.boxes, valid=inputs.valid)
