"""Segmentation evaluation: confusion-matrix mIoU over the VOC classes (255 ignored)."""

from stage1_pseudolabel.evaluation.folders import MissingPredictionsError, evaluate_folders
from stage1_pseudolabel.evaluation.metrics import SegmentationMetrics, confusion_matrix, iou_per_class

__all__ = ["MissingPredictionsError", "SegmentationMetrics", "confusion_matrix", "evaluate_folders", "iou_per_class"]
