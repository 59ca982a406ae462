"""Box geometry on an ``H x W`` map: the rows and columns of each box, and the pixels any box covers."""

from __future__ import annotations

from typing import Tuple

import torch


def box_spans(boxes: torch.Tensor, *, height: int, width: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(bool [N, H], bool [N, W])``: the rows and the columns of each of ``boxes`` (``long [N, 4]``
    half-open ``x0 y0 x1 y1``) in an ``H x W`` map."""
    rows = torch.arange(height, device=boxes.device)
    cols = torch.arange(width, device=boxes.device)
    in_rows = (rows[None, :] >= boxes[:, 1:2]) & (rows[None, :] < boxes[:, 3:4])
    in_cols = (cols[None, :] >= boxes[:, 0:1]) & (cols[None, :] < boxes[:, 2:3])
    return in_rows, in_cols


def boxes_cover(boxes: torch.Tensor, *, height: int, width: int) -> torch.Tensor:
    """``bool [H, W]``: pixels inside at least one of ``boxes`` (``long [N, 4]`` half-open ``x0 y0 x1 y1``)."""
    in_rows, in_cols = box_spans(boxes, height=height, width=width)
    return (in_rows[:, :, None] & in_cols[:, None, :]).any(dim=0)
