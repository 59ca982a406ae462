"""The Semantic Boundaries Dataset (SBD, Hariharan et al. 2011): VOC 2011 images re-annotated, as
``benchmark.tgz`` publishes them (``benchmark_RELEASE/dataset/``)::

    cls/<id>.mat     GTcls.Segmentation: uint8 [H, W], 0 background, 1..20 VOC classes (no 255 band)
    inst/<id>.mat    GTinst.Segmentation: uint8 [H, W], 0 background, 1..N objects;
                     GTinst.Categories: [N, 1], the VOC class of object n (1-based rows)
    train.txt, val.txt  its id lists (8,498 and 2,857 images)

MATLAB structs read with :func:`scipy.io.loadmat` as torchvision's ``SBDataset`` reads them
(``mat["GTcls"][0]["Segmentation"][0]``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Tuple

import numpy as np

from wsss.core.weak_labels.errors import MalformedAnnotationError, MissingFileError, PathLike

SBD_NUM_FOREGROUND = 20


def _struct_field(path: Path, struct: str, name: str) -> np.ndarray:
    from scipy.io import loadmat

    if not path.is_file():
        raise MissingFileError(path, "SBD .mat file not found")
    try:
        mat = loadmat(str(path))
        return np.asarray(mat[struct][0][name][0])
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        raise MalformedAnnotationError(path, f"not an SBD {struct} file ({struct}.{name} missing: {exc})") from exc
    except Exception as exc:  # scipy's own read errors (truncated, not MATLAB)
        raise MalformedAnnotationError(path, f"unreadable .mat file ({exc})") from exc


def read_sbd_class_mat(path: PathLike) -> np.ndarray:
    """``uint8 [H, W]`` class map of ``cls/<id>.mat`` (0 background, 1..20).

    Raises:
        MissingFileError, MalformedAnnotationError: (both name the file) no file, not an SBD class
            file, or values outside 0..20.
    """
    path = Path(path)
    seg = _struct_field(path, "GTcls", "Segmentation")
    if seg.ndim != 2 or (seg.size and (seg.min() < 0 or seg.max() > SBD_NUM_FOREGROUND)):
        raise MalformedAnnotationError(path, f"GTcls.Segmentation must be a 2-D map of 0..{SBD_NUM_FOREGROUND}")
    return seg.astype(np.uint8)


def read_sbd_instance_mat(path: PathLike) -> Tuple[np.ndarray, np.ndarray]:
    """``(instances, classes)`` of ``inst/<id>.mat``: ``int32 [H, W]`` object ids (0 background, 1..N)
    and ``int64 [N]`` the class of object ``n`` at index ``n - 1``.

    Raises:
        MissingFileError, MalformedAnnotationError: (both name the file) no file, not an SBD instance
            file, an object id without a category, or a category outside 1..20.
    """
    path = Path(path)
    seg = _struct_field(path, "GTinst", "Segmentation").astype(np.int32)
    categories = _struct_field(path, "GTinst", "Categories").astype(np.int64).reshape(-1)
    if seg.ndim != 2:
        raise MalformedAnnotationError(path, "GTinst.Segmentation must be a 2-D map")
    top = int(seg.max()) if seg.size else 0
    if top > len(categories):
        raise MalformedAnnotationError(path, f"object id {top} but only {len(categories)} categories")
    if len(categories) and (categories.min() < 1 or categories.max() > SBD_NUM_FOREGROUND):
        raise MalformedAnnotationError(path, f"GTinst.Categories must be in 1..{SBD_NUM_FOREGROUND}")
    return seg, categories
