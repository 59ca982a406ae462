"""VOC palette PNG masks: atomic writing, validated reading, and a check of a whole mask folder.

A mask is ``uint8 [H, W]``: 0 background, ``1..C`` classes, 255 void / ignored. It is written as a
palette (``P``) PNG with the VOC colour map, so that it opens as colours in any viewer and reads back
as class indices. :func:`write_mask` writes to a temporary file in the target folder, flushes it to
disk and renames it over the target (:func:`os.replace` is atomic on POSIX and Windows): an
interrupted job leaves either no file or the previous complete one, never a truncated mask.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
from PIL import Image

from wsss.core.atomic import TEMP_SUFFIX, atomic_write
from wsss.core.weak_labels.classes import voc_palette
from wsss.core.weak_labels.errors import FileProblem, InvalidMaskError, PathLike, WeakLabelError
from wsss.core.weak_labels.images import check_label_values, image_size, read_label_png

_PALETTE = voc_palette().reshape(-1).tolist()  # constant, flattened for Image.putpalette


def write_mask(path: PathLike, mask: np.ndarray, *, num_foreground: int = 20, durable: bool = True,
               palette: Optional[np.ndarray] = None) -> Path:
    """Write ``mask`` (``uint8 [H, W]``, values ``0..num_foreground`` or 255) as a VOC palette PNG, atomically.

    The folder is created if needed. The temporary file (``.<name>.<random>.tmp`` in the same folder)
    is removed if anything fails. With ``durable`` (default) the file and the folder are fsync'ed, so
    the mask also survives a power loss; ``durable=False`` keeps the atomic rename (an interrupted
    process still leaves no partial file) but skips the fsyncs, for bulk writes of reproducible data.

    Raises:
        InvalidMaskError: ``mask`` is not 2-D or has values outside ``0..num_foreground`` / 255.
    """
    path = Path(path)
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise InvalidMaskError(path, f"mask to write has shape {mask.shape}; expected [H, W]")
    check_label_values(mask, num_foreground=num_foreground, path=path, what="mask to write")
    image = Image.fromarray(mask.astype(np.uint8, copy=False))  # "L"; putpalette makes it "P"
    image.putpalette(_PALETTE if palette is None else np.asarray(palette, np.uint8).reshape(-1).tolist())

    with atomic_write(path, durable=durable) as handle:
        image.save(handle, format="PNG")
    return path



def read_mask(
    path: PathLike, *, num_foreground: int = 20, height: Optional[int] = None, width: Optional[int] = None
) -> np.ndarray:
    """Read a mask (palette or grey PNG). Returns ``uint8 [H, W]``.

    Raises:
        MissingFileError, CorruptImageError: absent or unreadable file.
        SizeMismatchError: size differs from ``height x width`` (when given).
        InvalidMaskError: values outside ``0..num_foreground`` and 255.
    """
    return read_label_png(path, num_foreground=num_foreground, height=height, width=width, what="mask")


def mask_agreement(a: PathLike, b: PathLike) -> float:
    """Share of pixels on which the masks ``a/<id>.png`` and ``b/<id>.png`` agree, over the PNGs of ``a``."""
    same = total = 0
    for path in sorted(Path(a).glob("*.png")):
        x, y = read_mask(path), read_mask(Path(b) / path.name)
        same += int(np.count_nonzero(x == y))
        total += x.size
    return same / max(total, 1)


def validate_mask_dir(
    mask_dir: PathLike,
    *,
    ids: Optional[Sequence[str]] = None,
    gt_dir: Optional[PathLike] = None,
    num_foreground: int = 20,
) -> List[FileProblem]:
    """Check every mask of a folder; returns the problems (empty when all is well), never raises on a mask.

    Args:
        mask_dir: folder of ``<id>.png`` masks.
        ids: ids that must have a mask (missing ones are problems); default: every PNG in the folder.
        gt_dir: if given, each mask's size must equal ``gt_dir/<id>.png``'s (a missing ground truth is
            a problem too).
        num_foreground: allowed values are ``0..num_foreground`` and 255.

    Returns:
        One :class:`FileProblem` per bad id: missing, unreadable, wrong values or wrong size. Leftover
        temporary files of an interrupted writer are reported too.
    """
    mask_dir = Path(mask_dir)
    if ids is None:
        ids = sorted(p.stem for p in mask_dir.glob("*.png"))
    problems: List[FileProblem] = []
    for image_id in ids:
        path = mask_dir / f"{image_id}.png"
        try:
            height = width = None
            if gt_dir is not None:
                height, width = image_size(Path(gt_dir) / f"{image_id}.png")
            read_mask(path, num_foreground=num_foreground, height=height, width=width)
        except WeakLabelError as exc:
            problems.append(FileProblem.from_error(image_id, exc))
    for tmp in sorted(mask_dir.glob(f".*{TEMP_SUFFIX}")):
        problems.append(FileProblem(image_id=tmp.name, path=tmp, kind="TemporaryFile",
                                    message=f"{tmp}: leftover temporary file of an interrupted write"))
    return problems
