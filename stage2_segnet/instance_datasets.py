"""mmdet's COCO dataset reading each image in the orientation stage 1 read it in (a described dataset).

``OrientedCocoDataset`` is mmdet's ``CocoDataset`` whose entries carry ``orientation`` from an image
index (``{id: [image path, orientation]}``, :func:`stage2_segnet.launch.write_image_index`), and
``LoadDatasetImage`` (:mod:`stage2_segnet.datasets`, registered here in mmdet's registry too) reads
the image so: the pixels the pseudo-labels and the ground truth were made on, e.g. a COCO photo whose
JSON describes its stored pixels although it carries an EXIF rotation (OpenCV would turn it). An image
missing from the index is read as mmcv reads it. Registered by
:func:`stage2_segnet.register.register_instances`.
"""

from __future__ import annotations

import json
import os.path as osp
from typing import Optional

from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS, TRANSFORMS

from .datasets import LoadDatasetImage

TRANSFORMS.register_module(name="LoadDatasetImage", module=LoadDatasetImage, force=True)


@DATASETS.register_module()
class OrientedCocoDataset(CocoDataset):
    """``CocoDataset`` with ``orientation`` on each entry whose image is in ``image_index``."""

    def __init__(self, *args, image_index: Optional[str] = None, **kwargs) -> None:
        self.image_index = image_index
        self._orientation = {}
        if image_index is not None:
            with open(image_index, encoding="utf-8") as handle:
                self._orientation = {osp.realpath(path): o for path, o in json.load(handle).values()}
        super().__init__(*args, **kwargs)  # loads the data list: the index must be read before

    def parse_data_info(self, raw_data_info: dict) -> dict:
        info = super().parse_data_info(raw_data_info)
        orientation = self._orientation.get(osp.realpath(info["img_path"]))
        if orientation is not None:
            info["orientation"] = orientation
        return info
