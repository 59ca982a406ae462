"""Clicks in the What's-the-Point JSON form.

::

    {"objects":    [{"x": 229.5, "y": 136.4, "cls": 1, "rank": 1}, ...],
     "background": [{"x": 75.1,  "y": 55.6,  "cls": 0}, ...]}

``x``, ``y`` are 0-based pixel indices (floats; the click is on pixel ``round(x), round(y)``), ``cls``
the class index (``1..C`` for objects, 0 for background points). ``rank`` is the order of the click
among the clicks of its class and is kept in :class:`Clicks` only.

The study's release (``pascal2012_trainval_main.json``) is one dict for all images,
``{image_id: [{"x", "y", "cls", "rank"}, ...]}`` (0-based x, y; cls 1..20; some lists empty, some
clicks outside the image), with no background clicks: :func:`read_points_release` reads it, and
:func:`points_document` writes an image's clicks in the per-image form above.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

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


def _click(path: Path, where: str, entry: Any, *, background: bool, num_foreground: int):
    try:
        x, y = float(entry["x"]), float(entry["y"])
        cls = int(entry.get("cls", 0) if background else entry["cls"])
        rank = 0 if background else int(entry.get("rank", 1))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MalformedAnnotationError(path, f"{where} is not a click with x, y, cls: {entry!r}") from exc
    if not (np.isfinite(x) and np.isfinite(y)):
        raise MalformedAnnotationError(path, f"{where} has a non-finite coordinate")
    if background and cls != 0:
        raise MalformedAnnotationError(path, f"{where} has cls {cls}; background clicks are 0")
    if not background and not 1 <= cls <= num_foreground:
        raise UnknownClassError(path, f"{where} has cls {cls}; expected 1..{num_foreground}")
    return x, y, cls, rank


def _as_clicks(rows: List) -> Clicks:
    return Clicks(points=np.asarray([r[:2] for r in rows], np.float32).reshape(-1, 2),
                  classes=np.asarray([r[2] for r in rows], np.int64),
                  ranks=np.asarray([r[3] for r in rows], np.int64))


def read_points_release(path: PathLike, *, num_foreground: int = 20) -> Dict[str, Clicks]:
    """``{image id: its object clicks}`` of the What's-the-Point release dict (module docstring).

    Raises:
        MissingFileError, MalformedAnnotationError, UnknownClassError: (all name the file, and the
            image id of a bad click).
    """
    path = Path(path)
    data = load_json(path, what="What's-the-Point release JSON")
    if not isinstance(data, dict):
        raise MalformedAnnotationError(path, "expected one JSON object {image_id: [clicks]}")
    out = {}
    for image_id, entries in data.items():
        if not isinstance(entries, list):
            raise MalformedAnnotationError(path, f"{image_id}: expected a list of clicks")
        out[str(image_id)] = _as_clicks([_click(path, f"{image_id}[{i}]", e, background=False,
                                               num_foreground=num_foreground) for i, e in enumerate(entries)])
    return out


def points_document(objects: Clicks, background: Optional[np.ndarray] = None) -> Dict[str, list]:
    """The per-image JSON of :func:`read_points_json` for ``objects`` and ``background`` points
    (``float [B, 2]`` (x, y), or None: none)."""
    doc = {"objects": [{"x": float(x), "y": float(y), "cls": int(c), "rank": int(r)}
                       for (x, y), c, r in zip(objects.points, objects.classes, objects.ranks)],
           "background": []}
    if background is not None:
        doc["background"] = [{"x": float(x), "y": float(y), "cls": 0} for x, y in np.asarray(background).reshape(-1, 2)]
    return doc


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
    rows = []
    for key, background in (("objects", False), ("background", True)):
        entries = data.get(key, [])
        if not isinstance(entries, list):
            raise MalformedAnnotationError(path, f"'{key}' must be a list")
        rows += [_click(path, f"{key}[{i}]", e, background=background, num_foreground=num_foreground)
                 for i, e in enumerate(entries)]
    return _as_clicks(rows)


def farthest_points(candidates: np.ndarray, k: int, rng: np.random.Generator, *, max_candidates: int = 4096) -> np.ndarray:
    """Pick ``k`` of ``float32 [M, 2]`` candidates spread out by farthest-point sampling.

    Starts from the candidate nearest to their centroid; candidates beyond ``max_candidates`` are
    randomly subsampled first (bounded cost on long strokes).
    """
    if k <= 0:
        return candidates[:0]
    if len(candidates) <= k:
        return candidates
    if len(candidates) > max_candidates:
        candidates = candidates[rng.choice(len(candidates), max_candidates, replace=False)]
    first = int(np.argmin(((candidates - candidates.mean(0)) ** 2).sum(1)))
    chosen = [first]
    dist = ((candidates - candidates[first]) ** 2).sum(1)
    for _ in range(k - 1):
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, ((candidates - candidates[nxt]) ** 2).sum(1))
    return candidates[chosen]
