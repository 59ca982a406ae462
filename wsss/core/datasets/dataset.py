""":class:`DescribedDataset`: the images and weak labels a description names, one
:class:`~wsss.core.weak_labels.annotation.ImageAnnotation` per image, through the existing readers.

Ids are image file stems. Without a split, the ids are every image that has annotations in some source
(sorted). An image may get labels from several sources: boxes and clicks are concatenated in source
order, scribbles of a later source are drawn over an earlier one's. The image's size and orientation
come from the first source that records a size (COCO, LabelMe), else from the image (EXIF applied).
Problems of one image (missing image, duplicate file name, unknown category id, a label outside the
class list) raise a :class:`~wsss.core.weak_labels.errors.WeakLabelError` naming the file from
:meth:`DescribedDataset.load`, so batch loops report it and go on.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from wsss.core.datasets.description import (
    DatasetDescription,
    DatasetDescriptionError,
    Source,
    check_classes,
    VOC_DESCRIPTION,
    load_description,
)
from wsss.core.weak_labels.annotation import ImageAnnotation
from wsss.core.weak_labels._json import load_json
from wsss.core.weak_labels.checks import fit_boxes_to_image, fit_points_to_image
from wsss.core.weak_labels.classes import IGNORE_INDEX, VOC_CLASSES
from wsss.core.weak_labels.coco import CocoImage, coco_category_names, index_coco_instances, segmentation_mask
from wsss.core.weak_labels.errors import (
    MalformedAnnotationError,
    MissingFileError,
    PathLike,
    WeakLabelError,
    WeakLabelWarning,
    warn_file,
)
from wsss.core.weak_labels.images import choose_orientation, image_size, read_image, read_label_png
from wsss.core.weak_labels.labelme import labelme_labels, read_labelme, read_labelme_polygons
from wsss.core.weak_labels.points import read_points_json
from wsss.core.weak_labels.scribblesup import read_scribble_png, read_scribblesup_xml
from wsss.core.weak_labels.tags import read_tags_file
from wsss.core.weak_labels.voc import BatchLoading, parse_voc_xml, read_id_list

log = logging.getLogger(__name__)

#: Image file extensions looked up in the image folder (lower and upper case).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
#: Per-image folder sources: format -> file suffixes of ``<id><suffix>``.
_PER_ID = {"voc_xml": (".xml",), "scribblesup": (".png", ".xml"), "points": (".json",), "tags": (".txt",)}


class DescribedDataset(BatchLoading):
    """The dataset of a description (see :mod:`wsss.core.datasets.description`).

    Args:
        description: a parsed description, or the path of its YAML file.
        split: a name of ``splits`` (its id list), or None: every annotated image. A split name the
            description does not list is an error, except that a description without ``splits``
            takes every annotated image for any split (logged).
        ids: explicit ids (overrides ``split``).
        verify_images: decode each image when it is loaded (a corrupt file fails there, naming it);
            otherwise only its header is read.

    Attributes:
        classes: the class names (index 0 background); ``num_foreground`` = ``len(classes) - 1``.
        palette: ``uint8 [256, 3]`` colours of the mask PNGs.
    """

    def __init__(self, description: Union[DatasetDescription, PathLike], *, split: Optional[str] = None,
                 ids: Optional[Sequence[str]] = None, verify_images: bool = False) -> None:
        self.verify_images = verify_images
        if not isinstance(description, DatasetDescription):
            description = load_description(description)
        if not description.images.is_dir():
            raise DatasetDescriptionError(description.path, f"images folder {description.images} not found")
        # each COCO file is parsed once (COCO 2017's train JSON is 450 MB)
        parsed = {s.path: load_json(s.path, what="COCO JSON") for s in description.sources if s.format == "coco"}
        self._coco: List[Dict[str, CocoImage]] = []
        if description.classes is None:
            description = description.with_classes(self._classes_from(description, parsed))
        self.description = description
        self.classes = description.classes
        self.num_foreground = len(self.classes) - 1
        self.palette = description.palette()
        for source in description.sources:
            if source.format == "coco":
                self._coco.append(index_coco_instances(
                    source.path, classes=self.classes, unknown_classes=description.unknown_classes,
                    polygon_only=description.polygon_only, data=parsed[source.path]))
        self._labelme_dupes = self._labelme_duplicates(description)
        self._gt_coco: Optional[Dict[str, CocoImage]] = None
        gt = description.ground_truth
        if gt is not None and gt.format == "coco":
            coco_paths = [s.path for s in description.sources if s.format == "coco"]
            if gt.path in coco_paths:  # the weak-label file also holds the segmentations
                self._gt_coco = self._coco[coco_paths.index(gt.path)]
            else:
                with warnings.catch_warnings():  # its box repairs do not matter for ground truth
                    warnings.simplefilter("ignore", WeakLabelWarning)
                    self._gt_coco = index_coco_instances(gt.path, classes=self.classes,
                                                         unknown_classes=description.unknown_classes)
        if ids is not None:
            self.ids = list(ids)
        elif split is not None and split in description.splits:
            self.ids = read_id_list(description.splits[split])
        elif split is not None and description.splits:
            raise DatasetDescriptionError(description.path, f"split {split!r} is not one of the description's "
                                                            f"splits: {', '.join(description.splits)}")
        else:
            if split is not None:
                log.info("%s lists no splits: every annotated image is used (split %r ignored)",
                         description.path, split)
            self.ids = self._annotated_ids()

    # -- class list from the annotations ---------------------------------------------------------
    @staticmethod
    def _classes_from(description: DatasetDescription, parsed: Optional[Dict[Path, object]] = None) -> List[str]:
        names: List[str] = []
        for source in description.sources:
            if source.format != description.classes_from:
                continue
            if source.format == "coco":
                found = coco_category_names(source.path, data=(parsed or {}).get(source.path))
            else:
                labels = set()
                for path in sorted(source.path.glob("*.json")):
                    try:
                        labels.update(labelme_labels(path))
                    except WeakLabelError as exc:  # the image is reported (and skipped) when it is loaded
                        warn_file(None, f"{exc} (left out of the class list)")
                found = sorted(labels)
            names += [n for n in found if n not in names and n.lower() != "background"]
        return list(check_classes(["background", *names], description.path))

    @staticmethod
    def _labelme_duplicates(description: DatasetDescription) -> Dict[str, str]:
        """``{json stem: message}`` for LabelMe files whose image another file of the folder annotates too."""
        import json

        owners: Dict[Path, List[Path]] = {}
        for source in description.sources:
            if source.format != "labelme":
                continue
            for path in sorted(source.path.glob("*.json")):
                try:
                    image = json.loads(path.read_text(encoding="utf-8")).get("imagePath")
                except (ValueError, UnicodeDecodeError, AttributeError):
                    continue  # reported when the file is loaded
                if image:
                    owners.setdefault((path.parent / str(image)).resolve(), []).append(path)
        return {p.stem: f"{p.name} and {', '.join(o.name for o in files if o != p)} annotate the same image {image}"
                for image, files in owners.items() if len(files) > 1 for p in files}

    # -- ids and paths ---------------------------------------------------------------------------
    def _annotated_ids(self) -> List[str]:
        found = set()
        for coco in self._coco:
            found.update(coco)
        for source in self.description.sources:
            if source.format == "labelme":
                found.update(p.stem for p in source.path.glob("*.json"))
            elif source.format in _PER_ID and source.path.is_dir():
                found.update(p.stem for p in source.path.iterdir() if p.suffix.lower() in _PER_ID[source.format])
        return sorted(found)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: Union[int, str]) -> ImageAnnotation:
        return self.load(self.ids[index] if isinstance(index, int) else index)

    def image_path(self, image_id: str) -> Path:
        """The image of ``image_id``: the COCO ``file_name``, the LabelMe ``imagePath``, or
        ``<images>/<id>.<ext>`` (the first extension that exists; ``.jpg`` when none does)."""
        for coco in self._coco:
            if image_id in coco:
                return self.description.images / coco[image_id].file_name
        folder = self.description.images
        for ext in IMAGE_EXTENSIONS:
            for suffix in (ext, ext.upper()):
                if (folder / f"{image_id}{suffix}").is_file():
                    return folder / f"{image_id}{suffix}"
        return folder / f"{image_id}.jpg"

    def image_and_orientation(self, image_id: str):
        """``(image path, orientation)`` as :meth:`load` reads the image; without a COCO or LabelMe
        source (the ones that record a size) that is ``(image_path(id), "exif")``, read without the
        weak labels."""
        if not any(s.format in ("coco", "labelme") for s in self.description.sources):
            return self.image_path(image_id), "exif"
        ann = self.load(image_id)
        return ann.image_path, ann.orientation

    def gt_path(self, image_id: str) -> Optional[Path]:
        """The ground-truth PNG of ``image_id`` (``ground_truth.format: png``), or None."""
        gt = self.description.ground_truth
        return gt.png(image_id) if gt is not None and gt.format == "png" else None

    # -- loading ---------------------------------------------------------------------------------
    def load(self, image_id: str) -> ImageAnnotation:
        """One image's weak labels from every source.

        Raises:
            WeakLabelError: a subclass naming the file at fault (module docstring).
        """
        desc = self.description
        parts: List[ImageAnnotation] = []
        for coco, source in zip(self._coco, [s for s in desc.sources if s.format == "coco"]):
            entry = coco.get(image_id)
            if entry is None:
                continue
            where = f"{source.path} [{entry.file_name}]"
            if entry.error:
                raise MalformedAnnotationError(source.path, f"[{entry.file_name}] {entry.error}")
            image_path = desc.images / entry.file_name
            if not image_path.is_file():
                raise MissingFileError(image_path, f"image of {where} not found")
            orientation = choose_orientation(image_path, height=entry.height, width=entry.width,
                                             prefer=("stored", "exif"))
            boxes, classes = fit_boxes_to_image(np.asarray(entry.boxes, np.float32), np.asarray(entry.classes),
                                                height=entry.height, width=entry.width, path=where)
            parts.append(ImageAnnotation(image_id=image_id, image_path=image_path, height=entry.height,
                                         width=entry.width, boxes=boxes, box_classes=classes,
                                         orientation=orientation))
        for source in desc.sources:
            if source.format == "labelme" and (source.path / f"{image_id}.json").is_file():
                if image_id in self._labelme_dupes:
                    raise MalformedAnnotationError(source.path / f"{image_id}.json", self._labelme_dupes[image_id])
                ann = read_labelme(source.path / f"{image_id}.json", classes=self.classes,
                                   unknown_classes=desc.unknown_classes)
                if not ann.image_path.is_file():  # imagePath relative to the JSON, else in the image folder
                    fallback = desc.images / ann.image_path.name
                    if not fallback.is_file():
                        raise MissingFileError(ann.image_path, f"image of {source.path / f'{image_id}.json'} not found")
                    ann = read_labelme(source.path / f"{image_id}.json", image_dir=desc.images, classes=self.classes,
                                       unknown_classes=desc.unknown_classes)
                parts.append(ann)

        if parts:
            first = parts[0]
            image_path, height, width, orientation = first.image_path, first.height, first.width, first.orientation
            for other in parts[1:]:
                if (other.height, other.width) != (height, width):
                    raise MalformedAnnotationError(
                        other.image_path, f"{image_id}: the sources disagree on the image size "
                                          f"({width}x{height} and {other.width}x{other.height}, WxH)")
        else:
            image_path = self.image_path(image_id)
            height, width = image_size(image_path)  # also: MissingFileError when there is no image
            orientation = "exif"
        if not image_path.is_file():
            raise MissingFileError(image_path, "image not found")
        if self.verify_images:
            read_image(image_path)

        boxes = [p.boxes for p in parts]
        box_classes = [p.box_classes for p in parts]
        points = [p.points for p in parts]
        point_classes = [p.point_classes for p in parts]
        scribbles = None
        for part in parts:
            scribbles = _overlay(scribbles, part.scribbles)
        tags = None
        for source in desc.sources:
            if source.format == "voc_xml":
                xml_path = source.path / f"{image_id}.xml"
                if xml_path.is_file():
                    xml = parse_voc_xml(xml_path, classes=self.classes, unknown_classes=desc.unknown_classes)
                    if xml.size is not None and xml.size != (height, width):
                        warn_file(xml_path, f"<size> says {xml.size[1]}x{xml.size[0]} (WxH) but the image is "
                                            f"{width}x{height}; using the image size")
                    b, c = fit_boxes_to_image(xml.boxes, xml.classes, height=height, width=width, path=xml_path)
                    boxes.append(b)
                    box_classes.append(c)
            elif source.format == "scribblesup":
                png, xml_scribble = source.path / f"{image_id}.png", source.path / f"{image_id}.xml"
                if png.is_file():
                    scribbles = _overlay(scribbles, read_scribble_png(png, height=height, width=width,
                                                                      num_foreground=self.num_foreground))
                elif xml_scribble.is_file():
                    scribbles = _overlay(scribbles, read_scribblesup_xml(
                        xml_scribble, height=height, width=width, classes=self.classes,
                        unknown_classes=desc.unknown_classes))
            elif source.format == "points":
                points_path = source.path / f"{image_id}.json"
                if points_path.is_file():
                    clicks = read_points_json(points_path, num_foreground=self.num_foreground)
                    p, c = fit_points_to_image(clicks.points, clicks.classes, height=height, width=width,
                                               path=points_path)
                    points.append(p)
                    point_classes.append(c)
            elif source.format == "tags":
                tags_path = source.path / f"{image_id}.txt"
                if tags_path.is_file():  # several tag sources: the union
                    found = read_tags_file(tags_path, classes=self.classes, unknown_classes=desc.unknown_classes)
                    tags = found if tags is None else np.union1d(tags, found)
        gt_path = self.gt_path(image_id)
        return ImageAnnotation(
            image_id=image_id, image_path=image_path, height=height, width=width,
            boxes=np.concatenate(boxes) if boxes else np.zeros((0, 4), np.float32),
            box_classes=np.concatenate(box_classes) if box_classes else np.zeros((0,), np.int64),
            scribbles=scribbles,
            points=np.concatenate(points) if points else np.zeros((0, 2), np.float32),
            point_classes=np.concatenate(point_classes) if point_classes else np.zeros((0,), np.int64),
            gt_path=gt_path if gt_path is not None and gt_path.is_file() else None,
            orientation=orientation,
            tags=tags,
        )

    def read_gt(self, image_id: str, *, height: Optional[int] = None, width: Optional[int] = None) -> np.ndarray:
        """Ground truth of ``image_id``: ``uint8 [H, W]`` (0 background, ``1..C``, 255 void).

        PNG: read and checked. COCO: objects drawn in file order (crowd regions void). LabelMe: the
        file's polygons (0 elsewhere).

        Raises:
            MissingFileError: no ground truth for this image (or none described).
            WeakLabelError: an unreadable or invalid file.
        """
        gt = self.description.ground_truth
        if gt is None:
            raise MissingFileError(self.description.path, "the dataset description has no ground_truth")
        if gt.format == "png":
            return read_label_png(gt.png(image_id), num_foreground=self.num_foreground, height=height,
                                  width=width, what="ground truth")
        if gt.format == "labelme":
            label_map = read_labelme_polygons(gt.path / f"{image_id}.json", classes=self.classes,
                                              unknown_classes=self.description.unknown_classes)
            if label_map is None:
                raise MissingFileError(gt.path / f"{image_id}.json", "no polygon (ground truth) in this file")
            return label_map
        entry = (self._gt_coco or {}).get(image_id)
        if entry is None:
            raise MissingFileError(gt.path, f"no image {image_id!r} in the COCO ground truth")
        label_map = np.zeros((entry.height, entry.width), np.uint8)
        for segmentation, cls, crowd in entry.segments:
            label_map[segmentation_mask(segmentation, entry.height, entry.width)] = IGNORE_INDEX if crowd else cls
        return label_map

    def instance_path(self, image_id: str) -> Optional[Path]:
        """The instance-id PNG of ``image_id`` (``instances``), or None when the description has none
        or the image has no file."""
        inst = self.description.instances
        path = inst.png(image_id) if inst is not None else None
        return path if path is not None and path.is_file() else None

    def has_gt(self, image_id: str) -> bool:
        gt = self.description.ground_truth
        if gt is None:
            return False
        if gt.format == "png":
            return gt.png(image_id).is_file()
        if gt.format == "labelme":
            return (gt.path / f"{image_id}.json").is_file()
        return image_id in (self._gt_coco or {})


def _overlay(below: Optional[np.ndarray], above: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """Scribble label maps merged: ``above``'s strokes over ``below``'s."""
    if above is None:
        return below
    if below is None:
        return above
    out = below.copy()
    drawn = above != IGNORE_INDEX
    out[drawn] = above[drawn]
    return out


def open_described(path: Optional[PathLike] = None, *, root: Optional[PathLike] = None,
                   split: Optional[str] = None, ids: Optional[Sequence[str]] = None,
                   verify_images: bool = False) -> DescribedDataset:
    """The dataset of a description file (None: PASCAL VOC 2012, :data:`VOC_DESCRIPTION`), with its
    ``root`` at ``root`` when given: what every command's ``--dataset FILE`` / ``--data DIR`` opens."""
    overrides = {"root": str(root)} if root is not None else None
    description = load_description(path if path is not None else VOC_DESCRIPTION, overrides=overrides)
    return DescribedDataset(description, split=split, ids=ids, verify_images=verify_images)


