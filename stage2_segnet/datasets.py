"""PASCAL VOC with stage 1's pseudo-masks as training labels, registered in mmseg's registries.

* ``PseudoMaskVOCDataset``: the VOC image list (or a described dataset's, with its own
  ``metainfo.classes`` / ``palette``: ``--dataset``, :func:`stage2_segnet.launch.apply_dataset`) (``ImageSets/Segmentation/<split>.txt``) with label
  maps from ``pseudo_dir`` (stage 1's output) instead of ``SegmentationClass``. Without ``pseudo_dir``
  it is mmseg's ``PascalVOCDataset`` (validation and test read the real ``SegmentationClass``). Every
  listed image must have its label map: missing ones are listed in the error.
* ``LoadVOCLabel``: mmseg's ``LoadAnnotations`` reading label PNGs through
  :func:`wsss.core.masks.read_mask`: palette indices, grey values, or RGB colours mapped
  back through the VOC palette; a value outside ``0..20`` / 255 is refused with the file named.
"""

from __future__ import annotations

import json
import os.path as osp
from typing import List, Optional

import mmengine
from mmseg.datasets import PascalVOCDataset
import numpy as np
from mmcv.transforms import LoadImageFromFile
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import DATASETS, TRANSFORMS

from wsss.core.masks import read_mask
from wsss.core.weak_labels.images import read_image

from .checks import NUM_FOREGROUND


@TRANSFORMS.register_module()
class LoadDatasetImage(LoadImageFromFile):
    """mmcv's ``LoadImageFromFile`` reading the image in its annotation's orientation when the dataset
    gives one (``results['orientation']``, from a dataset description's image index): the pixels stage 1
    saw (:func:`wsss.core.weak_labels.images.read_image`), e.g. a COCO photo whose JSON describes its
    stored pixels although it carries an EXIF rotation (OpenCV would turn it). BGR, as mmcv's."""

    def transform(self, results: dict) -> Optional[dict]:
        orientation = results.get("orientation")
        if orientation is None or self.backend_args is not None:
            return super().transform(results)
        img = np.ascontiguousarray(read_image(results["img_path"], orientation=orientation)[..., ::-1])
        if self.to_float32:
            img = img.astype(np.float32)
        results["img"] = img
        results["img_shape"] = img.shape[:2]
        results["ori_shape"] = img.shape[:2]
        return results


@TRANSFORMS.register_module()
class LoadVOCLabel(LoadAnnotations):
    """Load a VOC label PNG (``results['seg_map_path']``) as ``gt_seg_map``, validating its ids."""

    def __init__(self, num_foreground: int = NUM_FOREGROUND, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_foreground = num_foreground

    def _load_seg_map(self, results: dict) -> None:
        if self.backend_args is not None:  # a remote file backend: mmseg's reader
            return super()._load_seg_map(results)
        seg = read_mask(results["seg_map_path"], num_foreground=self.num_foreground)
        if results.get("reduce_zero_label", False):
            raise ValueError("VOC labels keep background as class 0: set reduce_zero_label=False")
        if results.get("label_map", None) is not None:
            remapped = seg.copy()
            for old_id, new_id in results["label_map"].items():
                remapped[seg == old_id] = new_id
            seg = remapped
        results["gt_seg_map"] = seg
        results["seg_fields"].append("gt_seg_map")

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(num_foreground={self.num_foreground})"


@DATASETS.register_module()
class PseudoMaskVOCDataset(PascalVOCDataset):
    """VOC images of ``ann_file`` with label maps from ``pseudo_dir`` (or ``SegmentationClass``).

    Args:
        ann_file: image list, relative to ``data_root`` unless absolute.
        pseudo_dir: folder of ``<id>.png`` pseudo-masks; relative paths are taken from the working
            directory (where stage 1 wrote them), not from ``data_root``. None: the ``data_prefix``
            ``seg_map_path`` (``SegmentationClass``) is used, as for validation.
        require_labels: every image must have its label map (False for the test split, which has
            none: its pipeline must not load labels).
        image_index: a JSON file ``{id: [image path, orientation]}`` (written by ``--dataset``): each id's
            image, whatever its folder or extension, and how to read it (:class:`LoadDatasetImage`);
            None: ``<img_path>/<id><img_suffix>``.
        **kwargs: as mmseg's ``PascalVOCDataset`` / ``BaseSegDataset``.
    """

    def __init__(self, ann_file: str, pseudo_dir: Optional[str] = None, require_labels: bool = True,
                 image_index: Optional[str] = None, **kwargs) -> None:
        if pseudo_dir is not None:
            data_prefix = dict(kwargs.pop("data_prefix", None) or dict(img_path="JPEGImages"))
            data_prefix["seg_map_path"] = osp.abspath(osp.expanduser(pseudo_dir))
            kwargs["data_prefix"] = data_prefix
        self.pseudo_dir = pseudo_dir
        self.require_labels = require_labels
        self.image_index = image_index
        kwargs.setdefault("reduce_zero_label", False)
        super().__init__(ann_file=ann_file, **kwargs)

    @classmethod
    def get_label_map(cls, new_classes=None):
        """None: label values are always the indices of the dataset's own class list (a dataset
        description's ``metainfo.classes``, VOC's by default), never remapped by class name."""
        return None

    def load_data_list(self) -> List[dict]:
        data_list = super().load_data_list()
        if self.image_index is not None:  # one line of ann_file per entry, in order
            with open(self.image_index, encoding="utf-8") as handle:
                index = json.load(handle)
            ids = [line.strip() for line in mmengine.list_from_file(self.ann_file)]
            unknown = [i for i in ids if i not in index]
            if unknown:
                raise FileNotFoundError(f"{len(unknown)} id(s) of {self.ann_file} are not in {self.image_index}: "
                                        f"{', '.join(unknown[:10])}")
            for info, image_id in zip(data_list, ids):
                info["img_path"], info["orientation"] = index[image_id]
        if not self.require_labels:
            return data_list
        missing = [d["seg_map_path"] for d in data_list if not osp.isfile(d["seg_map_path"])]
        if missing:
            shown = "\n  ".join(missing[:10])
            more = f"\n  ... and {len(missing) - 10} more" if len(missing) > 10 else ""
            what = "pseudo-masks (run stage 1 on this list first)" if self.pseudo_dir else "label maps"
            raise FileNotFoundError(
                f"{len(missing)} of {len(data_list)} images of {self.ann_file} have no {what}:\n  {shown}{more}"
            )
        return data_list

