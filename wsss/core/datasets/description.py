"""A dataset description: one small YAML file that says where a dataset's images and labels are.

Both stages read it, so the class list (background at 0, at most 254 classes besides it), the
palette, the weak-label sources, the ground truth and the image lists are defined in one place.
Every key: docs/config.md ("Dataset descriptions"); examples: docs/data.md.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from wsss.core.weak_labels.classes import IGNORE_INDEX, VOC_CLASSES, voc_palette
from wsss.core.weak_labels.errors import PathLike
from wsss.core.yaml_config import load_yaml_with_bases, merge_config

#: Weak-label source formats (``sources[].format``).
SOURCE_FORMATS = ("voc_xml", "coco", "labelme", "scribblesup", "points", "tags")
#: Ground-truth formats (``ground_truth.format``).
GT_FORMATS = ("png", "coco", "labelme")
#: Most foreground classes a label PNG can hold next to background (0) and void (255).
MAX_FOREGROUND = IGNORE_INDEX - 1

_KEYS = ("name", "root", "images", "classes", "colours", "unknown_classes", "polygon_only", "sources",
         "ground_truth", "instances", "splits")


class DatasetDescriptionError(ValueError):
    """A description file that cannot be used; the message starts with the file's path."""

    def __init__(self, path: Optional[PathLike], message: str) -> None:
        self.path = Path(path) if path is not None else None
        super().__init__(f"{path}: {message}" if path is not None else message)


@dataclass(frozen=True)
class Source:
    """One weak-label (or ground-truth) source: its format and its path (file or folder, absolute)."""

    format: str
    path: Path
    #: ground truth (png) only: a second folder, read for an image ``path`` has no file of
    fallback: Optional[Path] = None

    def png(self, image_id: str) -> Path:
        """``<path>/<id>.png``, or the fallback folder's when only that exists."""
        first = self.path / f"{image_id}.png"
        if self.fallback is not None and not first.is_file() and (self.fallback / f"{image_id}.png").is_file():
            return self.fallback / f"{image_id}.png"
        return first


@dataclass
class DatasetDescription:
    """A parsed description (module docstring); paths are resolved against ``root``.

    Attributes:
        classes: the class names, index 0 background, or None while they are to be taken from the
            annotations (``classes_from``); :func:`wsss.core.datasets.open_described` fills them in.
        classes_from: ``"coco"`` / ``"labelme"`` when ``classes: {from: ...}``, else None.
        colours: class name -> ``(r, g, b)``.
    """

    path: Optional[Path]
    name: str
    root: Path
    images: Path
    classes: Optional[Tuple[str, ...]]
    classes_from: Optional[str] = None
    colours: Dict[str, Tuple[int, int, int]] = field(default_factory=dict)
    unknown_classes: str = "error"
    polygon_only: str = "box"
    sources: List[Source] = field(default_factory=list)
    ground_truth: Optional[Source] = None
    #: instance ground truth: PNGs of object ids (1..254 per image, 0 none, 255 void), read with the
    #: class ground truth (VOC's ``SegmentationObject``); None: each class's connected components
    instances: Optional[Source] = None
    splits: Dict[str, Path] = field(default_factory=dict)

    @property
    def num_foreground(self) -> int:
        if self.classes is None:
            raise DatasetDescriptionError(self.path, "the class list is not known yet (classes: {from: ...})")
        return len(self.classes) - 1

    def palette(self) -> np.ndarray:
        """``uint8 [256, 3]``: the description's colours over the VOC colour map (255 stays void)."""
        return class_palette(self.classes or (), self.colours)

    def with_classes(self, classes: Sequence[str]) -> "DatasetDescription":
        return dataclasses.replace(self, classes=check_classes(classes, self.path))


