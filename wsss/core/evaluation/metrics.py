"""Confusion-matrix segmentation metrics: per-class IoU, mIoU and pixel accuracy.

Conventions: rows of the confusion matrix are ground-truth classes, columns predicted classes.
Pixels whose ground truth is ``ignore_index`` (255) are not counted. A *prediction* of
``ignore_index`` on a counted pixel (a pseudo-mask that abstains) counts against the ground-truth
class as a miss and for no predicted class; it is kept in the extra last column of the matrix, so the
matrix is ``[C, C + 1]`` with ``C = num_labels`` (21 for VOC: background and 20 classes).
IoU of class ``c`` = ``TP / (GT_c + PRED_c - TP)``; a class absent from both ground truth and
prediction has IoU NaN and is left out of the mean (as mmsegmentation does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from wsss.core.weak_labels.classes import IGNORE_INDEX, VOC_CLASSES


def confusion_matrix(
    pred: np.ndarray, gt: np.ndarray, *, num_labels: int = 21, ignore_index: int = IGNORE_INDEX
) -> np.ndarray:
    """Confusion counts of one image (or any same-shaped arrays).

    Args:
        pred: ``int [...]`` predicted labels in ``0..num_labels-1`` or ``ignore_index``.
        gt: ``int [...]`` ground truth, same shape, in ``0..num_labels-1`` or ``ignore_index``.

    Returns:
        ``int64 [num_labels, num_labels + 1]``: ``[g, p]`` counts pixels of class ``g`` predicted
        ``p``; column ``num_labels`` counts pixels predicted ``ignore_index``.

    Raises:
        ValueError: shapes differ, or values outside the allowed range.
    """
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} != ground-truth shape {gt.shape}")
    gt = gt.reshape(-1).astype(np.int64)
    pred = pred.reshape(-1).astype(np.int64)
    valid = gt != ignore_index
    gt, pred = gt[valid], pred[valid]
    pred = np.where(pred == ignore_index, num_labels, pred)
    if gt.size and (gt.min() < 0 or gt.max() >= num_labels):
        raise ValueError(f"ground truth has values outside 0..{num_labels - 1} and {ignore_index}")
    if pred.size and (pred.min() < 0 or pred.max() > num_labels):
        raise ValueError(f"prediction has values outside 0..{num_labels - 1} and {ignore_index}")
    counts = np.bincount(gt * (num_labels + 1) + pred, minlength=num_labels * (num_labels + 1))
    return counts.reshape(num_labels, num_labels + 1)


def iou_per_class(confusion: np.ndarray) -> np.ndarray:
    """``float64 [C]`` IoU of each class from a ``[C, C + 1]`` (or ``[C, C]``) matrix; NaN where undefined."""
    confusion = np.asarray(confusion, np.float64)
    c = confusion.shape[0]
    tp = np.diag(confusion[:, :c])
    gt_total = confusion.sum(axis=1)
    pred_total = confusion[:, :c].sum(axis=0)
    union = gt_total + pred_total - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


@dataclass
class SegmentationMetrics:
    """Metrics of a whole evaluation. IoU and accuracy values are percentages (0..100).

    Attributes:
        miou: mean of the defined per-class IoUs.
        pixel_accuracy: correctly labelled counted pixels / counted pixels.
        per_class_iou: class name -> IoU (NaN if the class occurs in neither GT nor prediction).
        confusion: ``int64 [C, C + 1]`` accumulated confusion matrix (see module docstring).
        num_images: images evaluated.
    """

    miou: float
    pixel_accuracy: float
    per_class_iou: Dict[str, float]
    confusion: np.ndarray
    num_images: int
    class_names: List[str] = field(default_factory=list)

    @classmethod
    def from_confusion(
        cls, confusion: np.ndarray, *, num_images: int, class_names: Sequence[str] = VOC_CLASSES
    ) -> "SegmentationMetrics":
        confusion = np.asarray(confusion, np.int64)
        c = confusion.shape[0]
        names = list(class_names)[:c] if len(class_names) >= c else [str(i) for i in range(c)]
        iou = iou_per_class(confusion) * 100.0
        total = confusion.sum()
        correct = np.trace(confusion[:, :c])
        return cls(
            miou=float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
            pixel_accuracy=float(100.0 * correct / total) if total else float("nan"),
            per_class_iou={n: float(v) for n, v in zip(names, iou)},
            confusion=confusion,
            num_images=num_images,
            class_names=names,
        )

    def to_dict(self) -> dict:
        """JSON-ready dict (NaN IoUs become None)."""
        def clean(v: float) -> Optional[float]:
            return None if np.isnan(v) else round(float(v), 4)

        return {
            "mIoU": clean(self.miou),
            "pixel_accuracy": clean(self.pixel_accuracy),
            "per_class_iou": {k: clean(v) for k, v in self.per_class_iou.items()},
            "num_images": self.num_images,
            "confusion": self.confusion.tolist(),
            "confusion_columns": self.class_names + ["<ignored prediction>"],
        }

    def format_table(self) -> str:
        """Per-class IoU table, then mIoU and pixel accuracy."""
        width = max(len(n) for n in self.class_names + ["pixel accuracy"])
        lines = [f"{'class':<{width}}  IoU (%)", "-" * (width + 9)]
        for name, value in self.per_class_iou.items():
            lines.append(f"{name:<{width}}  {'   n/a' if np.isnan(value) else f'{value:6.2f}'}")
        lines.append("-" * (width + 9))
        lines.append(f"{'mIoU':<{width}}  {self.miou:6.2f}")
        lines.append(f"{'pixel accuracy':<{width}}  {self.pixel_accuracy:6.2f}")
        lines.append(f"({self.num_images} images)")
        return "\n".join(lines)
