"""Segmentation evaluation: confusion-matrix mIoU over the VOC classes or a described dataset's classes
(255 ignored)."""

from wsss.core.evaluation.described import evaluate_described
from wsss.core.evaluation.folders import MissingPredictionsError, evaluate_folders
from wsss.core.evaluation.metrics import SegmentationMetrics, confusion_matrix, iou_per_class

__all__ = [
    "MissingPredictionsError", "SegmentationMetrics", "confusion_matrix", "evaluate_described", "evaluate_folders",
    "iou_per_class",
]
