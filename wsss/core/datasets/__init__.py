"""Datasets described by one YAML file (:mod:`.description`) and read into
:class:`~wsss.core.weak_labels.annotation.ImageAnnotation` by the weak-label readers (:mod:`.dataset`).

Scoring predictions against a description's ground truth is in evaluation
(:func:`wsss.core.evaluation.evaluate_described`): evaluation reads datasets, never the reverse."""

from wsss.core.datasets.dataset import (
    DescribedDataset,
    dataset_class_names,
    open_described,
    voc_dataset,
    voc_split_list,
)
from wsss.core.datasets.description import (
    DatasetDescription,
    DatasetDescriptionError,
    Source,
    VOC_DESCRIPTION,
    class_palette,
    load_description,
    voc_description,
)

__all__ = [
    "DatasetDescription", "DatasetDescriptionError", "DescribedDataset", "Source", "class_palette",
    "VOC_DESCRIPTION", "dataset_class_names", "load_description", "open_described", "voc_dataset", "voc_description",
    "voc_split_list",
]
