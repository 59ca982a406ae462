"""Clicks in the What's-the-Point JSON form.

::

    {"objects":    [{"x": 229.5, "y": 136.4, "cls": 1, "rank": 1}, ...],
     "background": [{"x": 75.1,  "y": 55.6,  "cls": 0}, ...]}

``x``, ``y`` are 0-based pixel indices (floats; the click is on pixel ``round(x), round(y)``), ``cls``
the class index (``1..C`` for objects, 0 for background points). ``rank`` is the order of the click
among the clicks of its class and is kept in :class:`Clicks` only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wsss.core.weak_labels._json import load_json
from wsss.core.weak_labels.errors import (
    MalformedAnnotationError,
    PathLike,
    UnknownClassError,
)


@dataclass(frozen=True)
class Clicks:
    """Clicks of one image.

    Attributes:
        points: ``float32 [P, 2]`` ``(x, y)``; object clicks first, then background clicks.
        classes: ``int64 [P]`` class of each click (0 for background).
        ranks: ``int64 [P]`` rank of each object click, 0 for background clicks.
    """

    points: np.ndarray
    classes: np.ndarray
    ranks: np.ndarray


def read_points_json(path: PathLike, *, num_foreground: int = 20) -> Clicks:
    """Read a What's-the-Point JSON file.

    Raises:
        MissingFileError: no such file.
        MalformedAnnotationError: not JSON, missing ``x``/``y``/``cls``, non-numeric values, or a
            background click whose class is not 0.
        UnknownClassError: an object click whose class is outside ``1..C``.
    """
    path = Path(path)
    data = load_json(path, what="points JSON")
    if not isinstance(data, dict):
        raise MalformedAnnotationError(path, "expected a JSON object with 'objects' and 'background'")
    points, classes, ranks = [], [], []
    for key, background in (("objects", False), ("background", True)):
        entries = data.get(key, [])
        if not isinstance(entries, list):
            raise MalformedAnnotationError(path, f"'{key}' must be a list")
        for i, entry in enumerate(entries):
            try:
                x, y, cls = float(entry["x"]), float(entry["y"]), int(entry.get("cls", 0) if background else entry["cls"])
                rank = 0 if background else int(entry.get("rank", 1))
            except (KeyError, TypeError, ValueError) as exc:
                raise MalformedAnnotationError(path, f"{key}[{i}] is not a click with x, y, cls: {entry!r}") from exc
            if not (np.isfinite(x) and np.isfinite(y)):
                raise MalformedAnnotationError(path, f"{key}[{i}] has a non-finite coordinate")
            if background and cls != 0:
                raise MalformedAnnotationError(path, f"background[{i}] has cls {cls}; background clicks are 0")
            if not background and not 1 <= cls <= num_foreground:
                raise UnknownClassError(path, f"objects[{i}] has cls {cls}; expected 1..{num_foreground}")
            points.append((x, y))
            classes.append(cls)
            ranks.append(rank)
    return Clicks(
        points=np.asarray(points, np.float32).reshape(-1, 2),
        classes=np.asarray(classes, np.int64),
        ranks=np.asarray(ranks, np.int64),
    )
