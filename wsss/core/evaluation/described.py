"""Evaluating a folder of predicted label PNGs against the ground truth a dataset description names
(PNG folder, COCO segmentations or LabelMe polygons), with the dataset's class names."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from wsss.core.datasets import DescribedDataset
from wsss.core.evaluation.folders import MissingPredictionsError
from wsss.core.evaluation.metrics import SegmentationMetrics, confusion_matrix
from wsss.core.weak_labels.classes import IGNORE_INDEX
from wsss.core.weak_labels.errors import MissingFileError, PathLike
from wsss.core.weak_labels.images import read_label_png


def evaluate_described(dataset: DescribedDataset, *, pred_dir: PathLike,
                       ids: Optional[Sequence[str]] = None) -> SegmentationMetrics:
    """mIoU of ``pred_dir/<id>.png`` against the described ground truth, with the dataset's class names.

    Args:
        ids: default: the dataset's ids that have ground truth.

    Raises:
        MissingFileError: the description has no ground truth, or listed ids lack a prediction.
        SizeMismatchError, InvalidMaskError: as :func:`wsss.core.evaluation.evaluate_folders`.
    """
    if dataset.description.ground_truth is None:
        raise MissingFileError(dataset.description.path, "the dataset description has no ground_truth to evaluate on")
    pred_dir = Path(pred_dir)
    ids = [i for i in dataset.ids if dataset.has_gt(i)] if ids is None else list(ids)
    missing = [i for i in ids if not (pred_dir / f"{i}.png").is_file()]
    if missing:
        raise MissingPredictionsError(pred_dir, missing, "prediction(s)")
    num_labels = dataset.num_foreground + 1
    confusion = np.zeros((num_labels, num_labels + 1), np.int64)
    for image_id in ids:
        gt = dataset.read_gt(image_id)
        pred = read_label_png(pred_dir / f"{image_id}.png", num_foreground=dataset.num_foreground,
                              height=gt.shape[0], width=gt.shape[1], what="prediction")
        confusion += confusion_matrix(pred, gt, num_labels=num_labels, ignore_index=IGNORE_INDEX)
    return SegmentationMetrics.from_confusion(confusion, num_images=len(ids), class_names=dataset.classes)
