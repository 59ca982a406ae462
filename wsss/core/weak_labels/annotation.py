"""One in-memory representation of an image and its weak labels, whatever file format they came from.

Coordinate convention (the only one used in memory; readers convert on the way in, see
:mod:`wsss.core.frames` for every other frame):

* Pixel ``(row, col)`` = ``(y, x)``, 0-based; ``x`` grows to the right, ``y`` downwards.
* Boxes are ``(x0, y0, x1, y1)`` in pixel-edge coordinates, 0-based and half-open: the box covers
  pixels with ``x0 <= x < x1`` and ``y0 <= y < y1``. A VOC XML box ``xmin..xmax`` (1-based,
  inclusive) is ``x0 = xmin - 1, x1 = xmax`` (:func:`wsss.core.frames.voc_box_to_pixel`).
* Points are ``(x, y)`` 0-based pixel indices (floats allowed): a click at ``(3.0, 5.0)`` is the pixel
  in column 3, row 5.
* Scribbles are a label map the size of the image: 255 unlabeled, 0 background, ``1..C`` a class.
* Tags are the classes ``1..C`` the image contains (image-level labels), or None: not annotated.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from wsss.core.weak_labels.classes import IGNORE_INDEX
from wsss.core.weak_labels.images import read_image


@dataclass
class ImageAnnotation:
    """An image with its weak labels and, where available, its ground truth.

    Attributes:
        image_id: the dataset id (file stem), e.g. ``2007_000032``.
        image_path: path of the RGB image.
        height, width: image size in pixels.
        boxes: ``float32 [N, 4]`` boxes ``(x0, y0, x1, y1)``, half-open pixel edges (module docstring).
        box_classes: ``int64 [N]`` class index of each box, in ``1..C``.
        scribbles: ``uint8 [H, W]`` label map (255 unlabeled, 0 background, ``1..C``), or None.
        points: ``float32 [P, 2]`` click positions ``(x, y)``.
        point_classes: ``int64 [P]`` class of each click, 0 for a background click.
        gt_path: path of the ground-truth label PNG (0..C, 255 void), or None.
        orientation: how the pixels are read (:data:`wsss.core.weak_labels.images.ORIENTATIONS`):
            ``"exif"`` (as viewers show the image) unless the annotation describes the stored pixels.
        gt: ``uint8 [H, W]`` ground truth drawn from the annotation file (COCO / LabelMe polygons) when
            there is no ``gt_path``, or None.
        tags: ``int64 [T]`` classes the image is tagged with (:mod:`wsss.core.weak_labels.tags`),
            increasing; None when it has no tag file.
    """

    image_id: str
    image_path: Path
    height: int
    width: int
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    box_classes: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    scribbles: Optional[np.ndarray] = None
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    point_classes: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    gt_path: Optional[Path] = None
    orientation: str = "exif"
    gt: Optional[np.ndarray] = None
    tags: Optional[np.ndarray] = None

    def read_image(self) -> np.ndarray:
        """The image's ``uint8 [H, W, 3]`` RGB pixels in the annotation's orientation."""
        return read_image(self.image_path, orientation=self.orientation)

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        self.box_classes = np.asarray(self.box_classes, np.int64).reshape(-1)
        self.points = np.asarray(self.points, np.float32).reshape(-1, 2)
        self.point_classes = np.asarray(self.point_classes, np.int64).reshape(-1)
        if self.tags is not None:
            self.tags = np.unique(np.asarray(self.tags, np.int64).reshape(-1))
        if len(self.boxes) != len(self.box_classes):
            raise ValueError(f"{self.image_id}: {len(self.boxes)} boxes but {len(self.box_classes)} box classes")
        if len(self.points) != len(self.point_classes):
            raise ValueError(f"{self.image_id}: {len(self.points)} points but {len(self.point_classes)} classes")
        if self.scribbles is not None and self.scribbles.shape != (self.height, self.width):
            raise ValueError(
                f"{self.image_id}: scribble map is {self.scribbles.shape[1]}x{self.scribbles.shape[0]} (WxH) "
                f"but the image is {self.width}x{self.height}"
            )

        if self.gt is not None and self.gt.shape != (self.height, self.width):
            raise ValueError(f"{self.image_id}: ground truth is {self.gt.shape[1]}x{self.gt.shape[0]} (WxH) "
                             f"but the image is {self.width}x{self.height}")

    @property
    def num_objects(self) -> int:
        return len(self.boxes)

    @property
    def has_weak_labels(self) -> bool:
        """True if there is at least one box, one scribble pixel, one click or one tag."""
        has_scribble = self.scribbles is not None and bool((self.scribbles != IGNORE_INDEX).any())
        has_tag = self.tags is not None and len(self.tags) > 0
        return self.num_objects > 0 or has_scribble or len(self.points) > 0 or has_tag

    def labelled_classes(self) -> np.ndarray:
        """``int64 [T]`` the classes its boxes, scribbles and clicks name (increasing, distinct)."""
        named = [self.box_classes, self.point_classes]
        if self.scribbles is not None:
            named.append(np.unique(self.scribbles).astype(np.int64))
        found = np.unique(np.concatenate(named))
        return found[(found > 0) & (found != IGNORE_INDEX)]


#: The weak-label kinds an experiment may use.
WEAK_LABEL_KINDS = ("boxes", "scribbles", "points", "tags")
#: The kinds a run uses unless its config says otherwise (tags are asked for by name).
DEFAULT_WEAK_LABELS = ("boxes", "scribbles", "points")

#: Named weak-label settings (``WEAK_LABELS=`` of ``make bench-quality`` / ``make demo``): the kinds
#: used, and the prompts that fit them (boxes prompt as boxes; without boxes, objects come from the
#: scribbles / clicks and are prompted by points).
WEAK_LABEL_SETTINGS = {
    "boxes": (("boxes",), "box"),
    "scribbles": (("scribbles",), "points"),
    "points": (("points",), "points"),
    "boxes+scribbles": (("boxes", "scribbles"), "both"),
    "scribbles+points": (("scribbles", "points"), "points"),
    "all": (("boxes", "scribbles", "points"), "both"),
}


def select_weak_labels(ann: ImageAnnotation, kinds) -> ImageAnnotation:
    """A copy of ``ann`` with only the weak-label kinds in ``kinds`` (of :data:`WEAK_LABEL_KINDS`).

    With ``tags`` selected, an image without a tag file is tagged with the classes all its weak labels
    name (:meth:`ImageAnnotation.labelled_classes`, before the others are dropped): the image-level
    labels of VOC are the classes of its annotations.
    """
    changes = {}
    if "tags" in kinds:
        if ann.tags is None:
            changes.update(tags=ann.labelled_classes())
    elif ann.tags is not None:
        changes.update(tags=None)
    if "boxes" not in kinds:
        changes.update(boxes=np.zeros((0, 4), np.float32), box_classes=np.zeros((0,), np.int64))
    if "scribbles" not in kinds:
        changes.update(scribbles=None)
    if "points" not in kinds:
        changes.update(points=np.zeros((0, 2), np.float32), point_classes=np.zeros((0,), np.int64))
    return dataclasses.replace(ann, **changes) if changes else ann