def class_palette(classes: Sequence[str], colours: Mapping[str, Sequence[int]]) -> np.ndarray:
    """``uint8 [256, 3]``: the VOC colour map (256 distinct colours, so any class count up to 254 gets
    distinct colours) with ``colours[name]`` at the index of each named class."""
    palette = voc_palette()
    index = {name: i for i, name in enumerate(classes)}
    for name, rgb in colours.items():
        if name in index:
            palette[index[name]] = rgb
    return palette


def check_classes(classes: Sequence[str], path: Optional[PathLike] = None) -> Tuple[str, ...]:
    """The class list as a tuple, checked: strings, no duplicates (case-insensitive), 2..255 entries."""
    names = tuple(str(c).strip() for c in classes)
    if len(names) < 2:
        raise DatasetDescriptionError(path, "classes: at least background and one class are needed")
    if len(names) - 1 > MAX_FOREGROUND:
        raise DatasetDescriptionError(path, f"classes: {len(names) - 1} foreground classes; at most {MAX_FOREGROUND} "
                                            f"fit a label PNG (255 is void)")
    lowered = [n.lower() for n in names]
    dupes = sorted({n for n in lowered if lowered.count(n) > 1})
    if dupes or "" in lowered:
        raise DatasetDescriptionError(path, f"classes: empty or repeated name(s) {dupes}")
    return names


def _load_yaml(path: Path) -> Dict[str, Any]:
    return load_yaml_with_bases(path, kind="a dataset description",
                                missing=lambda p: DatasetDescriptionError(p, "dataset description not found"),
                                error=DatasetDescriptionError)


#: The VOC 2012 layout as a description; ``--data DIR`` is this file with its root at DIR.
VOC_DESCRIPTION = Path(__file__).resolve().parents[3] / "configs" / "datasets" / "voc2012.yaml"


def voc_description(root: PathLike) -> DatasetDescription:
    """:data:`VOC_DESCRIPTION` with its ``root`` at ``root`` (a VOC2012 folder)."""
    return load_description(VOC_DESCRIPTION, overrides={"root": str(root)})


def load_description(path: PathLike, *, overrides: Optional[Dict[str, Any]] = None) -> DatasetDescription:
    """Read a description file (with its ``_base_`` files), ``overrides`` merged over it (e.g. ``root``).

    Raises:
        DatasetDescriptionError: unknown keys or formats, a bad class list, a missing ``root``.
    """
    path = Path(path)
    values = merge_config(_load_yaml(path), overrides or {})
    return description_from_dict(values, path=path)


