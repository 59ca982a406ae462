"""Scribbles as ScribbleSup label maps (PNG) and as the original ScribbleSup XML polylines.

PNG convention: ``uint8 [H, W]``, 255 unlabeled, 0 background strokes, ``1..C`` class strokes.
XML: one ``<polygon>`` per stroke (a class ``<tag>``, 0-based ``<point>`` pixel indices), class
names as :data:`SCRIBBLESUP_ALIASES` maps them, each stroke drawn :data:`STROKE_WIDTH` pixels wide,
a later stroke over an earlier one (:func:`rasterise_strokes`). In full: docs/data.md ("ScribbleSup
scribbles").
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

from wsss.core.weak_labels._xml import child_number, parse_xml, xml_image_size
from wsss.core.weak_labels.classes import IGNORE_INDEX, VOC_ALIASES, VOC_CLASSES, class_index
from wsss.core.weak_labels.errors import (
    MalformedAnnotationError,
    PathLike,
    SizeMismatchError,
    UnknownClassError,
    warn_file,
)
from wsss.core.weak_labels.images import read_label_png

STROKE_WIDTH = 3

#: The ScribbleSup release's class names that are not VOC's (its list, in VOC order: plane, bike,
#: bird, boat, bottle, bus, car, cat, chair, cow, table, dog, horse, motorbike, person, plant,
#: sheep, sofa, train, monitor, and background): VOC's aliases (plane, monitor) and three more.
SCRIBBLESUP_ALIASES = {**VOC_ALIASES, "bike": "bicycle", "table": "diningtable", "plant": "pottedplant"}

Stroke = Tuple[np.ndarray, int]  # (float [K, 2] (x, y) pixel indices, class index 0..C)


def read_scribble_png(
    path: PathLike, *, height: Optional[int] = None, width: Optional[int] = None, num_foreground: int = 20
) -> np.ndarray:
    """Read a ScribbleSup PNG label map. Returns ``uint8 [H, W]`` (255 unlabeled, 0 bg, ``1..C``).

    Raises:
        SizeMismatchError: its size differs from the given image size.
        InvalidMaskError: values outside ``0..C`` / 255.
    """
    return read_label_png(path, num_foreground=num_foreground, height=height, width=width, what="scribble map")


def rasterise_strokes(
    strokes: Sequence[Stroke], *, height: int, width: int, thickness: int = STROKE_WIDTH
) -> np.ndarray:
    """Draw polylines into a label map. Returns ``uint8 [H, W]``, 255 where no stroke passes.

    Each stroke is drawn as a 1 px 8-connected polyline through the rounded vertices, then dilated by
    a ``thickness x thickness`` square: a horizontal or vertical stroke is exactly ``thickness`` pixels
    wide, and a single point becomes a ``thickness x thickness`` square. Later strokes overwrite
    earlier ones where they cross.

    Args:
        strokes: ``(points, class)`` pairs; ``points`` is ``[K, 2]`` ``(x, y)`` pixel indices, ``K >= 1``.
        thickness: stroke width in pixels (odd).
    """
    label_map = np.full((height, width), IGNORE_INDEX, np.uint8)
    kernel = np.ones((thickness, thickness), np.uint8)
    line = np.zeros((height, width), np.uint8)
    for points, cls in strokes:
        pts = np.round(np.asarray(points, np.float64).reshape(-1, 2)).astype(np.int32)
        if len(pts) == 0:
            continue
        line[:] = 0
        cv2.polylines(line, [pts.reshape(-1, 1, 2)], False, 1, 1, cv2.LINE_8)
        inside = (pts[:, 0] >= 0) & (pts[:, 0] < width) & (pts[:, 1] >= 0) & (pts[:, 1] < height)
        line[pts[inside, 1], pts[inside, 0]] = 1  # single points, which polylines may skip
        label_map[cv2.dilate(line, kernel).astype(bool)] = int(cls)
    return label_map


def parse_scribblesup_xml(
    path: PathLike, *, classes: Sequence[str] = VOC_CLASSES, unknown_classes: str = "error"
) -> Tuple[Optional[Tuple[int, int]], list]:
    """Parse the strokes of a ScribbleSup XML file (``unknown_classes="ignore"``: strokes of other names
    are left out, one warning per file).

    Returns:
        ``(size, strokes)``: ``size`` is ``(height, width)`` from ``<size>`` or None if absent;
        ``strokes`` a list of ``(float32 [K, 2] (x, y), class index)``.

    Raises:
        MissingFileError, MalformedAnnotationError, UnknownClassError (all name the file).
    """
    path = Path(path)
    root = parse_xml(path, what="scribble XML")
    size = xml_image_size(root, path)
    strokes, skipped = [], set()
    for poly in root.iter("polygon"):
        name_elem = poly.find("tag")
        if name_elem is None:
            name_elem = poly.find("name")
        if name_elem is None or not (name_elem.text or "").strip():
            raise MalformedAnnotationError(path, "<polygon> has no <tag> class name")
        try:
            cls = class_index(name_elem.text, classes, SCRIBBLESUP_ALIASES)
        except KeyError as exc:
            if unknown_classes == "ignore":
                skipped.add(name_elem.text.strip())
                continue
            raise UnknownClassError(path, exc.args[0]) from None
        pts = [(child_number(p, "X", path), child_number(p, "Y", path)) for p in poly.findall("point")]
        if not pts:
            raise MalformedAnnotationError(path, f"<polygon> of class {name_elem.text.strip()!r} has no <point>")
        strokes.append((np.asarray(pts, np.float32), cls))
    if skipped:
        warn_file(path, f"stroke name(s) {', '.join(sorted(map(repr, skipped)))} are not classes and were ignored")
    return size, strokes


def read_scribblesup_xml(
    path: PathLike,
    *,
    height: Optional[int] = None,
    width: Optional[int] = None,
    classes: Sequence[str] = VOC_CLASSES,
    thickness: int = STROKE_WIDTH,
    unknown_classes: str = "error",
) -> np.ndarray:
    """Read a ScribbleSup XML file and rasterise its strokes. Returns ``uint8 [H, W]``.

    Args:
        height, width: the image size; if omitted, the XML's ``<size>`` is used. When both are known
            and differ, :class:`SizeMismatchError` is raised.
        thickness: stroke width in pixels (3, as the PNG convention).
    """
    path = Path(path)
    size, strokes = parse_scribblesup_xml(path, classes=classes, unknown_classes=unknown_classes)
    if height is None or width is None:
        if size is None:
            raise MalformedAnnotationError(path, "no <size> in the XML and no image size given")
        height, width = size
    elif size is not None and size != (height, width):
        raise SizeMismatchError(
            path, f"scribble XML is {size[1]}x{size[0]} (WxH) but the image is {width}x{height}"
        )
    return rasterise_strokes(strokes, height=height, width=width, thickness=thickness)
