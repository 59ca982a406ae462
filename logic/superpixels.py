"""Superpixels for the border-precision constraint, and how well they follow object borders.

Superpixels are computed at the resolution the loss is evaluated at (for SAM: the 256 x 256 low-res
frame, where the image itself fills about 256 x 190 cells). Border precision asks the pixels inside
a segment to agree, so a segment must rarely straddle an object border (high boundary recall) while
staying large enough to constrain most adjacent pairs. On the real VOC slice at 256 (20 images,
``benchmarks/report_logic_voc.py --sweep``): 300 segments reach recall 0.79 / 0.92 at 1 / 2 cells,
600 segments 0.87 / 0.98 with 86 % of adjacent pairs inside a segment, 1200 segments 0.93 / 0.998
with 81 %. The default is 600 at compactness 10 (SLIC in CIELAB; compactness 5 is within 0.01).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from scipy import ndimage
from skimage.segmentation import slic

#: SLIC settings used by default (chosen on the real VOC slice, see benchmarks/report_logic_voc.py).
DEFAULT_N_SEGMENTS = 600
DEFAULT_COMPACTNESS = 10.0
DEFAULT_SIGMA = 0.5


def compute_superpixels(
    image: np.ndarray,
    *,
    valid: Optional[np.ndarray] = None,
    n_segments: int = DEFAULT_N_SEGMENTS,
    compactness: float = DEFAULT_COMPACTNESS,
    sigma: float = DEFAULT_SIGMA,
) -> np.ndarray:
    """SLIC superpixels of an RGB image.

    Args:
        image: ``uint8 [H, W, 3]`` RGB (at the resolution of the constraint map).
        valid: ``bool [H, W]`` where superpixels are computed (padding excluded), or None = all.
        n_segments: approximate number of superpixels over the valid area.
        compactness: SLIC colour/space trade-off (higher: more regular, fewer edges followed).
        sigma: Gaussian pre-smoothing width in pixels.

    Returns:
        ``int64 [H, W]`` superpixel ids ``0..S-1``, ``-1`` outside ``valid``.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be [H, W, 3], got {image.shape}")
    mask = None if valid is None else np.asarray(valid, bool)
    if mask is not None and not mask.any():
        return np.full(image.shape[:2], -1, np.int64)
    if mask is not None:
        rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        if mask[r0:r1, c0:c1].all():
            # A rectangle (SAM's padded frame): SLIC on the crop, unmasked. With a mask, skimage seeds
            # its centres by k-means over every valid pixel, several times the segmentation's cost.
            out = np.full(image.shape[:2], -1, np.int64)
            out[r0:r1, c0:c1] = compute_superpixels(image[r0:r1, c0:c1], n_segments=n_segments,
                                                    compactness=compactness, sigma=sigma)
            return out
    labels = slic(
        image,
        n_segments=n_segments,
        compactness=compactness,
        sigma=sigma,
        start_label=1,
        mask=mask,
        channel_axis=-1,
        enforce_connectivity=True,
    ).astype(np.int64)
    # slic labels masked-out pixels 0 and segments from 1.
    return labels - 1


def fill_void(labels: np.ndarray, *, ignore_index: int = 255) -> np.ndarray:
    """Replace ``ignore_index`` pixels by the nearest non-void label (VOC draws a void band along
    object borders; filling it puts the border in the middle of the band)."""
    void = labels == ignore_index
    if not void.any() or void.all():
        return labels.copy()
    _, (rows, cols) = ndimage.distance_transform_edt(void, return_indices=True)
    return labels[rows, cols]


def boundary_map(labels: np.ndarray) -> np.ndarray:
    """``bool [H, W]``: pixels whose right or lower neighbour has another label."""
    edge = np.zeros(labels.shape, bool)
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return edge


def boundary_recall(
    superpixels: np.ndarray,
    gt: np.ndarray,
    *,
    tolerance: int = 1,
    ignore_index: int = 255,
    valid: Optional[np.ndarray] = None,
) -> float:
    """Fraction of ground-truth border pixels within ``tolerance`` pixels (Chebyshev) of a superpixel
    border.

    Args:
        superpixels: ``int [H, W]`` superpixel ids.
        gt: ``int [H, W]`` class labels; ``ignore_index`` (void) is first filled by the nearest label.
        tolerance: distance in pixels.
        valid: ``bool [H, W]`` region to score (e.g. excluding padding), or None = all.

    Returns:
        Recall in ``[0, 1]``; 1.0 when the ground truth has no border.
    """
    if superpixels.shape != gt.shape:
        raise ValueError(f"superpixels {superpixels.shape} and gt {gt.shape} differ in shape")
    gt_edge = boundary_map(fill_void(np.asarray(gt), ignore_index=ignore_index))
    sp_edge = boundary_map(np.asarray(superpixels))
    if valid is not None:
        valid = np.asarray(valid, bool)
        gt_edge &= valid
        # The border of the valid region itself is not an image border.
        gt_edge &= ndimage.binary_erosion(valid, structure=np.ones((3, 3), bool), border_value=1)
    if tolerance > 0:
        sp_edge = ndimage.binary_dilation(sp_edge, structure=np.ones((2 * tolerance + 1,) * 2, bool))
    total = int(gt_edge.sum())
    return 1.0 if total == 0 else float((gt_edge & sp_edge).sum()) / total
