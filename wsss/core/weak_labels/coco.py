"""Boxes from a COCO instances JSON (``instances_*.json`` or any tool exporting that format).

Category names are mapped to the dataset's classes (COCO ``airplane`` -> VOC ``aeroplane``,
``motorcycle`` -> ``motorbike``, ``couch`` -> ``sofa``, ``tv`` -> ``tvmonitor``, ...; see
:data:`~wsss.core.weak_labels.classes.VOC_ALIASES`); categories with no such class (``giraffe``)
are ignored, as are crowd annotations (``iscrowd: 1``, not one object) unless ``include_crowd``.
Boxes ``[x, y, w, h]`` are pixel edges (:func:`wsss.core.frames.coco_box_to_pixel`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from wsss.core.frames import coco_box_to_pixel
from wsss.core.weak_labels.annotation import ImageAnnotation
from wsss.core.weak_labels._json import load_json
from wsss.core.weak_labels.checks import fit_boxes_to_image
from wsss.core.weak_labels.classes import VOC_ALIASES, VOC_CLASSES, class_index
from wsss.core.weak_labels.errors import MalformedAnnotationError, PathLike


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
