"""PASCAL VOC's files: annotation XMLs (boxes) and ``ImageSets`` id lists, and the batch loading
every dataset shares. The VOC layout itself is a dataset description (configs/datasets/voc2012.yaml,
:func:`wsss.core.datasets.voc_dataset`).

Box conversion goes through :func:`wsss.core.frames.voc_box_to_pixel` only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from wsss.core.frames import voc_box_to_pixel
from wsss.core.weak_labels._xml import child_number, child_text, parse_xml, xml_image_size
from wsss.core.weak_labels.annotation import ImageAnnotation
from wsss.core.weak_labels.classes import VOC_ALIASES, VOC_CLASSES, class_index
from wsss.core.weak_labels.errors import (
    FileProblem,
    MalformedAnnotationError,
    MissingFileError,
    PathLike,
    UnknownClassError,
    WeakLabelError,
    warn_file,
)


#: Ground truth of the images of train_aug (VOC's own masks and SBD's, as ``wsss-voc-data`` makes it).
AUG_GT_DIR = "SegmentationClassAug"


@dataclass(frozen=True)
class VocXml:
    """The content of one VOC annotation XML, boxes already in the pixel frame (not clipped).

    Attributes:
        filename: ``<filename>``, or None.
        size: ``(height, width)`` from ``<size>``, or None.
        boxes: ``float32 [N, 4]`` ``(x0, y0, x1, y1)`` half-open pixel edges.
        classes: ``int64 [N]`` class indices ``1..C``.
        difficult: ``bool [N]``.
    """

    filename: Optional[str]
    size: Optional[Tuple[int, int]]
    boxes: np.ndarray
    classes: np.ndarray
    difficult: np.ndarray


def parse_voc_xml(path: PathLike, *, classes: Sequence[str] = VOC_CLASSES, unknown_classes: str = "error") -> VocXml:
    """Parse a VOC annotation XML.

    ``unknown_classes="ignore"``: objects whose name is not a class are left out (one warning per file).

    Raises:
        MissingFileError: no such file.
        MalformedAnnotationError: not XML, or an ``<object>`` without ``<name>`` / numeric ``<bndbox>``.
        UnknownClassError: a ``<name>`` that is not one of ``classes`` (common aliases accepted), or
            ``background``.
    """
    path = Path(path)
    root = parse_xml(path, what="annotation XML")
    size = xml_image_size(root, path)
    boxes, labels, difficult, skipped = [], [], [], set()
    for obj in root.findall("object"):
        name = child_text(obj, "name", path)
        try:
            cls = class_index(name, classes, VOC_ALIASES)
        except KeyError as exc:
            if unknown_classes == "ignore":
                skipped.add(name)
                continue
            raise UnknownClassError(path, exc.args[0]) from None
        if cls == 0:
            raise UnknownClassError(path, f"object class {name!r} is the background class")
        bnd = obj.find("bndbox")
        if bnd is None:
            raise MalformedAnnotationError(path, f"<object> {name!r} has no <bndbox>")
        xmin, ymin, xmax, ymax = (child_number(bnd, t, path) for t in ("xmin", "ymin", "xmax", "ymax"))
        boxes.append(voc_box_to_pixel(xmin, ymin, xmax, ymax))
        labels.append(cls)
        diff = obj.find("difficult")
        difficult.append(diff is not None and (diff.text or "0").strip() == "1")
    if skipped:
        warn_file(path, f"object name(s) {', '.join(sorted(map(repr, skipped)))} are not classes and were ignored")
    filename = root.findtext("filename")
    return VocXml(
        filename=filename.strip() if filename else None,
        size=size,
        boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
        classes=np.asarray(labels, np.int64),
        difficult=np.asarray(difficult, bool),
    )


def read_id_list(path: PathLike) -> List[str]:
    """Image ids of an ``ImageSets`` list: the first token of each non-empty line, or, in DeepLab's
    two-column lists (``/JPEGImages/<id>.jpg /SegmentationClassAug/<id>.png``), that file's stem."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(path, "id list not found")
    ids = []
    for line in path.read_text().splitlines():
        if line.strip():
            token = line.split()[0]
            ids.append(Path(token).stem if "/" in token or token.lower().endswith((".jpg", ".png")) else token)
    return ids


@dataclass
class LoadResult:
    """What :meth:`BatchLoading.load_all` returns: the loaded images and the skipped ones."""

    annotations: List[ImageAnnotation] = field(default_factory=list)
    problems: List[FileProblem] = field(default_factory=list)

    def report(self) -> str:
        """Human-readable summary: counts, then one line per skipped image."""
        lines = [f"loaded {len(self.annotations)} image(s), skipped {len(self.problems)}"]
        lines += [f"  {p}" for p in self.problems]
        return "\n".join(lines)


class BatchLoading:
    """``iter_valid`` and ``load_all`` for a dataset that has ``ids`` and ``load(image_id)``."""

    ids: List[str]
    load: Callable[[str], ImageAnnotation]

    def iter_valid(self, problems: Optional[List[FileProblem]] = None) -> Iterator[ImageAnnotation]:
        """Yield the images that load, skipping the others; each skip is appended to ``problems``."""
        for image_id in self.ids:
            try:
                annotation = self.load(image_id)
            except WeakLabelError as exc:
                if problems is not None:
                    problems.append(FileProblem.from_error(image_id, exc))
                continue
            yield annotation

    def load_all(self, *, errors: str = "raise") -> LoadResult:
        """Load every id.

        Args:
            errors: ``"raise"``: the first bad file raises its :class:`WeakLabelError`; ``"skip"``: bad
                images are left out and listed in :attr:`LoadResult.problems`.
        """
        if errors not in ("raise", "skip"):
            raise ValueError(f"errors must be 'raise' or 'skip', got {errors!r}")
        if errors == "raise":
            return LoadResult(annotations=[self.load(i) for i in self.ids])
        result = LoadResult()
        result.annotations = list(self.iter_valid(result.problems))
        return result
