"""Reading RGB images and single-channel label PNGs, with errors that name the file.

Label PNGs (ground truth, scribbles, masks, predictions) are read as the palette *indices* of a ``P``
image, or the values of an ``L`` / ``I`` image. An ``RGB`` label PNG (a palette image saved as colours)
is mapped back through the VOC palette; a colour outside the palette is an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import numpy as np
from PIL import Image, UnidentifiedImageError

from wsss.core.weak_labels.classes import IGNORE_INDEX, voc_palette
from wsss.core.weak_labels.errors import (
    CorruptImageError,
    InvalidMaskError,
    MissingFileError,
    PathLike,
    SizeMismatchError,
)


def _open(path: Path, what: str) -> Image.Image:
    if not path.is_file():
        raise MissingFileError(path, f"{what} not found")
    try:
        return Image.open(path)
    except (UnidentifiedImageError, OSError) as exc:
        raise CorruptImageError(path, f"cannot read {what}: {exc}") from exc


def read_image(path: PathLike) -> np.ndarray:
    """Decode an image fully. Returns ``uint8 [H, W, 3]`` RGB.

    Raises:
        MissingFileError: no such file.
        CorruptImageError: not an image, or truncated / corrupt data.
    """
    path = Path(path)
    with _open(path, "image") as img:
        try:
            img.load()
            return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
        except (OSError, SyntaxError, ValueError) as exc:
            raise CorruptImageError(path, f"corrupt image data: {exc}") from exc


def image_size(path: PathLike) -> Tuple[int, int]:
    """``(height, width)`` from the image header only (does not decode the pixels)."""
    path = Path(path)
    with _open(path, "image") as img:
        width, height = img.size
    return int(height), int(width)


def _rgb_to_index(rgb: np.ndarray, path: Path) -> np.ndarray:
    palette = voc_palette().astype(np.int64)
    codes = (palette[:, 0] << 16) | (palette[:, 1] << 8) | palette[:, 2]
    lookup = {int(c): i for i, c in enumerate(codes)}
    pix = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    uniq, inverse = np.unique(pix, return_inverse=True)
    bad = [int(u) for u in uniq if int(u) not in lookup]
    if bad:
        colours = ", ".join(f"#{b:06x}" for b in bad[:5])
        raise InvalidMaskError(path, f"RGB label PNG has colours outside the VOC palette ({colours})")
    return np.array([lookup[int(u)] for u in uniq], np.uint8)[inverse].reshape(pix.shape)


def read_label_png(
    path: PathLike,
    *,
    num_foreground: int = 20,
    height: Optional[int] = None,
    width: Optional[int] = None,
    what: str = "label map",
) -> np.ndarray:
    """Read and validate a label PNG. Returns ``uint8 [H, W]`` with values in ``0..num_foreground`` or 255.

    Args:
        num_foreground: number of foreground classes ``C`` (20 for VOC).
        height, width: expected size (the image's); checked when given.
        what: a word for messages (``"scribble map"``, ``"ground truth"``, ...).

    Raises:
        MissingFileError, CorruptImageError: file absent or unreadable.
        SizeMismatchError: size differs from ``height x width``.
        InvalidMaskError: values outside ``0..C`` / 255, or a mode that is not a label map.
    """
    path = Path(path)
    with _open(path, what) as img:
        try:
            img.load()
            mode = img.mode
            if mode in ("P", "L", "I", "I;16", "I;16B", "I;16L"):
                arr = np.asarray(img)
            elif mode in ("RGB", "RGBA"):
                arr = _rgb_to_index(np.asarray(img.convert("RGB")), path)
            else:
                raise InvalidMaskError(path, f"{what} has PNG mode {mode!r}; expected a palette or grey label map")
        except OSError as exc:
            raise CorruptImageError(path, f"corrupt {what}: {exc}") from exc
    if arr.ndim != 2:
        raise InvalidMaskError(path, f"{what} has shape {arr.shape}; expected a single channel")
    if height is not None and width is not None and arr.shape != (height, width):
        raise SizeMismatchError(
            path, f"{what} is {arr.shape[1]}x{arr.shape[0]} (WxH) but the image is {width}x{height}"
        )
    check_label_values(arr, num_foreground=num_foreground, path=path, what=what)
    return arr.astype(np.uint8, copy=False)


def check_label_values(label_map: np.ndarray, *, num_foreground: int = 20, path: Optional[PathLike] = None,
                       what: str = "label map") -> None:
    """Raise :class:`InvalidMaskError` if ``label_map`` has values outside ``0..num_foreground`` and 255."""
    if label_map.dtype == np.uint8:  # the common case: a histogram is much faster than np.unique
        values = np.flatnonzero(np.bincount(label_map.reshape(-1), minlength=256))
    else:
        values = np.unique(label_map)
    bad = values[(values > num_foreground) & (values != IGNORE_INDEX) | (values < 0)]
    if bad.size:
        shown = ", ".join(str(int(v)) for v in bad[:10])
        raise InvalidMaskError(
            path, f"{what} has values outside 0..{num_foreground} and {IGNORE_INDEX}: {shown}"
        )