def description_from_dict(values: Dict[str, Any], *, path: Optional[Path] = None) -> DatasetDescription:
    """A description from its (already merged) mapping; see :func:`load_description`."""
    unknown = sorted(set(values) - set(_KEYS))
    if unknown:
        raise DatasetDescriptionError(path, f"unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(_KEYS)}")
    root = Path(str(values.get("root") or "."))
    if not root.is_dir():
        raise DatasetDescriptionError(path, f"root folder {root} not found")

    def under(p: Any, what: str) -> Path:
        if not isinstance(p, (str, Path)) or not str(p):
            raise DatasetDescriptionError(path, f"{what}: expected a path, got {p!r}")
        return root / str(p)

    classes_value = values.get("classes", list(VOC_CLASSES))
    classes, classes_from = None, None
    if isinstance(classes_value, dict):
        classes_from = classes_value.get("from")
        if classes_from not in ("coco", "labelme") or set(classes_value) != {"from"}:
            raise DatasetDescriptionError(path, f"classes: a list of names, or {{from: coco}} / {{from: labelme}}; "
                                                f"got {classes_value!r}")
    elif isinstance(classes_value, (list, tuple)):
        classes = check_classes(classes_value, path)
    else:
        raise DatasetDescriptionError(path, f"classes: expected a list of names, got {classes_value!r}")

    colours: Dict[str, Tuple[int, int, int]] = {}
    for name, rgb in (values.get("colours") or {}).items():
        try:
            r, g, b = (int(v) for v in rgb)
        except (TypeError, ValueError):
            raise DatasetDescriptionError(path, f"colours: {name}: expected [r, g, b], got {rgb!r}") from None
        if not all(0 <= v <= 255 for v in (r, g, b)):
            raise DatasetDescriptionError(path, f"colours: {name}: values must be 0..255, got {rgb!r}")
        if classes is not None and name not in classes:
            raise DatasetDescriptionError(path, f"colours: {name!r} is not a class; classes: {', '.join(classes)}")
        colours[str(name)] = (r, g, b)

    policies = {"unknown_classes": ("error", "ignore"), "polygon_only": ("box", "error")}
    chosen = {}
    for key, allowed in policies.items():
        chosen[key] = str(values.get(key, allowed[0]))
        if chosen[key] not in allowed:
            raise DatasetDescriptionError(path, f"{key}: one of {allowed}, got {chosen[key]!r}")

    sources = []
    for k, src in enumerate(values.get("sources") or []):
        if not isinstance(src, dict) or set(src) != {"format", "path"}:
            raise DatasetDescriptionError(path, f"sources[{k}]: expected {{format: ..., path: ...}}, got {src!r}")
        if src["format"] not in SOURCE_FORMATS:
            raise DatasetDescriptionError(path, f"sources[{k}]: format {src['format']!r} is not one of "
                                                f"{', '.join(SOURCE_FORMATS)}")
        sources.append(Source(format=src["format"], path=under(src["path"], f"sources[{k}].path")))
    if not sources:
        raise DatasetDescriptionError(path, "sources: at least one weak-label source is needed")
    if classes_from and not any(s.format == classes_from for s in sources):
        raise DatasetDescriptionError(path, f"classes: {{from: {classes_from}}} but no {classes_from} source")

    ground_truth = _png_or_format_source(values.get("ground_truth"), "ground_truth", GT_FORMATS, under, path)
    instances = _png_or_format_source(values.get("instances"), "instances", ("png",), under, path)

    splits = values.get("splits") or {}
    if not isinstance(splits, dict):
        raise DatasetDescriptionError(path, f"splits: expected {{name: id list file}}, got {splits!r}")
    return DatasetDescription(
        path=path, name=str(values.get("name") or (path.stem if path else root.name)), root=root,
        images=under(values.get("images", "JPEGImages"), "images"), classes=classes, classes_from=classes_from,
        colours=colours, unknown_classes=chosen["unknown_classes"], polygon_only=chosen["polygon_only"],
        sources=sources, ground_truth=ground_truth,
        instances=instances,
        splits={str(k): _first_existing(v, f"splits.{k}", under, path) for k, v in splits.items()},
    )


def _png_or_format_source(value: Any, key: str, formats: Sequence[str], under, path: Optional[Path]) -> Optional[Source]:
    """``ground_truth`` / ``instances``: ``{format, path}`` (png: also ``fallback``), or None."""
    if value is None:
        return None
    if (not isinstance(value, dict) or not {"format", "path"} <= set(value) <= {"format", "path", "fallback"}
            or value["format"] not in formats or ("fallback" in value and value["format"] != "png")):
        raise DatasetDescriptionError(path, f"{key}: expected {{format: {' | '.join(formats)}, "
                                            f"path: ...}} (png: also fallback: ...), got {value!r}")
    return Source(format=value["format"], path=under(value["path"], f"{key}.path"),
                  fallback=under(value["fallback"], f"{key}.fallback") if "fallback" in value else None)


def _first_existing(value: Any, what: str, under, path: Optional[Path]) -> Path:
    """A split's id list: a path, or a list of alternatives (the first that exists, else the first)."""
    options = [under(v, what) for v in value] if isinstance(value, (list, tuple)) else [under(value, what)]
    if not options:
        raise DatasetDescriptionError(path, f"{what}: expected a path or a list of paths, got {value!r}")
    return next((p for p in options if p.is_file()), options[0])
