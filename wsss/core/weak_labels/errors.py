"""Errors and warnings raised by the readers, and the record of a file skipped in a batch.

Policy (one for every reader):

* A file that cannot be used raises a :class:`WeakLabelError` subclass whose message starts with the
  file's path. Batch loaders (:meth:`wsss.core.weak_labels.voc.BatchLoading.load_all`) catch
  these, record a :class:`FileProblem` and go on with the next image.
* A file that can be used after a repair (a box clipped to the image, an empty box or an off-image
  click dropped, a size in the XML that disagrees with the image) emits **one**
  :class:`WeakLabelWarning` per file and repair kind through :func:`warnings.warn`, naming the file.
  Turn them into errors with ``warnings.simplefilter("error", WeakLabelWarning)``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

PathLike = Union[str, Path]


class WeakLabelError(ValueError):
    """A file that cannot be read or used. ``path`` is the offending file."""

    def __init__(self, path: Optional[PathLike], message: str) -> None:
        self.path = Path(path) if path is not None else None
        self.reason = message
        super().__init__(f"{self.path}: {message}" if self.path is not None else message)


class MissingFileError(WeakLabelError, FileNotFoundError):
    """A required file (image, annotation, prediction) does not exist."""


class CorruptImageError(WeakLabelError):
    """An image file exists but cannot be decoded (truncated or not an image)."""


class MalformedAnnotationError(WeakLabelError):
    """An annotation file (XML, JSON) is not well formed or misses a required field."""


class UnknownClassError(WeakLabelError):
    """A class name that is not in the dataset's class list."""


class SizeMismatchError(WeakLabelError):
    """A label map (scribbles, mask, prediction) whose size differs from its image or ground truth."""


class InvalidMaskError(WeakLabelError):
    """A label map with values outside ``0..C`` and the ignore value 255, or of the wrong shape/type."""


class WeakLabelWarning(UserWarning):
    """A file was usable after a repair (clip, drop); the message names the file and the repair."""


def warn_file(path: Optional[PathLike], message: str) -> None:
    """Emit one :class:`WeakLabelWarning` ``"<path>: <message>"``."""
    warnings.warn(WeakLabelWarning(f"{path}: {message}" if path is not None else message), stacklevel=3)


@dataclass(frozen=True)
class FileProblem:
    """One image a batch loader skipped: its id, the offending file, the error class and message."""

    image_id: str
    path: Optional[Path]
    kind: str
    message: str

    @classmethod
    def from_error(cls, image_id: str, error: WeakLabelError) -> "FileProblem":
        return cls(image_id=image_id, path=error.path, kind=type(error).__name__, message=str(error))

    def __str__(self) -> str:
        return f"[{self.image_id}] {self.kind}: {self.message}"
