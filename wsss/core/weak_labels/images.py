"""Reading RGB images and single-channel label PNGs, with errors that name the file.

Images are read as the annotator saw them: by default (``orientation="exif"``) the EXIF orientation
tag is applied (LabelMe, CVAT and every image viewer display JPEGs so); ``orientation="stored"`` keeps
the stored pixel order (what COCO's ``width`` / ``height`` usually describe).
:func:`choose_orientation` picks the one whose size matches an annotation's recorded size. Every
reader and every step that decodes pixels goes through :func:`read_image` / :func:`image_size` with
the annotation's orientation, so boxes, scribbles and pixels agree. Grey, CMYK, palette, alpha and
16-bit images are all returned as 8-bit RGB.

Label PNGs (ground truth, scribbles, masks, predictions) are read as the palette *indices* of a ``P``
image, or the values of an ``L`` / ``I`` image. An ``RGB`` label PNG (a palette image saved as colours)
is mapped back through the VOC palette; a colour outside the palette is an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Tuple

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


#: ``"exif"``: the EXIF orientation tag applied (as viewers show the image); ``"stored"``: pixels as stored.
ORIENTATIONS = ("exif", "stored")

#: EXIF orientation -> PIL transpose that shows the image upright (1, or no tag: nothing to do).
_EXIF_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_EXIF_ORIENTATION_TAG = 0x0112


def _check_orientation(orientation: str) -> None:
    if orientation not in ORIENTATIONS:
        raise ValueError(f"orientation must be one of {ORIENTATIONS}, got {orientation!r}")


def exif_orientation(img: Image.Image) -> int:
    """The EXIF orientation tag of an opened image (1..8; 1 when absent or invalid). Header only."""
    try:
        value = int(img.getexif().get(_EXIF_ORIENTATION_TAG, 1))
    except (OSError, SyntaxError, TypeError, ValueError):  # a broken EXIF block: shown as stored
        return 1
    return value if value in _EXIF_TRANSPOSE else 1


def _to_rgb(img: Image.Image) -> np.ndarray:
    """``uint8 [H, W, 3]`` of any PIL mode: 16/32-bit grey scaled to 8 bits (PIL's own conversion clips
    them to white), CMYK / palette / alpha / grey through PIL."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img).astype(np.int64)
        grey = (arr >> 8).clip(0, 255) if arr.max(initial=0) > 255 else arr.clip(0, 255)
        return np.repeat(grey.astype(np.uint8)[..., None], 3, axis=2)
    if img.mode == "F":
        grey = np.asarray(img, np.float64)
        top = 1.0 if grey.max(initial=0.0) <= 1.0 else 255.0
        grey = np.clip(grey * (255.0 / top), 0, 255).round().astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def read_image(path: PathLike, *, orientation: str = "exif") -> np.ndarray:
    """Decode an image fully. Returns ``uint8 [H, W, 3]`` RGB, in ``orientation`` (module docstring).

    Raises:
        MissingFileError: no such file.
        CorruptImageError: not an image, or truncated / corrupt data.
    """
    _check_orientation(orientation)
    path = Path(path)
    with _open(path, "image") as img:
        try:
            img.load()
            transpose = _EXIF_TRANSPOSE.get(exif_orientation(img)) if orientation == "exif" else None
            rgb = _to_rgb(img)
        except (OSError, SyntaxError, ValueError) as exc:
            raise CorruptImageError(path, f"corrupt image data: {exc}") from exc
    if transpose is not None:
        rgb = np.asarray(Image.fromarray(rgb).transpose(transpose))
    return np.array(rgb, dtype=np.uint8, order="C")  # a writable copy (PIL's buffer is read-only)


def image_size(path: PathLike, *, orientation: str = "exif") -> Tuple[int, int]:
    """``(height, width)`` in ``orientation``, from the image header only (does not decode the pixels)."""
    _check_orientation(orientation)
    path = Path(path)
    with _open(path, "image") as img:
        width, height = img.size
        swap = orientation == "exif" and exif_orientation(img) >= 5  # 5..8 turn the image by 90 degrees
    return (int(width), int(height)) if swap else (int(height), int(width))


def choose_orientation(path: PathLike, *, height: int, width: int,
                       prefer: Sequence[str] = ("stored", "exif")) -> str:
    """The orientation (of ``prefer``, first match wins) in which the image is ``height x width``.

    COCO files record the size of the image as their tool saw it: ``prefer=("stored", "exif")`` reads a
    rotated phone photo as stored when its stored size matches, with EXIF applied otherwise.

    Raises:
        SizeMismatchError: no orientation gives the recorded size (the message lists both sizes).
    """
    path = Path(path)
    sizes = {o: image_size(path, orientation=o) for o in ORIENTATIONS}
    for orientation in prefer:
        if sizes[orientation] == (height, width):
            return orientation
    shown = ", ".join(f"{o}: {w}x{h}" for o, (h, w) in sizes.items())
    raise SizeMismatchError(path, f"the annotation says {width}x{height} (WxH) but the image is {shown}; "
                                  "no orientation matches")


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
