"""Repairs shared by every reader: boxes clipped to the image, empty boxes and off-image clicks dropped,
border clicks clamped.

Each repair warns once per file (:func:`wsss.core.weak_labels.errors.warn_file`), naming how
many boxes or clicks it touched.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from wsss.core.frames import clip_box
from wsss.core.weak_labels.errors import PathLike, warn_file


def fit_boxes_to_image(
    boxes: np.ndarray, classes: np.ndarray, *, height: int, width: int, path: Optional[PathLike] = None
) -> Tuple[np.ndarray, np.ndarray]:
    """Clip pixel-frame boxes to the image and drop boxes that are empty afterwards.

    Args:
        boxes: ``float [N, 4]`` ``(x0, y0, x1, y1)`` half-open pixel edges.
        classes: ``int [N]`` class of each box.
        height, width: image size.
        path: the annotation file, for the warnings.

    Returns:
        ``(float32 [M, 4], int64 [M])`` with ``M <= N``; one warning per file if any box was clipped,
        one if any was dropped.
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    classes = np.asarray(classes, np.int64).reshape(-1)
    clipped = clip_box(boxes, height, width)
    changed = np.any(clipped != boxes, axis=1)
    empty = (clipped[:, 2] <= clipped[:, 0]) | (clipped[:, 3] <= clipped[:, 1])
    n_clipped = int((changed & ~empty).sum())
    if n_clipped:
        warn_file(path, f"{n_clipped} box(es) extend outside the {width}x{height} image and were clipped")
    if empty.any():
        warn_file(path, f"{int(empty.sum())} box(es) are empty after clipping to the {width}x{height} image "
                        "and were skipped")
    keep = ~empty
    return clipped[keep], classes[keep]


def fit_points_to_image(
    points: np.ndarray, classes: np.ndarray, *, height: int, width: int, path: Optional[PathLike] = None
) -> Tuple[np.ndarray, np.ndarray]:
    """Keep the clicks that lie on the image, clamped to valid pixel indices; drop the others.

    A click on the image border (``-0.5 <= x <= width``, likewise ``y``; annotation tools write the
    border as ``x = width``) is clamped to ``0..width-1`` silently; a click further out is dropped,
    with one warning per file.

    Args:
        points: ``float [P, 2]`` ``(x, y)`` pixel indices; classes: ``int [P]``.

    Returns:
        ``(float32 [Q, 2], int64 [Q])`` with ``0 <= x <= width - 1`` and ``0 <= y <= height - 1``.
    """
    points = np.asarray(points, np.float32).reshape(-1, 2)
    classes = np.asarray(classes, np.int64).reshape(-1)
    x, y = points[:, 0], points[:, 1]
    inside = (x >= -0.5) & (x <= width) & (y >= -0.5) & (y <= height)
    if not inside.all():
        warn_file(path, f"{int((~inside).sum())} click(s) outside the {width}x{height} image were skipped")
    kept = points[inside]
    kept[:, 0] = kept[:, 0].clip(0, width - 1)
    kept[:, 1] = kept[:, 1].clip(0, height - 1)
    return kept, classes[inside]
