"""Evaluating a folder of predicted label PNGs against a folder of ground-truth PNGs."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from wsss.core.evaluation.metrics import SegmentationMetrics, confusion_matrix
from wsss.core.weak_labels.classes import IGNORE_INDEX, VOC_CLASSES
from wsss.core.weak_labels.errors import MissingFileError, PathLike
from wsss.core.weak_labels.images import read_label_png


class MissingPredictionsError(MissingFileError):
    """Some listed ids have no prediction (or no ground truth); ``missing`` holds all of them."""

    def __init__(self, path: Path, missing: Sequence[str], what: str) -> None:
        self.missing = list(missing)
        shown = ", ".join(self.missing[:50]) + (" ..." if len(self.missing) > 50 else "")
        super().__init__(path, f"{len(self.missing)} {what} missing: {shown}")


def evaluate_folders(
    *,
    pred_dir: PathLike,
    gt_dir: PathLike,
    ids: Optional[Sequence[str]] = None,
    class_names: Sequence[str] = VOC_CLASSES,
    ignore_index: int = IGNORE_INDEX,
) -> SegmentationMetrics:
    """mIoU of ``pred_dir/<id>.png`` against ``gt_dir/<id>.png``.

    Args:
        ids: the ids to evaluate (e.g. an ``ImageSets`` list). Default: every PNG in ``pred_dir``.
        class_names: ``C`` names, index 0 background (21 for VOC).

    Raises:
        MissingPredictionsError: listed ids without a prediction (all listed in one error, before any
            work), or predictions without ground truth.
        SizeMismatchError: a prediction whose size differs from its ground truth (names the file).
        InvalidMaskError: values outside ``0..C-1`` / ``ignore_index`` in a prediction or ground truth.
    """
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    for folder in (pred_dir, gt_dir):
        if not folder.is_dir():
            raise MissingFileError(folder, "folder not found")
    if ids is None:
        ids = sorted(p.stem for p in pred_dir.glob("*.png"))
    ids = list(ids)
    missing_pred = [i for i in ids if not (pred_dir / f"{i}.png").is_file()]
    if missing_pred:
        raise MissingPredictionsError(pred_dir, missing_pred, "prediction(s)")
    missing_gt = [i for i in ids if not (gt_dir / f"{i}.png").is_file()]
    if missing_gt:
        raise MissingPredictionsError(gt_dir, missing_gt, "ground-truth file(s)")

    num_labels = len(class_names)
    confusion = np.zeros((num_labels, num_labels + 1), np.int64)
    for image_id in ids:
        gt = read_label_png(gt_dir / f"{image_id}.png", num_foreground=num_labels - 1, what="ground truth")
        pred = read_label_png(pred_dir / f"{image_id}.png", num_foreground=num_labels - 1,
                              height=gt.shape[0], width=gt.shape[1], what="prediction")
        confusion += confusion_matrix(pred, gt, num_labels=num_labels, ignore_index=ignore_index)
    return SegmentationMetrics.from_confusion(confusion, num_images=len(ids), class_names=class_names)
