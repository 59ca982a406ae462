"""PASCAL VOC layout: XML boxes, id lists, and :class:`VocDataset`, which assembles one
:class:`~wsss.core.weak_labels.annotation.ImageAnnotation` per image id.

Layout under ``root`` (``data/VOCdevkit/VOC2012``)::

    JPEGImages/<id>.jpg                   required
    Annotations/<id>.xml                  VOC boxes, 1-based inclusive; required when the folder exists
    SegmentationClass/<id>.png            ground truth (optional)
    SegmentationClassAug/<id>.png         ground truth of train_aug's SBD images (optional)
    ImageSets/Segmentation/<split>.txt    id lists (train_aug: trainaug.txt or train_aug.txt)
    scribbles/<id>.png | <id>.xml         ScribbleSup scribbles (optional)
    points/<id>.json                      What's-the-Point clicks (optional)

Box conversion goes through :func:`wsss.core.frames.voc_box_to_pixel` only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from wsss.core.frames import voc_box_to_pixel
from wsss.core.weak_labels._xml import child_number, child_text, parse_xml, xml_image_size
from wsss.core.weak_labels.annotation import ImageAnnotation
from wsss.core.weak_labels.checks import fit_boxes_to_image, fit_points_to_image
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
from wsss.core.weak_labels.images import image_size, read_image
from wsss.core.weak_labels.points import read_points_json
from wsss.core.weak_labels.scribblesup import read_scribble_png, read_scribblesup_xml
from wsss.core.weak_labels.tags import read_tags_file


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


#: Split names that are one split under several spellings: the lists tried, in order.
SPLIT_FILES = {"train_aug": ("trainaug", "train_aug"), "trainaug": ("trainaug", "train_aug")}


def split_list_path(root: PathLike, split: str) -> Path:
    """``ImageSets/Segmentation/<split>.txt`` under ``root``; for ``train_aug`` / ``trainaug``, the
    one of ``trainaug.txt`` (what ``wsss-voc-data --sbd`` writes) and ``train_aug.txt`` (DeepLab's) present.

    Raises:
        MissingFileError: no such list (for train_aug: how to make it).
    """
    folder = Path(root) / "ImageSets" / "Segmentation"
    names = SPLIT_FILES.get(split, (split,))
    for name in names:
        if (folder / f"{name}.txt").is_file():
            return folder / f"{name}.txt"
    hint = " (VOC train + SBD: build it with wsss-voc-data --sbd)" if split in SPLIT_FILES else ""
    raise MissingFileError(folder / f"{names[0]}.txt", f"id list not found{hint}")


@dataclass
class LoadResult:
    """What :meth:`VocDataset.load_all` returns: the loaded images and the skipped ones."""

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


class VocDataset(BatchLoading):
    """Weak labels of a VOC-layout folder, one :class:`ImageAnnotation` per id.

    Args:
        root: the ``VOC2012``-like folder.
        split: id list ``ImageSets/Segmentation/<split>.txt``; with ``split=None`` and no ``ids``, every
            ``JPEGImages/*.jpg``.
        ids: explicit ids (overrides ``split``).
        classes: the class list (index 0 background); XML names are validated against it.
        verify_images: decode every image when loading (catches corrupt JPEGs early); otherwise only
            the header is read.
        image_dir, annotation_dir, gt_dir, scribble_dir, points_dir, tags_dir: folder names under ``root``.

    Missing optional inputs give empty labels, not errors: no ``scribbles``/``points``/``tags`` folder or
    no file for an id -> ``scribbles=None`` / no clicks / ``tags=None``; no ``SegmentationClass/<id>.png`` -> ``gt_path=None``;
    no ``Annotations`` folder -> no boxes. A missing image, or a missing XML while the ``Annotations``
    folder exists, is an error.
    """

    def __init__(
        self,
        root: PathLike,
        *,
        split: Optional[str] = "train",
        ids: Optional[Sequence[str]] = None,
        classes: Sequence[str] = VOC_CLASSES,
        verify_images: bool = True,
        image_dir: str = "JPEGImages",
        annotation_dir: str = "Annotations",
        gt_dir: str = "SegmentationClass",
        scribble_dir: str = "scribbles",
        points_dir: str = "points",
        tags_dir: str = "tags",
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise MissingFileError(self.root, "dataset folder not found")
        self.classes = tuple(classes)
        self.num_foreground = len(self.classes) - 1
        self.verify_images = verify_images
        self.image_dir = self.root / image_dir
        self.annotation_dir = self.root / annotation_dir
        self.gt_dir = self.root / gt_dir
        self.scribble_dir = self.root / scribble_dir
        self.points_dir = self.root / points_dir
        self.tags_dir = self.root / tags_dir
        if ids is not None:
            self.ids = list(ids)
        elif split is not None:
            self.ids = read_id_list(split_list_path(self.root, split))
        else:
            self.ids = sorted(p.stem for p in self.image_dir.glob("*.jpg"))

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: Union[int, str]) -> ImageAnnotation:
        return self.load(self.ids[index] if isinstance(index, int) else index)

    def image_path(self, image_id: str) -> Path:
        return self.image_dir / f"{image_id}.jpg"

    def gt_path(self, image_id: str) -> Path:
        """``SegmentationClass/<id>.png``, or, for an image VOC has no mask of, SBD's in
        ``SegmentationClassAug`` (``wsss-voc-data --sbd``) when there is one."""
        path = self.gt_dir / f"{image_id}.png"
        aug = self.root / AUG_GT_DIR / f"{image_id}.png"
        return aug if not path.is_file() and aug.is_file() else path

    def load(self, image_id: str) -> ImageAnnotation:
        """Load one image's weak labels.

        Raises:
            WeakLabelError: a subclass naming the file at fault (see the class docstring).
        """
        image_path = self.image_path(image_id)
        if self.verify_images:
            height, width = read_image(image_path).shape[:2]
        else:
            height, width = image_size(image_path)

        boxes = np.zeros((0, 4), np.float32)
        box_classes = np.zeros((0,), np.int64)
        if self.annotation_dir.is_dir():
            xml_path = self.annotation_dir / f"{image_id}.xml"
            xml = parse_voc_xml(xml_path, classes=self.classes)
            if xml.size is not None and xml.size != (height, width):
                warn_file(xml_path, f"<size> says {xml.size[1]}x{xml.size[0]} (WxH) but the image is "
                                    f"{width}x{height}; using the image size")
            boxes, box_classes = fit_boxes_to_image(xml.boxes, xml.classes, height=height, width=width,
                                                    path=xml_path)

        scribbles = None
        png, xml_scribble = self.scribble_dir / f"{image_id}.png", self.scribble_dir / f"{image_id}.xml"
        if png.is_file():
            scribbles = read_scribble_png(png, height=height, width=width, num_foreground=self.num_foreground)
        elif xml_scribble.is_file():
            scribbles = read_scribblesup_xml(xml_scribble, height=height, width=width, classes=self.classes)

        points = np.zeros((0, 2), np.float32)
        point_classes = np.zeros((0,), np.int64)
        points_path = self.points_dir / f"{image_id}.json"
        if points_path.is_file():
            clicks = read_points_json(points_path, num_foreground=self.num_foreground)
            points, point_classes = fit_points_to_image(clicks.points, clicks.classes, height=height,
                                                        width=width, path=points_path)

        tags_path = self.tags_dir / f"{image_id}.txt"
        tags = read_tags_file(tags_path, classes=self.classes) if tags_path.is_file() else None

        gt_path = self.gt_path(image_id)
        return ImageAnnotation(
            image_id=image_id,
            image_path=image_path,
            height=height,
            width=width,
            boxes=boxes,
            box_classes=box_classes,
            scribbles=scribbles,
            points=points,
            point_classes=point_classes,
            gt_path=gt_path if gt_path.is_file() else None,
            tags=tags,
        )
