"""``SegTTAWithScores``: mmseg's test-time augmentation that also keeps the merged class scores.

mmseg's ``SegTTAModel`` averages the softmax of every augmented view (scales x flips) into the
prediction, but hands on the scores of one view only; a dense CRF after TTA must refine the merged
distribution. Here ``seg_logits`` is ``log`` of the averaged probabilities (so its softmax is that
average) and the sample is marked ``tta_merged`` for :class:`~stage2_segnet.metrics.VOCIoUMetric`.
"""

from __future__ import annotations

from typing import List

from mmengine.structures import PixelData
from mmseg.models.segmentors.seg_tta import SegTTAModel
from mmseg.registry import MODELS


@MODELS.register_module()
class SegTTAWithScores(SegTTAModel):
    """``SegTTAModel`` whose merged sample carries ``seg_logits = log(mean softmax)`` of all views."""

    def merge_preds(self, data_samples_list: List[list]) -> list:
        merged = super().merge_preds(data_samples_list)
        for sample, views in zip(merged, data_samples_list):
            probs = sum(v.seg_logits.data.softmax(dim=0) for v in views) / len(views)
            sample.set_data({"seg_logits": PixelData(data=probs.clamp_min(1e-12).log())})
            sample.set_metainfo({"tta_merged": True})
        return merged
