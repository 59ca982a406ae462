"""Weak-label readers: every format becomes one :class:`ImageAnnotation` per image.

Coordinate conventions are in :mod:`wsss.core.weak_labels.annotation` and conversions in
:mod:`wsss.core.frames`; the error / warning policy in :mod:`.errors`.
"""

from wsss.core.weak_labels.annotation import ImageAnnotation
from wsss.core.weak_labels.classes import IGNORE_INDEX, VOC_ALIASES, VOC_CLASSES, class_index, voc_palette
from wsss.core.weak_labels.coco import CocoImage, coco_category_names, index_coco_instances, read_coco_instances
from wsss.core.weak_labels.errors import (
    CorruptImageError,
    FileProblem,
    InvalidMaskError,
    MalformedAnnotationError,
    MissingFileError,
    SizeMismatchError,
    UnknownClassError,
    WeakLabelError,
    WeakLabelWarning,
)
from wsss.core.weak_labels.images import (
    ORIENTATIONS,
    check_label_values,
    choose_orientation,
    image_size,
    read_image,
    read_label_png,
)
from wsss.core.weak_labels.labelme import labelme_labels, read_labelme, read_labelme_polygons
from wsss.core.weak_labels.points import Clicks, read_points_json
from wsss.core.weak_labels.scribblesup import (
    STROKE_WIDTH,
    parse_scribblesup_xml,
    rasterise_strokes,
    read_scribble_png,
    read_scribblesup_xml,
)
from wsss.core.weak_labels.voc import LoadResult, VocXml, parse_voc_xml, read_id_list

__all__ = [
    "ImageAnnotation",
    "IGNORE_INDEX", "VOC_ALIASES", "VOC_CLASSES", "class_index", "voc_palette",
    "CocoImage", "coco_category_names", "index_coco_instances", "read_coco_instances",
    "labelme_labels", "read_labelme", "read_labelme_polygons",
    "CorruptImageError", "FileProblem", "InvalidMaskError", "MalformedAnnotationError", "MissingFileError",
    "SizeMismatchError", "UnknownClassError", "WeakLabelError", "WeakLabelWarning",
    "ORIENTATIONS", "check_label_values", "choose_orientation", "image_size", "read_image", "read_label_png",
    "Clicks", "read_points_json",
    "STROKE_WIDTH", "parse_scribblesup_xml", "rasterise_strokes", "read_scribble_png", "read_scribblesup_xml",
    "LoadResult", "VocXml", "parse_voc_xml", "read_id_list",
]
