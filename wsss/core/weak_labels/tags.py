"""Image-level tags: the classes an image contains, the weak label of image-level WSSS.

One text file per image, ``<id>.txt``, one class name per line (blank lines and ``#`` comments
ignored; ``background`` is not a tag)::

    aeroplane
    bird

A VOC-layout folder reads them from ``tags/`` and a dataset description from a ``{format: tags}``
source. An image without a tag file is tagged with the classes its other weak labels name
(:func:`wsss.core.weak_labels.annotation.select_weak_labels`), the usual image-level labels of VOC.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from wsss.core.weak_labels.errors import (
    MalformedAnnotationError, MissingFileError, PathLike, UnknownClassError, warn_file,
)


def read_tags_file(path: PathLike, *, classes: Sequence[str], unknown_classes: str = "error") -> np.ndarray:
    """The classes a tag file names: ``int64 [T]`` indices into ``classes``, increasing, distinct.

    ``unknown_classes="ignore"``: names that are not classes are left out (one warning per file).

    Raises:
        MissingFileError: no such file.
        MalformedAnnotationError: not UTF-8 text.
        UnknownClassError: a name that is not a foreground class of ``classes`` (the message lists them).
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(path, "tag file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedAnnotationError(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    index = {name: i for i, name in enumerate(classes) if i > 0}
    found, skipped = set(), set()
    for lineno, line in enumerate(text.splitlines(), start=1):
        name = line.split("#", 1)[0].strip()
        if not name:
            continue
        if name not in index:
            if unknown_classes == "ignore":
                skipped.add(name)
                continue
            raise UnknownClassError(path, f"line {lineno}: {name!r} is not a class; expected one of "
                                          f"{', '.join(classes[1:])}")
        found.add(index[name])
    if skipped:
        warn_file(path, f"tag(s) {', '.join(sorted(map(repr, skipped)))} are not classes and were ignored")
    return np.asarray(sorted(found), np.int64)
