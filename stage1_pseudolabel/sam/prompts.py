"""SAM prompts for every annotated object of an image: a box, positive and negative points.

Objects are the image's boxes, then box-less classes (scribbles, clicks), then one tagged class
prompted by nothing; sampling is seeded by ``(seed, image_id)``. The rules: docs/method.md,
"Objects and their prompts".
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
import torch

from wsss.core.frames import SamFrame, clip_box
from wsss.core.weak_labels.annotation import ImageAnnotation
from wsss.core.weak_labels.classes import IGNORE_INDEX
from wsss.core.weak_labels.points import farthest_points

log = logging.getLogger(__name__)

PROMPT_MODES: Tuple[str, ...] = ("box", "points", "both")
PAD_LABEL = -1


@dataclass
class ImageObjects:
    """The objects of one image in the pixel frame.

    Attributes:
        boxes: ``float32 [N, 4]`` regions ``(x0, y0, x1, y1)``, half-open pixel edges, inside the image.
        classes: ``int64 [N]`` class of each object, ``1..C``.
        boxed: ``bool [N]``, True where the region is an annotated box (False: the bounding box of the
            class's scribbles and clicks, or the image). Boxed objects come first.
        promptless: ``bool [N]``, True for an object known from a tag only (no prompt; region the
            image); these come last. Default: none.
    """

    boxes: np.ndarray
    classes: np.ndarray
    boxed: np.ndarray
    promptless: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        if self.promptless is None:
            self.promptless = np.zeros(len(self.classes), bool)

    @property
    def num_objects(self) -> int:
        return len(self.classes)

    @property
    def from_boxes(self) -> bool:
        """True when every object is an annotated box (and there is one)."""
        return bool(len(self.boxed)) and bool(self.boxed.all())


@dataclass
class ObjectPrompts:
    """Prompts of all objects of one image in the SAM input frame, for one batched decoder call.

    Attributes:
        boxes: ``float32 [N, 4]`` box prompts, or None.
        point_coords: ``float32 [N, P, 2]`` ``(x, y)`` points, or None when ``P == 0``.
        point_labels: ``float32 [N, P]`` 1 positive, 0 negative, -1 padding; or None.
    """

    boxes: Optional[np.ndarray]
    point_coords: Optional[np.ndarray]
    point_labels: Optional[np.ndarray]
    #: ``bool [N]``: the objects prompted by their box (rows of ``boxes`` elsewhere are unused); None:
    #: all of them when ``boxes`` is set, none otherwise.
    box_objects: Optional[np.ndarray] = None
    #: ``bool [N]``: the objects prompted by nothing (their rows of the other arrays are unused, points
    #: all padding); None: none.
    promptless: Optional[np.ndarray] = None

    @property
    def num_objects(self) -> int:
        for a in (self.boxes, self.point_labels, self.box_objects, self.promptless):
            if a is not None:
                return len(a)
        return 0

    def groups(self) -> List[Tuple[np.ndarray, "ObjectPrompts"]]:
        """Sub-batches that each go through the decoder in one call: ``[(int64 [n] object indices,
        prompts of those objects)]``: the boxed objects, then those prompted by points only, then the
        prompt-less ones; one group (all objects) when the prompts are of one kind. Padding columns
        that a group does not use are dropped, so a group's prompts are what it would have alone."""
        n = self.num_objects
        promptless = np.zeros(n, bool) if self.promptless is None else self.promptless
        boxed = (np.full(n, self.boxes is not None) if self.box_objects is None else self.box_objects) & ~promptless
        kinds = [sel for sel in (boxed, ~boxed & ~promptless, promptless) if sel.any()]
        if len(kinds) <= 1:
            return [(np.arange(n), self)]
        out = []
        for sel in kinds:
            idx = np.nonzero(sel)[0]
            if sel is promptless:
                out.append((idx, ObjectPrompts(None, None, None, promptless=np.ones(len(idx), bool))))
                continue
            coords = labels = None
            if self.point_labels is not None:
                used = (self.point_labels[idx] != PAD_LABEL).any(0)
                if used.any():
                    last = int(np.nonzero(used)[0][-1]) + 1
                    coords, labels = self.point_coords[idx, :last], self.point_labels[idx, :last]
            boxes = self.boxes[idx] if sel is boxed else None
            out.append((idx, ObjectPrompts(boxes, coords, labels)))
        return out

    def to_tensors(self, device=None):
        """``(boxes, point_coords, point_labels)`` as float tensors (None kept)."""
        def t(a):
            return None if a is None else torch.as_tensor(a, dtype=torch.float32, device=device)
        return t(self.boxes), t(self.point_coords), t(self.point_labels)


def image_rng(seed: int, image_id: str) -> np.random.Generator:
    """A random stream that depends only on ``seed`` and ``image_id``."""
    digest = hashlib.sha256(f"{int(seed)}:{image_id}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def image_objects(ann: ImageAnnotation, *, min_box_size: float = 1.0, boxless_objects: bool = True,
                  tag_objects: bool = True) -> ImageObjects:
    """The objects of an image (module docstring); drops degenerate boxes with a warning.

    ``boxless_objects=False`` keeps the older rule: an image with boxes has only its boxes (scribbles
    and clicks of a class without a box are then left out of the loss). ``tag_objects`` adds the
    prompt-less object of a tagged class that is no other object (``ann.tags``; none when it is None):
    with ``boxless_objects=False`` a class with clicks but no box is one, its clicks labels only.
    """
    boxes = np.zeros((0, 4), np.float32)
    box_classes = np.zeros(0, np.int64)
    if ann.num_objects:
        boxes = clip_box(ann.boxes, ann.height, ann.width)
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        keep = (w >= min_box_size) & (h >= min_box_size)
        if not keep.all():
            log.warning("%s: dropped %d degenerate box(es) (smaller than %.1f px after clipping): %s",
                        ann.image_id, int((~keep).sum()), min_box_size, ann.boxes[~keep].tolist())
        boxes, box_classes = boxes[keep], ann.box_classes[keep].astype(np.int64)
    regions, classes = [], []
    labels = set()
    if ann.scribbles is not None:
        labels |= {int(v) for v in np.unique(ann.scribbles) if v not in (0, IGNORE_INDEX)}
    labels |= {int(c) for c in ann.point_classes if c > 0}
    labels -= {int(c) for c in box_classes}
    if ann.num_objects and not boxless_objects:
        labels = set()  # an image with boxes has only its boxes (and its tag-only object)
    for c in sorted(labels):
        xs, ys = [], []
        if ann.scribbles is not None:
            yy, xx = np.nonzero(ann.scribbles == c)
            xs.append(xx.astype(np.float32))
            ys.append(yy.astype(np.float32))
        sel = ann.point_classes == c
        xs.append(np.floor(ann.points[sel, 0]))
        ys.append(np.floor(ann.points[sel, 1]))
        x, y = np.concatenate(xs), np.concatenate(ys)
        regions.append([x.min(), y.min(), x.max() + 1, y.max() + 1])
        classes.append(c)
    regions = clip_box(np.asarray(regions, np.float32).reshape(-1, 4), ann.height, ann.width)
    tag_only = []
    if tag_objects and ann.tags is not None:
        tag_only = sorted({int(c) for c in ann.tags} - {int(c) for c in box_classes} - labels)
        if len(tag_only) > 1:
            log.warning("%s: tagged with %d classes that have no box, scribble or click (%s); a prompt-less "
                        "object cannot tell them apart, so they are left out: give them a click",
                        ann.image_id, len(tag_only), tag_only)
            tag_only = []
    whole = np.tile(np.asarray([[0, 0, ann.width, ann.height]], np.float32), (len(tag_only), 1))
    n_box, n_pts, n_tag = len(box_classes), len(classes), len(tag_only)
    return ImageObjects(np.concatenate([boxes, regions, whole]).astype(np.float32),
                        np.concatenate([box_classes, np.asarray(classes, np.int64), np.asarray(tag_only, np.int64)]),
                        np.concatenate([np.ones(n_box, bool), np.zeros(n_pts + n_tag, bool)]),
                        np.concatenate([np.zeros(n_box + n_pts, bool), np.ones(n_tag, bool)]))


def _in_box(xy: np.ndarray, box: np.ndarray) -> np.ndarray:
    return (xy[:, 0] >= box[0]) & (xy[:, 0] < box[2]) & (xy[:, 1] >= box[1]) & (xy[:, 1] < box[3])


def _labelled_pixels(ann: ImageAnnotation, box: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Scribble pixels inside ``box``: ``float32 [M, 2]`` ``(x, y)`` and ``int64 [M]`` labels."""
    if ann.scribbles is None:
        return np.zeros((0, 2), np.float32), np.zeros((0,), np.int64)
    x0, y0 = int(np.floor(box[0])), int(np.floor(box[1]))
    x1, y1 = int(np.ceil(box[2])), int(np.ceil(box[3]))
    crop = ann.scribbles[y0:y1, x0:x1]
    yy, xx = np.nonzero(crop != IGNORE_INDEX)
    xy = np.stack([xx + x0, yy + y0], 1).astype(np.float32)
    return xy, crop[yy, xx].astype(np.int64)


def object_points(
    ann: ImageAnnotation,
    box: np.ndarray,
    cls: int,
    *,
    num_positive: int,
    num_negative: int,
    rng: np.random.Generator,
) -> Tuple[np.ndarray, np.ndarray]:
    """Positive then negative points of one object in the pixel frame: ``[Q, 2]`` and labels ``[Q]``."""
    xy, lab = _labelled_pixels(ann, box)
    inside = _in_box(ann.points, box) if len(ann.points) else np.zeros(0, bool)
    clicks, click_cls = ann.points[inside], ann.point_classes[inside]
    pos_clicks = clicks[click_cls == cls][:num_positive]
    pos = np.concatenate([pos_clicks, farthest_points(xy[lab == cls], num_positive - len(pos_clicks), rng)])
    neg_clicks = clicks[click_cls != cls][:num_negative]
    neg = np.concatenate([neg_clicks, farthest_points(xy[lab != cls], num_negative - len(neg_clicks), rng)])
    coords = np.concatenate([pos, neg]).astype(np.float32).reshape(-1, 2)
    labels = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))]).astype(np.float32)
    return coords, labels


def build_prompts(
    ann: ImageAnnotation,
    objects: ImageObjects,
    frame: SamFrame,
    *,
    mode: str = "both",
    num_positive: int = 3,
    num_negative: int = 2,
    seed: int = 0,
) -> ObjectPrompts:
    """Prompts of all objects of ``ann`` in the SAM input frame (module docstring).

    Args:
        ann: the image's weak labels (pixel frame).
        objects: its objects (:func:`image_objects`).
        frame: the image's :class:`~wsss.core.frames.SamFrame`.
        mode: ``box``, ``points`` or ``both``.
        num_positive, num_negative: maximum points of each kind per object.
        seed: sampling seed (combined with the image id).
    """
    if mode not in PROMPT_MODES:
        raise ValueError(f"prompt mode must be one of {PROMPT_MODES}, got {mode!r}")
    n = objects.num_objects
    box_prompt = objects.boxed & (mode in ("box", "both"))  # [N]: prompted by their box
    with_points = (~box_prompt | (mode in ("points", "both"))) & ~objects.promptless  # [N]: prompted by points
    boxes = frame.boxes_to_sam(objects.boxes) if box_prompt.any() else None
    box_objects = None if box_prompt.all() or not box_prompt.any() else box_prompt
    promptless = objects.promptless if objects.promptless.any() else None
    if n == 0 or not with_points.any():
        return ObjectPrompts(boxes, None, None, box_objects, promptless)
    rng = image_rng(seed, ann.image_id)
    per_object = []
    for box, cls, by_box, pts in zip(objects.boxes, objects.classes, box_prompt, with_points):
        if not pts:
            per_object.append((np.zeros((0, 2), np.float32), np.zeros(0, np.float32)))
            continue
        coords, labels = object_points(ann, box, int(cls), num_positive=num_positive, num_negative=num_negative, rng=rng)
        if not by_box and not (labels == 1).any():
            centre = np.array([[(box[0] + box[2]) / 2 - 0.5, (box[1] + box[3]) / 2 - 0.5]], np.float32)
            coords, labels = np.concatenate([centre, coords]), np.concatenate([[1.0], labels]).astype(np.float32)
        per_object.append((coords, labels))
    p = max(len(lab) for _, lab in per_object)
    if p == 0:
        return ObjectPrompts(boxes, None, None, box_objects, promptless)
    point_coords = np.zeros((n, p, 2), np.float32)
    point_labels = np.full((n, p), PAD_LABEL, np.float32)
    for i, (coords, labels) in enumerate(per_object):
        if len(labels):
            point_coords[i, : len(labels)] = frame.points_to_sam(coords)
            point_labels[i, : len(labels)] = labels
    return ObjectPrompts(boxes, point_coords, point_labels, box_objects, promptless)
