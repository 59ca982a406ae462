"""Box-fill baseline: each box filled with its class; smaller boxes are drawn on top of larger ones."""

from __future__ import annotations

import numpy as np

from wsss.core.weak_labels.annotation import ImageAnnotation


def integer_box(box: np.ndarray, height: int, width: int) -> tuple:
    """Half-open pixel box ``(x0, y0, x1, y1)`` (floats) to clipped integer slice bounds.

    A pixel belongs to the box when its centre lies inside (edges rounded to the nearest integer),
    and a non-empty box keeps at least one pixel.
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    ix0 = int(np.clip(np.floor(x0 + 0.5), 0, width))
    iy0 = int(np.clip(np.floor(y0 + 0.5), 0, height))
    ix1 = int(np.clip(np.floor(x1 + 0.5), 0, width))
    iy1 = int(np.clip(np.floor(y1 + 0.5), 0, height))
    if x1 > x0 and ix1 <= ix0:
        ix0, ix1 = min(ix0, width - 1), min(ix0, width - 1) + 1
    if y1 > y0 and iy1 <= iy0:
        iy0, iy1 = min(iy0, height - 1), min(iy0, height - 1) + 1
    return ix0, iy0, ix1, iy1


def box_paint_order(boxes: np.ndarray) -> np.ndarray:
    """Indices of ``boxes`` from the largest area to the smallest (stable), i.e. the paint order."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    area = (boxes[:, 2] - boxes[:, 0]).clip(0) * (boxes[:, 3] - boxes[:, 1]).clip(0)
    return np.argsort(-area, kind="stable")


def box_fill(image: np.ndarray | None, ann: ImageAnnotation) -> np.ndarray:
    """``uint8 [H, W]`` label map with every box filled by its class, smaller boxes on top.

    ``image`` is unused (accepted for a common baseline signature). Pixels outside every box are
    background (0).
    """
    out = np.zeros((ann.height, ann.width), np.uint8)
    for i in box_paint_order(ann.boxes):
        x0, y0, x1, y1 = integer_box(ann.boxes[i], ann.height, ann.width)
        if x1 > x0 and y1 > y0:
            out[y0:y1, x0:x1] = int(ann.box_classes[i])
    return out
