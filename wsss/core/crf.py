"""Fully connected (dense) CRF refinement of per-pixel class probabilities, as in DeepLab v1/v2.

Used by both stages, always optional: stage 1 refines pseudo-masks with it (config key ``crf``),
stage 2 refines test predictions (``stage2_segnet.test --crf``). The mean-field inference of
Kraehenbuehl & Koltun (NeurIPS 2011) through ``pydensecrf2`` (the maintained fork of ``pydensecrf``;
a C++ extension built from source at install time, see ``requirements/core.txt``). Without it,
:func:`dense_crf` raises an ``ImportError`` that says how to install it.

Defaults are DeepLab v2's cross-validated PASCAL VOC settings: bilateral weight 4, spatial std 67 px,
colour std 3; Gaussian (smoothness) weight 3, std 1; 10 iterations. All distances are in pixels of
the image (not of the 1024 or low-res frames) and colours in 0..255 RGB.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Mapping, Optional

import numpy as np

INSTALL_HINT = "dense CRF needs pydensecrf2: `.venv/bin/pip install pydensecrf2==1.1` (builds a C++ extension)"


@dataclass(frozen=True)
class CRFParams:
    """Weights and kernel widths (pixels, RGB levels) of the dense CRF."""

    iterations: int = 10
    bi_weight: float = 4.0
    bi_xy_std: float = 67.0
    bi_rgb_std: float = 3.0
    pos_weight: float = 3.0
    pos_xy_std: float = 1.0


def crf_params(values: Optional[Mapping[str, Any]], *, where: str = "crf") -> CRFParams:
    """:class:`CRFParams` from a config mapping (``{}``: defaults); unknown keys are errors."""
    values = dict(values or {})
    names = {f.name for f in fields(CRFParams)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(names))}")
    params = CRFParams(**{k: (int(v) if k == "iterations" else float(v)) for k, v in values.items()})
    if params.iterations < 1 or min(params.bi_xy_std, params.bi_rgb_std, params.pos_xy_std) <= 0:
        raise ValueError(f"{where}: iterations must be >= 1 and every std > 0, got {params}")
    return params


def require_crf() -> None:
    """Raise the install hint now (before a long run) if ``pydensecrf2`` is missing."""
    if not crf_available():
        raise ImportError(INSTALL_HINT)


def crf_available() -> bool:
    try:
        import pydensecrf.densecrf  # noqa: F401
    except ImportError:
        return False
    return True


def dense_crf(image: np.ndarray, probs: np.ndarray, params: CRFParams = CRFParams()) -> np.ndarray:
    """Refine class probabilities with a dense CRF.

    Args:
        image: ``uint8 [H, W, 3]`` RGB image.
        probs: ``float [C, H, W]`` class probabilities (each pixel sums to 1).
        params: CRF weights and kernel widths.

    Returns:
        ``float32 [C, H, W]`` marginals after mean-field inference.
    """
    try:
        import pydensecrf.densecrf as dcrf
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    num_labels, height, width = probs.shape
    if image.shape[:2] != (height, width):
        raise ValueError(f"image is {image.shape[:2]} but probabilities are {(height, width)}")
    unary = -np.log(np.clip(probs, 1e-8, 1.0)).reshape(num_labels, -1).astype(np.float32)
    crf = dcrf.DenseCRF2D(width, height, num_labels)
    crf.setUnaryEnergy(np.ascontiguousarray(unary))
    crf.addPairwiseGaussian(sxy=params.pos_xy_std, compat=params.pos_weight)
    crf.addPairwiseBilateral(sxy=params.bi_xy_std, srgb=params.bi_rgb_std,
                             rgbim=np.ascontiguousarray(image, dtype=np.uint8), compat=params.bi_weight)
    q = crf.inference(params.iterations)
    return np.asarray(q, dtype=np.float32).reshape(num_labels, height, width)