def voc_dataset(root: PathLike, *, split: Optional[str] = "train", ids: Optional[Sequence[str]] = None,
                verify_images: bool = False) -> DescribedDataset:
    """A VOC 2012-layout folder (``JPEGImages``, ``Annotations``, ``SegmentationClass``, ``ImageSets``,
    and the weak-label folders of :data:`VOC_DESCRIPTION`) as a dataset."""
    if not Path(root).is_dir():
        raise MissingFileError(Path(root), "dataset folder not found")
    return open_described(root=root, split=split, ids=ids, verify_images=verify_images)


#: how to make the VOC id lists the official download lacks
_LIST_HINTS = {"trainaug": "VOC train + SBD: build it with wsss-voc-data --sbd",
               "train_aug": "VOC train + SBD: build it with wsss-voc-data --sbd",
               "test": "VOC2012test.tar: wsss-voc-data --voc-test"}


def voc_split_list(root: PathLike, split: str) -> Path:
    """The id list of ``split`` of the VOC folder ``root``: the list :data:`VOC_DESCRIPTION` names for it
    (``train_aug``: ``trainaug.txt`` or DeepLab's ``train_aug.txt``), else
    ``ImageSets/Segmentation/<split>.txt``.

    Raises:
        MissingFileError: no such list (for the lists VOC's download lacks: how to make them).
    """
    description = load_description(VOC_DESCRIPTION, overrides={"root": str(root)})
    path = description.splits.get(split, Path(root) / "ImageSets" / "Segmentation" / f"{split}.txt")
    if not path.is_file():
        hint = f" ({_LIST_HINTS[split]})" if split in _LIST_HINTS else ""
        raise MissingFileError(path, f"id list not found{hint}")
    return path


def dataset_class_names(path: Optional[PathLike], *, root: Optional[PathLike] = None) -> Sequence[str]:
    """The class names of a description (``root`` in place of its own; read from the annotations for
    ``classes: {from: ...}``), or VOC's without one."""
    if path is None:
        return VOC_CLASSES
    description = load_description(path, overrides={"root": str(root)} if root is not None else None)
    if description.classes is not None:
        return description.classes
    return DescribedDataset._classes_from(description)


__all__ = ["DescribedDataset", "Source", "dataset_class_names", "open_described", "voc_dataset", "voc_split_list"]
