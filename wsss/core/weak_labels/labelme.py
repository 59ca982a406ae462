"""One image's weak labels from a LabelMe JSON file.

Shapes used: ``rectangle`` -> box (two corner pixels, both inside the box:
:func:`wsss.core.frames.labelme_rectangle_to_pixel`); ``line`` / ``linestrip`` -> scribble
strokes rasterised :data:`~wsss.core.weak_labels.scribblesup.STROKE_WIDTH` px wide (label
``background`` allowed, class 0); ``point`` -> click (``background`` allowed). Coordinates are 0-based
pixel indices ``(x, y)``. ``polygon`` shapes are ground truth, not weak labels
(:func:`read_labelme_polygons`): they and other shape types (``circle``, ...) are left out of the weak
labels with one warning per file. Labels are validated against the class list (``unknown_classes="ignore"``: skipped, one warning
per file).

LabelMe shows a JPEG with its EXIF orientation applied and records that view's size: the annotation's
``orientation`` is the one whose size matches ``imageHeight`` / ``imageWidth`` (EXIF first), so the
shapes and the pixels the pipeline reads agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence

import cv2
import numpy as np

from wsss.core.frames import labelme_rectangle_to_pixel
from wsss.core.weak_labels.annotation import ImageAnnotation
from wsss.core.weak_labels.checks import fit_boxes_to_image, fit_points_to_image
from wsss.core.weak_labels.classes import VOC_ALIASES, VOC_CLASSES, class_index
from wsss.core.weak_labels._json import load_json
from wsss.core.weak_labels.errors import (
    MalformedAnnotationError,
    PathLike,
    UnknownClassError,
    warn_file,
)
from wsss.core.weak_labels.images import choose_orientation, image_size
from wsss.core.weak_labels.scribblesup import STROKE_WIDTH, rasterise_strokes

_STROKE_TYPES = ("line", "linestrip")


def read_labelme(
    path: PathLike,
    *,
    image_dir: Optional[PathLike] = None,
    classes: Sequence[str] = VOC_CLASSES,
    thickness: int = STROKE_WIDTH,
    unknown_classes: str = "error",
) -> ImageAnnotation:
    """Read a LabelMe JSON file.

    Args:
        image_dir: folder ``imagePath`` is relative to; default: the JSON's folder.
        thickness: scribble stroke width in pixels.
        unknown_classes: ``"error"`` or ``"ignore"`` (shapes of other labels skipped, one warning).

    Returns:
        The image's annotation: ``image_id`` is the JSON file's stem; size from ``imageHeight`` /
        ``imageWidth`` (or the image header when absent); ``scribbles`` None when there is no stroke.

    Raises:
        MissingFileError: no JSON (or, without a size in it, no image).
        MalformedAnnotationError: not JSON, no ``shapes``, a shape without label/points, a rectangle
            without two corners, or a ``background`` rectangle.
        UnknownClassError: a label that is not a class.
    """
    path = Path(path)
    data, shapes, image_path, height, width, orientation = _read_file(path, image_dir)

    boxes, box_classes, strokes, points, point_classes, ignored, skipped = [], [], [], [], [], set(), set()
    for k, shape in enumerate(shapes):
        try:
            label, kind = str(shape["label"]), str(shape.get("shape_type") or "polygon")
            pts = np.asarray(shape["points"], np.float64).reshape(-1, 2)
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedAnnotationError(path, f"shapes[{k}] has no usable label/points ({exc!r})") from exc
        if kind not in ("rectangle", "point") + _STROKE_TYPES:
            ignored.add(kind)
            continue
        try:
            cls = class_index(label, classes, VOC_ALIASES)
        except KeyError as exc:
            if unknown_classes == "ignore":
                skipped.add(label)
                continue
            raise UnknownClassError(path, f"shapes[{k}]: {exc.args[0]}") from None
        if kind == "rectangle":
            if len(pts) != 2:
                raise MalformedAnnotationError(path, f"shapes[{k}] rectangle has {len(pts)} points, expected 2")
            if cls == 0:
                raise MalformedAnnotationError(path, f"shapes[{k}] is a rectangle labelled {label!r}")
            boxes.append(labelme_rectangle_to_pixel(*pts[0], *pts[1]))
            box_classes.append(cls)
        elif kind == "point":
            if len(pts) != 1:
                raise MalformedAnnotationError(path, f"shapes[{k}] point has {len(pts)} coordinates")
            points.append(pts[0])
            point_classes.append(cls)
        else:
            if len(pts) == 0:
                raise MalformedAnnotationError(path, f"shapes[{k}] {kind} has no points")
            strokes.append((pts, cls))
    if skipped:
        warn_file(path, f"label(s) {', '.join(sorted(map(repr, skipped)))} are not classes; their shapes were ignored")
    if ignored:
        warn_file(path, f"shape type(s) {', '.join(sorted(ignored))} are not weak labels and were ignored")

    box_arr, cls_arr = fit_boxes_to_image(np.asarray(boxes, np.float32), np.asarray(box_classes, np.int64),
                                          height=height, width=width, path=path)
    pt_arr, pt_cls = fit_points_to_image(np.asarray(points, np.float32), np.asarray(point_classes, np.int64),
                                         height=height, width=width, path=path)
    scribbles = rasterise_strokes(strokes, height=height, width=width, thickness=thickness) if strokes else None
    return ImageAnnotation(
        image_id=path.stem, image_path=image_path, height=height, width=width,
        boxes=box_arr, box_classes=cls_arr, scribbles=scribbles, points=pt_arr, point_classes=pt_cls,
        orientation=orientation,
    )


def _read_file(path: Path, image_dir: Optional[PathLike]):
    """``(data, shapes, image_path, height, width, orientation)`` of a LabelMe file."""
    data = load_json(path, what="LabelMe JSON")
    shapes = data.get("shapes") if isinstance(data, dict) else None
    if not isinstance(shapes, list):
        raise MalformedAnnotationError(path, "not a LabelMe file: expected an object with a 'shapes' list")
    image_path = (Path(image_dir) if image_dir is not None else path.parent) / str(data.get("imagePath") or f"{path.stem}.jpg")
    orientation = "exif"
    if data.get("imageHeight") and data.get("imageWidth"):
        height, width = int(data["imageHeight"]), int(data["imageWidth"])
        if image_path.is_file():
            orientation = choose_orientation(image_path, height=height, width=width, prefer=("exif", "stored"))
    else:
        height, width = image_size(image_path)
    return data, shapes, image_path, height, width, orientation


def labelme_labels(path: PathLike) -> List[str]:
    """The shape labels of a LabelMe file, in file order (for ``classes: {from: labelme}``)."""
    path = Path(path)
    data = load_json(path, what="LabelMe JSON")
    shapes = data.get("shapes") if isinstance(data, dict) else None
    if not isinstance(shapes, list):
        raise MalformedAnnotationError(path, "not a LabelMe file: expected an object with a 'shapes' list")
    return [str(s.get("label", "")).strip() for s in shapes if isinstance(s, dict) and s.get("label")]


def read_labelme_polygons(
    path: PathLike,
    *,
    image_dir: Optional[PathLike] = None,
    classes: Sequence[str] = VOC_CLASSES,
    unknown_classes: str = "error",
) -> Optional[np.ndarray]:
    """Ground truth from a LabelMe file's ``polygon`` shapes: ``uint8 [H, W]`` (0 where no polygon,
    later polygons over earlier ones), or None when the file has no polygon."""
    path = Path(path)
    _, shapes, _, height, width, _ = _read_file(path, image_dir)
    label_map = np.zeros((height, width), np.uint8)
    found = False
    for k, shape in enumerate(shapes):
        if not isinstance(shape, dict) or (shape.get("shape_type") or "polygon") != "polygon":
            continue
        try:
            label = str(shape["label"])
            pts = np.asarray(shape["points"], np.float64).reshape(-1, 2)
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedAnnotationError(path, f"shapes[{k}] has no usable label/points ({exc!r})") from exc
        try:
            cls = class_index(label, classes, VOC_ALIASES)
        except KeyError as exc:
            if unknown_classes == "ignore":
                continue
            raise UnknownClassError(path, f"shapes[{k}]: {exc.args[0]}") from None
        if len(pts) >= 3:
            cv2.fillPoly(label_map, [np.round(pts).astype(np.int32).reshape(-1, 1, 2)], int(cls))
            found = True
    return label_map if found else None
