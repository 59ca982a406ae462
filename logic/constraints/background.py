"""Background: every valid pixel outside all boxes is background, ``forall p outside boxes: bg(p)``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import torch

from logic.constraints.base import Atoms, Constraint


def boxes_cover(boxes: torch.Tensor, *, height: int, width: int) -> torch.Tensor:
    """``bool [H, W]``: pixels inside at least one of ``boxes`` (``long [N, 4]`` half-open ``x0 y0 x1 y1``)."""
    rows = torch.arange(height, device=boxes.device)
    cols = torch.arange(width, device=boxes.device)
    in_rows = (rows[None, :] >= boxes[:, 1:2]) & (rows[None, :] < boxes[:, 3:4])  # [N, H]
    in_cols = (cols[None, :] >= boxes[:, 0:1]) & (cols[None, :] < boxes[:, 2:3])  # [N, W]
    return (in_rows[:, :, None] & in_cols[:, None, :]).any(dim=0)


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
