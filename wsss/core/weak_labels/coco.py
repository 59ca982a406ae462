"""Boxes from a COCO instances JSON (``instances_*.json`` or any tool exporting that format).

Category names are mapped to the dataset's classes (COCO ``airplane`` -> VOC ``aeroplane``,
``motorcycle`` -> ``motorbike``, ``couch`` -> ``sofa``, ``tv`` -> ``tvmonitor``, ...; see
:data:`~wsss.core.weak_labels.classes.VOC_ALIASES`); categories with no such class (``giraffe``)
are ignored, as are crowd annotations (``iscrowd: 1``, not one object) unless ``include_crowd``.
Boxes ``[x, y, w, h]`` are pixel edges (:func:`wsss.core.frames.coco_box_to_pixel`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from wsss.core.frames import coco_box_to_pixel
from wsss.core.weak_labels.annotation import ImageAnnotation
from wsss.core.weak_labels._json import load_json
from wsss.core.weak_labels.checks import fit_boxes_to_image
from wsss.core.weak_labels.classes import VOC_ALIASES, VOC_CLASSES, class_index
from wsss.core.weak_labels.errors import MalformedAnnotationError, PathLike, UnknownClassError, warn_file


def read_coco_instances(
    path: PathLike,
    *,
    image_dir: Optional[PathLike] = None,
    classes: Sequence[str] = VOC_CLASSES,
    aliases: Dict[str, str] = VOC_ALIASES,
    include_crowd: bool = False,
) -> List[ImageAnnotation]:
    """Read a COCO instances JSON into one :class:`ImageAnnotation` per ``images`` entry (file order).

    Args:
        image_dir: folder of the images (``file_name`` is relative to it); default: the JSON's folder.
        classes, aliases: the class list categories are mapped to.
        include_crowd: keep ``iscrowd`` boxes.

    Returns:
        Annotations with ``image_id`` = ``file_name`` stem, boxes clipped to ``height x width`` (one
        warning per image if clipped, empty boxes dropped with a warning).

    Raises:
        MissingFileError, MalformedAnnotationError: file absent, not JSON, missing fields, or an
            annotation pointing at an unknown image or category id.
    """
    path = Path(path)
    data = load_json(path, what="COCO JSON")
    image_dir = Path(image_dir) if image_dir is not None else path.parent
    try:
        images = {int(im["id"]): im for im in data["images"]}
        categories = {int(c["id"]): str(c["name"]) for c in data.get("categories", [])}
        annotations = list(data.get("annotations", []))
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedAnnotationError(path, f"not a COCO instances file ({exc!r})") from exc

    category_to_class: Dict[int, int] = {}
    for cat_id, name in categories.items():
        try:
            cls = class_index(name, classes, aliases)
        except KeyError:
            continue
        if cls > 0:
            category_to_class[cat_id] = cls

    boxes: Dict[int, list] = {i: [] for i in images}
    labels: Dict[int, list] = {i: [] for i in images}
    for k, ann in enumerate(annotations):
        try:
            image_id, cat_id = int(ann["image_id"]), int(ann["category_id"])
            crowd = bool(ann.get("iscrowd", 0))
            x, y, w, h = (float(v) for v in ann["bbox"])
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedAnnotationError(path, f"annotations[{k}] lacks image_id/category_id/bbox ({exc!r})") from exc
        if image_id not in images:
            raise MalformedAnnotationError(path, f"annotations[{k}] refers to unknown image id {image_id}")
        if cat_id not in categories:
            raise MalformedAnnotationError(path, f"annotations[{k}] refers to unknown category id {cat_id}")
        if cat_id not in category_to_class or (crowd and not include_crowd):
            continue
        boxes[image_id].append(coco_box_to_pixel(x, y, w, h))
        labels[image_id].append(category_to_class[cat_id])

    out = []
    for image_id, im in images.items():
        try:
            file_name, height, width = str(im["file_name"]), int(im["height"]), int(im["width"])
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedAnnotationError(path, f"image {image_id} lacks file_name/height/width") from exc
        kept_boxes, kept_labels = fit_boxes_to_image(
            np.asarray(boxes[image_id], np.float32), np.asarray(labels[image_id], np.int64),
            height=height, width=width, path=f"{path} [{file_name}]",
        )
        out.append(ImageAnnotation(
            image_id=Path(file_name).stem, image_path=image_dir / file_name, height=height, width=width,
            boxes=kept_boxes, box_classes=kept_labels,
        ))
    return out


@dataclass
class CocoImage:
    """One ``images`` entry of a COCO file with its objects, as :func:`index_coco_instances` keeps it.

    Attributes:
        file_name: ``file_name`` (relative to the image folder).
        height, width: the recorded size.
        boxes: ``float32 [N, 4]`` pixel-edge boxes (not clipped), crowd objects left out.
        classes: ``int64 [N]`` class of each box.
        segments: ``(segmentation, class, crowd)`` of every object with a segmentation (ground truth).
        error: why the image cannot be used (a duplicate file name, an unknown category id), or None.
    """

    file_name: str
    height: int
    width: int
    boxes: List[Tuple[float, float, float, float]] = field(default_factory=list)
    classes: List[int] = field(default_factory=list)
    segments: List[Tuple[Any, int, bool]] = field(default_factory=list)
    error: Optional[str] = None


def coco_category_names(path: PathLike, *, data: Any = None) -> List[str]:
    """The category names of a COCO file, in category-id order (a class list's ``1..C``); ``data``: its
    already parsed content (a large file is parsed once)."""
    path = Path(path)
    data = load_json(path, what="COCO JSON") if data is None else data
    try:
        cats = sorted((int(c["id"]), str(c["name"])) for c in data.get("categories", []))
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise MalformedAnnotationError(path, f"not a COCO instances file ({exc!r})") from exc
    return [name for _, name in cats]


def segmentation_box(segmentation: Any, height: int, width: int) -> Optional[Tuple[float, float, float, float]]:
    """The pixel-edge box ``(x0, y0, x1, y1)`` around a COCO polygon list or RLE, or None if empty."""
    if isinstance(segmentation, list):
        xy = np.concatenate([np.asarray(p, np.float64).reshape(-1, 2) for p in segmentation if len(p) >= 2] or
                            [np.zeros((0, 2))])
        if not len(xy):
            return None
        return float(xy[:, 0].min()), float(xy[:, 1].min()), float(xy[:, 0].max()), float(xy[:, 1].max())
    mask = segmentation_mask(segmentation, height, width)
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if not len(rows):
        return None
    return float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)


def segmentation_mask(segmentation: Any, height: int, width: int) -> np.ndarray:
    """``bool [H, W]`` of a COCO segmentation (polygon list, RLE or uncompressed RLE), via pycocotools."""
    from pycocotools import mask as mask_api

    if isinstance(segmentation, list):
        rles = mask_api.frPyObjects([list(map(float, p)) for p in segmentation if len(p) >= 6], height, width)
        if not rles:
            return np.zeros((height, width), bool)
        rle = mask_api.merge(rles)
    elif isinstance(segmentation.get("counts"), list):
        rle = mask_api.frPyObjects(segmentation, height, width)
    else:
        rle = dict(segmentation)
        if isinstance(rle["counts"], str):
            rle["counts"] = rle["counts"].encode()
    return mask_api.decode(rle).astype(bool)


def index_coco_instances(
    path: PathLike,
    *,
    classes: Sequence[str],
    aliases: Dict[str, str] = VOC_ALIASES,
    unknown_classes: str = "error",
    polygon_only: str = "box",
    include_crowd: bool = False,
    data: Any = None,
) -> Dict[str, CocoImage]:
    """Index a COCO instances file by image id (``file_name`` stem), keeping each image's problem apart.

    Problems of one image (its ``file_name`` listed twice, an annotation with a category id that is not
    in ``categories``, an object with a segmentation but no ``bbox`` under ``polygon_only="error"``) are
    recorded in :attr:`CocoImage.error`, so the other images go on. Annotations of an image id that is
    not in ``images`` are skipped with one warning.

    Args:
        classes, aliases: the dataset's class list; category names are matched to it by name.
        unknown_classes: ``"error"``: a category name that is not a class raises; ``"ignore"``: its
            objects are left out, with one warning per file.
        polygon_only: ``"box"``: an object without ``bbox`` gets its segmentation's box (one warning per
            file); ``"error"``: that image is refused.
        data: the file's already parsed content, if any.

    Raises:
        MissingFileError, MalformedAnnotationError: file absent, empty, not JSON, without ``images``.
        UnknownClassError: a category name outside ``classes`` (``unknown_classes="error"``); the message
            lists the valid names.
    """
    path = Path(path)
    data = load_json(path, what="COCO JSON") if data is None else data
    try:
        images = {int(im["id"]): im for im in data["images"]}
        categories = {int(c["id"]): str(c["name"]) for c in data.get("categories", [])}
        annotations = list(data.get("annotations", []))
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise MalformedAnnotationError(path, f"not a COCO instances file ({exc!r})") from exc

    category_to_class: Dict[int, int] = {}
    unknown = []
    for cat_id, name in categories.items():
        try:
            category_to_class[cat_id] = class_index(name, classes, aliases)
        except KeyError:
            unknown.append(name)
    if unknown and unknown_classes == "error":
        raise UnknownClassError(path, f"categor{'y' if len(unknown) == 1 else 'ies'} {', '.join(map(repr, unknown))} "
                                      f"not in the class list; valid classes: {', '.join(classes[1:])} (or set "
                                      "unknown_classes: ignore in the dataset description)")
    if unknown:
        warn_file(path, f"categories {', '.join(map(repr, unknown))} are not classes; their objects are ignored")

    by_id: Dict[int, CocoImage] = {}
    out: Dict[str, CocoImage] = {}
    for image_id, im in images.items():
        try:
            entry = CocoImage(file_name=str(im["file_name"]), height=int(im["height"]), width=int(im["width"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedAnnotationError(path, f"image {image_id} lacks file_name/height/width ({exc!r})") from exc
        key = Path(entry.file_name).stem
        if key in out:
            out[key].error = f"file name {entry.file_name!r} is listed by two images entries (one annotation each)"
            entry = out[key]
        out[key] = entry
        by_id[image_id] = entry

    orphans, derived = 0, 0
    for k, ann in enumerate(annotations):
        try:
            image_id, cat_id = int(ann["image_id"]), int(ann["category_id"])
            crowd = bool(ann.get("iscrowd", 0))
        except (KeyError, TypeError, ValueError) as exc:
            raise MalformedAnnotationError(path, f"annotations[{k}] lacks image_id/category_id ({exc!r})") from exc
        entry = by_id.get(image_id)
        if entry is None:
            orphans += 1
            continue
        if cat_id not in categories:
            entry.error = f"annotations[{k}] has category id {cat_id}, which is not in categories"
            continue
        if cat_id not in category_to_class:
            continue
        cls = category_to_class[cat_id]
        segmentation = ann.get("segmentation")
        if segmentation:
            entry.segments.append((segmentation, cls, crowd))
        if crowd and not include_crowd:
            continue
        bbox = ann.get("bbox")
        if bbox is not None and len(bbox) == 4:
            try:
                x, y, w, h = (float(v) for v in bbox)
            except (TypeError, ValueError) as exc:
                raise MalformedAnnotationError(path, f"annotations[{k}] has a bad bbox {bbox!r}") from exc
            entry.boxes.append(coco_box_to_pixel(x, y, w, h))
        elif segmentation:
            if polygon_only == "error":
                entry.error = f"annotations[{k}] has a segmentation but no bbox (polygon_only: error)"
                continue
            box = segmentation_box(segmentation, entry.height, entry.width)
            if box is None:
                continue
            entry.boxes.append(box)
            derived += 1
        else:
            raise MalformedAnnotationError(path, f"annotations[{k}] has neither bbox nor segmentation")
        entry.classes.append(cls)
    if orphans:
        warn_file(path, f"{orphans} annotation(s) refer to image ids not in images and were skipped")
    if derived:
        warn_file(path, f"{derived} object(s) have a segmentation but no bbox: their box is the segmentation's")
    return out
