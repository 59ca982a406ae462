"""Box fill: the box's class covers at least a fraction ``rho`` of the box (a soft count).

For box ``b`` of class ``k``: ``Most_rho p in b: k(p)``, the fuzzy "at least a fraction rho" quantifier
over the valid pixels of the box, with truth

    ``T_b = min(1, (1 / (rho |b|)) sum_{p in b} k(p))``,  log-truth  ``min(0, logsumexp_{p in b} x_k(p) - log |b| - log rho)``

(``x_k(p) = log p(k at p)``). Box tightness (``exists`` per row and column) is satisfied by a one-pixel
cross or frame inside each box; this count is not: it asks for area. It saturates once the class
covers ``rho`` of the box, so it says nothing about *which* pixels (that is left to the other
constraints) and nothing once the object is large enough. ``rho`` should stay below the usual fill
of a box by its object (VOC: median about 0.6 of the box, 0.3 for thin objects).

All boxes at once: ``sum_{p in b} k(p)`` is ``row_span[:, b]^T P_k col_span[:, b]`` for the valid-masked
probability map ``P_k``, two matrix products for every box class; the sums of probabilities are at
least ``eps |b|`` (clipped atoms), so their log is finite.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Tuple

import torch

from logic.constraints.registry import register_constraint
from logic.grounding import Atoms, Constraint, ConstraintInputs, box_spans


@dataclass(frozen=True)
class BoxFillConstraint(Constraint):
    """Groundings: one per box with at least one valid pixel.

    Attributes:
        classes: ``long [U]`` the distinct box classes.
        box_to_class: ``long [B]`` position of each box's class in ``classes``.
        row_span: ``[H, B]`` 1 where row ``h`` is a row of box ``b``.
        col_span: ``[W, B]`` 1 where column ``w`` is a column of box ``b``.
        log_size: ``[B]`` ``log(rho * number of valid pixels of b)`` (0 for boxes without valid pixels).
        mask: ``bool [B]`` boxes with valid pixels.
        fraction: ``rho``.
        num_groundings: ``mask.sum()``.
    """

    classes: torch.Tensor
    box_to_class: torch.Tensor
    row_span: torch.Tensor
    col_span: torch.Tensor
    log_size: torch.Tensor
    mask: torch.Tensor
    fraction: float
    num_groundings: int
    name: str = "box_fill"

    @classmethod
    def build(cls, *, boxes: torch.Tensor, box_classes: torch.Tensor, valid: torch.Tensor, num_labels: int,
              fraction: float = 0.5) -> "BoxFillConstraint":
        """Args:
            boxes: ``long [B, 4]`` half-open cells ``(x0, y0, x1, y1)``.
            box_classes: ``long [B]`` in ``0..K-1``.
            valid: ``bool [H, W]``.
            num_labels: ``K``.
            fraction: ``rho`` in ``(0, 1]``.
        """
        if not 0 < fraction <= 1:
            raise ValueError(f"box fill fraction must be in (0, 1], got {fraction}")
        if box_classes.numel() and (box_classes.min() < 0 or box_classes.max() >= num_labels):
            raise ValueError(f"box classes {box_classes.tolist()} are outside 0..{num_labels - 1}")
        height, width = valid.shape
        spans = box_spans(boxes, height=height, width=width)
        in_rows, in_cols = spans[0].T.float(), spans[1].T.float()  # [H, B], [W, B]
        size = ((in_rows.T @ valid.float()) * in_cols.T).sum(dim=1)  # [B] valid pixels of each box
        mask = size > 0
        classes, box_to_class = torch.unique(box_classes.long(), return_inverse=True)
        size = size.double()  # exact integer counts; the log in float64 (cast to the atoms' dtype when evaluated)
        log_size = torch.where(mask, torch.log(size.clamp_min(1) * fraction), torch.zeros_like(size))
        return cls(classes=classes, box_to_class=box_to_class, row_span=in_rows, col_span=in_cols,
                   log_size=log_size, mask=mask, fraction=float(fraction), num_groundings=int(mask.sum()))

    def dense(self, atoms: Atoms) -> Tuple[torch.Tensor, torch.Tensor]:
        probs = atoms.x[self.classes].exp()  # [U, H, W]
        if atoms.valid_weight is not None:
            probs = probs * atoms.valid_weight
        dtype = probs.dtype
        per_row = probs @ self.col_span.to(dtype)  # [U, H, B]: sum over each box's columns, every row
        box = torch.arange(self.box_to_class.numel(), device=probs.device)
        rows = per_row[self.box_to_class, :, box]  # [B, H]
        counts = (rows * self.row_span.T.to(dtype)).sum(dim=1)  # [B]: sum_{p in b} k(p)
        log_count = torch.log(counts.clamp_min(torch.finfo(dtype).tiny))
        return (log_count - self.log_size.to(dtype)).clamp(max=0.0), self.mask

    def pixel_map(self, atoms: Atoms) -> torch.Tensor:
        """Each box's log-truth spread evenly over its valid cells."""
        values, mask = self.dense(atoms)
        values = values * mask.to(values.dtype)
        rows, cols = self.row_span.to(values.dtype), self.col_span.to(values.dtype)  # [H, B], [W, B]
        validf = atoms.valid.to(values.dtype)
        size = ((rows.T @ validf) * cols.T).sum(dim=1)  # [B]
        return ((rows * (values / size.clamp_min(1))) @ cols.T) * validf


def check_box_fill_options(options: Mapping[str, Any]) -> None:
    """``0 < fraction <= 1``."""
    if not 0 < options["fraction"] <= 1:
        raise ValueError(f"need 0 < box_fill.fraction <= 1, got {options['fraction']}")


@register_constraint("box_fill", requires=("boxes",), options={"fraction": 0.5}, check_options=check_box_fill_options)
def build_box_fill(inputs: ConstraintInputs, *, fraction: float) -> BoxFillConstraint:
    """forall boxes b: Most_fraction p in b: class(b)(p)"""
    return BoxFillConstraint.build(boxes=inputs.boxes, box_classes=inputs.box_classes, valid=inputs.valid,
                                   num_labels=inputs.num_labels, fraction=fraction)
