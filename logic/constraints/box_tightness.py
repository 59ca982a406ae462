"""Box tightness: every row and every column of a box holds at least one pixel of the box's class.

For box ``b`` of class ``k`` and each of its rows ``r``: ``exists c in cols(b): k(r, c)``, i.e.
``not(sum_c not k(r, c))``; likewise per column. Only valid pixels are quantified over; a row or
column without valid pixels is no grounding.

All boxes at once: the inner sums ``sum_{c in cols(b)} not k(r, c)`` for every row are one matrix
product of the (valid-masked) ``not k`` maps ``[U, H, W]`` with the 0/1 column-span matrix ``[W, B]``
of the boxes (``U`` distinct box classes), O(U H W B) multiply-adds in BLAS, and exact: no difference
of cumulative sums, whose cancellation would destroy the tiny sums that matter most (rows where the
class is nearly absent, where the loss and its gradient are largest).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import torch

from logic.constraints.registry import register_constraint
from logic.grounding import Atoms, Constraint, ConstraintInputs, box_spans


@dataclass(frozen=True)
class BoxTightnessConstraint(Constraint):
    """Groundings: ``B x (H + W)`` potential (box, row) and (box, column) pairs, masked to the box spans.

    Attributes:
        classes: ``long [U]`` the distinct box classes.
        box_to_class: ``long [B]`` position of each box's class in ``classes``.
        row_span: ``[H, B]`` 1 where row ``h`` is a row of box ``b`` (float, for the matmul).
        col_span: ``[W, B]`` 1 where column ``w`` is a column of box ``b``.
        mask: ``bool [B, H + W]`` grounded rows (first ``H``) and columns (last ``W``) of each box.
        num_groundings: ``mask.sum()``.
    """

    classes: torch.Tensor
    box_to_class: torch.Tensor
    row_span: torch.Tensor
    col_span: torch.Tensor
    mask: torch.Tensor
    num_groundings: int
    name: str = "box_tightness"

    @classmethod
    def build(cls, *, boxes: torch.Tensor, box_classes: torch.Tensor, valid: torch.Tensor, num_labels: int) -> "BoxTightnessConstraint":
        """Args:
            boxes: ``long [B, 4]`` half-open cells ``(x0, y0, x1, y1)``.
            box_classes: ``long [B]`` in ``0..K-1`` (normally ``1..K-1``).
            valid: ``bool [H, W]``.
            num_labels: ``K``.
        """
        if box_classes.numel() and (box_classes.min() < 0 or box_classes.max() >= num_labels):
            raise ValueError(f"box classes {box_classes.tolist()} are outside 0..{num_labels - 1}")
        height, width = valid.shape
        spans = box_spans(boxes, height=height, width=width)
        in_rows, in_cols = spans[0].T, spans[1].T  # [H, B], [W, B]
        validf = valid.float()
        row_has_valid = (validf @ in_cols.float()) > 0  # [H, B]: valid pixels in (row, cols of b)
        col_has_valid = (validf.T @ in_rows.float()) > 0  # [W, B]
        mask = torch.cat([(in_rows & row_has_valid).T, (in_cols & col_has_valid).T], dim=1)
        classes, box_to_class = torch.unique(box_classes.long(), return_inverse=True)
        return cls(
            classes=classes,
            box_to_class=box_to_class,
            row_span=in_rows.float(),
            col_span=in_cols.float(),
            mask=mask,
            num_groundings=int(mask.sum()),
        )

    def dense(self, atoms: Atoms) -> Tuple[torch.Tensor, torch.Tensor]:
        num_boxes = self.box_to_class.numel()
        negated = atoms.negated_valid_of(self.classes)  # [U, H, W]
        dtype = negated.dtype
        # Sums of "not k" over each box's columns for every row, then over its rows for every column.
        row_sums = negated @ self.col_span.to(dtype)  # [U, H, B]
        col_sums = negated.transpose(1, 2) @ self.row_span.to(dtype)  # [U, W, B]
        box = torch.arange(num_boxes, device=negated.device)
        sums = torch.cat([row_sums[self.box_to_class, :, box], col_sums[self.box_to_class, :, box]], dim=1)  # [B, H + W]
        return atoms.log_not(sums), self.mask

    def pixel_map(self, atoms: Atoms) -> torch.Tensor:
        """Each row's (column's) log-truth spread evenly over the valid cells of the box in it."""
        values, mask = self.dense(atoms)
        values = values * mask.to(values.dtype)
        height, width = self.row_span.shape[0], self.col_span.shape[0]
        validf = atoms.valid.to(values.dtype)
        row_cells = validf @ self.col_span.to(values.dtype)  # [H, B] valid cells of (row, box)
        col_cells = validf.T @ self.row_span.to(values.dtype)  # [W, B]
        per_row = values[:, :height].T / row_cells.clamp_min(1)  # [H, B]
        per_col = values[:, height:].T / col_cells.clamp_min(1)  # [W, B]
        out = (per_row * self.row_span.to(values.dtype)) @ self.col_span.to(values.dtype).T  # [H, W]
        out = out + ((per_col * self.col_span.to(values.dtype)) @ self.row_span.to(values.dtype).T).T
        return out * validf


@register_constraint("box_tightness", requires=("boxes",), default_weight=1.0)
def build_box_tightness(inputs: ConstraintInputs) -> BoxTightnessConstraint:
    """forall boxes b, forall rows (columns) r of b: exists p in r: class(b)(p)"""
    return BoxTightnessConstraint.build(boxes=inputs.boxes, box_classes=inputs.box_classes, valid=inputs.valid,
                                        num_labels=inputs.num_labels)
