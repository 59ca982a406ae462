"""Class lists and the VOC colour palette.

Label values everywhere in the toolkit: 0 background, 1..20 the VOC classes in the order below,
255 void / unlabeled (ignored by losses and metrics).
"""

from __future__ import annotations

from typing import Dict, Sequence, Tuple

import numpy as np

IGNORE_INDEX = 255

VOC_CLASSES: Tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)

# Names that annotation tools (COCO, LabelMe users) commonly write for VOC classes.
VOC_ALIASES: Dict[str, str] = {
    "airplane": "aeroplane", "plane": "aeroplane", "motorcycle": "motorbike", "dining table": "diningtable",
    "dining_table": "diningtable", "potted plant": "pottedplant", "potted_plant": "pottedplant",
    "couch": "sofa", "tv": "tvmonitor", "tv_monitor": "tvmonitor", "monitor": "tvmonitor",
}


def voc_palette() -> np.ndarray:
    """The standard 256-entry VOC palette as a ``256x3`` uint8 array (bit-interleaved colour map)."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for label in range(256):
        c, r, g, b = label, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette[label] = (r, g, b)
    return palette


def class_index(name: str, classes: Sequence[str] = VOC_CLASSES, aliases: Dict[str, str] = VOC_ALIASES) -> int:
    """Index of a class name (case-insensitive, common aliases accepted).

    Raises:
        KeyError: the name is not a class of ``classes``; the message lists the valid names.
    """
    key = name.strip().lower()
    lowered = [c.lower() for c in classes]
    if key not in lowered:  # an exact name wins over an alias (COCO's own "tv" in a COCO class list)
        key = aliases.get(key, key)
    if key not in lowered:
        raise KeyError(f"unknown class name {name!r}; valid classes: {', '.join(classes[1:])}")
    return lowered.index(key)
