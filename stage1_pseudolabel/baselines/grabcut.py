"""GrabCut baseline: OpenCV GrabCut initialised from each box, with scribbles as hard constraints.

For each annotated object, GrabCut runs on a crop around its box (the box plus a margin, for speed)
with the initial labelling

* outside the box: ``GC_BGD`` (definite background);
* inside the box: ``GC_PR_FGD`` (probably foreground);
* scribble pixels of the object's class inside its box: ``GC_FGD`` (definite foreground);
* background scribble pixels and scribble pixels of any other class: ``GC_BGD``.

The per-object foregrounds are combined into one class map in the box-fill order (largest box first,
smaller boxes painted on top). An object whose GrabCut foreground comes out empty (or GrabCut
fails, e.g. for lack of background samples) falls back to its filled box, so the baseline never
loses an annotated object.
"""

from __future__ import annotations

import warnings

import cv2
import numpy as np

from stage1_pseudolabel.baselines.box_fill import box_paint_order, integer_box
from wsss.core.weak_labels.annotation import ImageAnnotation
from wsss.core.weak_labels.classes import IGNORE_INDEX


def grabcut_object(
    image: np.ndarray,
    box: np.ndarray,
    cls: int,
    scribbles: np.ndarray | None = None,
    *,
    iterations: int = 5,
    margin: float = 0.25,
    min_margin: int = 10,
    seed: int = 0,
) -> np.ndarray:
    """Foreground of one object as ``bool [H, W]`` (False outside its box).

    Args:
        image: ``uint8 [H, W, 3]`` RGB image.
        box: ``(x0, y0, x1, y1)`` half-open pixel box.
        cls: the object's class; scribble pixels of that class inside the box are definite foreground.
        scribbles: ``uint8 [H, W]`` scribble label map (255 unlabeled) or None.
        iterations: GrabCut iterations.
        margin: crop margin around the box, as a fraction of the box side (at least ``min_margin`` px).
        seed: OpenCV RNG seed (GrabCut's GMM initialisation uses k-means), for reproducible outputs.

    Raises:
        cv2.error: GrabCut itself failed (the caller decides on a fallback).
    """
    h, w = image.shape[:2]
    x0, y0, x1, y1 = integer_box(box, h, w)
    out = np.zeros((h, w), bool)
    if x1 <= x0 or y1 <= y0:
        return out
    mx = max(min_margin, int(round(margin * (x1 - x0))))
    my = max(min_margin, int(round(margin * (y1 - y0))))
    cx0, cy0, cx1, cy1 = max(0, x0 - mx), max(0, y0 - my), min(w, x1 + mx), min(h, y1 + my)
    crop = np.ascontiguousarray(image[cy0:cy1, cx0:cx1, ::-1])  # BGR, as OpenCV expects
    mask = np.full(crop.shape[:2], cv2.GC_BGD, np.uint8)
    bx0, by0, bx1, by1 = x0 - cx0, y0 - cy0, x1 - cx0, y1 - cy0
    mask[by0:by1, bx0:bx1] = cv2.GC_PR_FGD
    inside = np.zeros(crop.shape[:2], bool)
    inside[by0:by1, bx0:bx1] = True
    if scribbles is not None:
        s = scribbles[cy0:cy1, cx0:cx1]
        mask[(s != IGNORE_INDEX) & (s != cls)] = cv2.GC_BGD
        mask[(s == cls) & inside] = cv2.GC_FGD
    if not (mask == cv2.GC_BGD).any():
        # The box covers the whole image and there is no background scribble: GrabCut needs some
        # background samples, so the outermost ring of the box becomes probably-background.
        ring = max(1, min(crop.shape[:2]) // 20)
        border = np.ones(crop.shape[:2], bool)
        border[ring:-ring, ring:-ring] = False
        mask[border & (mask == cv2.GC_PR_FGD)] = cv2.GC_PR_BGD
    if not np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD)).any():
        return out
    cv2.setRNGSeed(seed)
    bgd = np.zeros((1, 65), np.float64)
    fgd = np.zeros((1, 65), np.float64)
    cv2.grabCut(crop, mask, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    fg = np.isin(mask, (cv2.GC_FGD, cv2.GC_PR_FGD)) & inside
    out[cy0:cy1, cx0:cx1] = fg
    return out


def grabcut_fill(
    image: np.ndarray,
    ann: ImageAnnotation,
    *,
    iterations: int = 5,
    margin: float = 0.25,
    empty_fallback: str = "box",
) -> np.ndarray:
    """``uint8 [H, W]`` class map from per-box GrabCut (module docstring).

    Args:
        image: ``uint8 [H, W, 3]`` RGB image of size ``ann.height x ann.width``.
        ann: the weak labels (boxes with classes, optional scribbles).
        empty_fallback: ``"box"`` fills the box of an object whose foreground is empty or whose
            GrabCut failed; ``"none"`` leaves it out.
    """
    if image.shape[:2] != (ann.height, ann.width):
        raise ValueError(f"{ann.image_id}: image is {image.shape[1]}x{image.shape[0]} but annotation says {ann.width}x{ann.height}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    image = np.ascontiguousarray(image[:, :, :3], dtype=np.uint8)
    out = np.zeros((ann.height, ann.width), np.uint8)
    for i in box_paint_order(ann.boxes):
        cls = int(ann.box_classes[i])
        try:
            fg = grabcut_object(image, ann.boxes[i], cls, ann.scribbles, iterations=iterations, margin=margin, seed=int(i))
        except cv2.error as exc:
            warnings.warn(f"{ann.image_id}: GrabCut failed on box {i} ({exc.__class__.__name__}: {str(exc).strip()[:120]}); using the filled box")
            fg = np.zeros_like(out, bool)
        if not fg.any() and empty_fallback == "box":
            x0, y0, x1, y1 = integer_box(ann.boxes[i], ann.height, ann.width)
            fg[y0:y1, x0:x1] = True
        out[fg] = cls
    return out
