"""``VOCIoUMetric``: mmseg's ``IoUMetric`` with optional dense-CRF refinement and VOC palette PNGs.

* ``crf``: None, or a dict of :class:`wsss.core.crf.CRFParams` fields; each prediction is then
  refined with a dense CRF on the image before it is scored and written. The model's per-class
  scores become probabilities by ``scores='softmax'`` (decode-head logits, DeepLab) or
  ``scores='normalize'`` (Mask2Former's per-class mask scores, already in [0, 1]).
* per-class IoU: ``IoU.<class>`` beside mmseg's ``mIoU`` / ``mAcc`` / ``aAcc``.
* after :class:`~stage2_segnet.tta.SegTTAWithScores`, the CRF refines the views' mean distribution.
* ``output_dir``: prediction PNGs ``<id>.png`` as VOC palette images (what the PASCAL VOC
  evaluation server takes), written atomically. With ``format_only`` (the test split, no ground
  truth) only the PNGs are written.
"""

from __future__ import annotations

import os.path as osp
from typing import Dict, Optional, Sequence

import numpy as np
import torch
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS

from wsss.core.crf import crf_params, dense_crf
from wsss.core.masks import write_mask
from wsss.core.weak_labels.classes import IGNORE_INDEX, voc_palette
from wsss.core.weak_labels.images import read_image


@METRICS.register_module()
class VOCIoUMetric(IoUMetric):
    """IoU metric (mIoU over 21 classes, 255 ignored) + optional CRF + VOC palette prediction PNGs."""

    def __init__(self, crf: Optional[dict] = None, scores: str = "softmax", **kwargs) -> None:
        super().__init__(**kwargs)
        if scores not in ("softmax", "normalize"):
            raise ValueError(f"scores must be 'softmax' or 'normalize', got {scores!r}")
        self.crf = crf_params(crf, where="VOCIoUMetric crf") if crf is not None else None
        self.scores = scores

    def _refine(self, data_sample: dict) -> torch.Tensor:
        scores = data_sample["seg_logits"]["data"].float().cpu()
        if self.scores == "softmax" or data_sample.get("tta_merged"):  # TTA: log of the views' mean probabilities
            probs = scores.softmax(0)
        else:
            probs = scores.clamp(min=0) + 1e-6
            probs = probs / probs.sum(0, keepdim=True)
        # The orientation the prediction was made in (a described dataset's, packed by PackSegInputs;
        # default: as viewers show it, which is how LoadImageFromFile (OpenCV) reads a file).
        image = read_image(data_sample["img_path"], orientation=data_sample.get("orientation", "exif"))
        if image.shape[:2] != tuple(probs.shape[1:]):
            raise ValueError(f"{data_sample['img_path']}: image is {image.shape[:2]}, "
                             f"prediction is {tuple(probs.shape[1:])}")
        return torch.from_numpy(dense_crf(image, probs.numpy(), self.crf).argmax(0))

    def _palette(self) -> np.ndarray:
        """``uint8 [256, 3]``: the dataset's class colours (a description's) over the VOC colour map."""
        palette = voc_palette()
        colours = np.asarray(self.dataset_meta.get("palette") or [], np.uint8).reshape(-1, 3)[:IGNORE_INDEX]
        palette[: len(colours)] = colours
        return palette

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """mmseg's metrics, and ``IoU.<class>`` per class (%, NaN for a class in neither prediction
        nor ground truth), as stage 1's evaluation reports them."""
        metrics = super().compute_metrics(results)
        if not results:  # format_only: predictions written, nothing scored
            return metrics
        intersect = sum(r[0] for r in results).double()
        union = sum(r[1] for r in results).double()
        iou = torch.where(union > 0, 100 * intersect / union.clamp_min(1), torch.full_like(union, float("nan")))
        for name, value in zip(self.dataset_meta["classes"], iou.tolist()):
            metrics[f"IoU.{name}"] = value
        return metrics

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        num_labels = len(self.dataset_meta["classes"])
        for data_sample in data_samples:
            pred = data_sample["pred_sem_seg"]["data"].squeeze()
            if self.crf is not None:
                pred = self._refine(data_sample).to(pred)
            if not self.format_only:
                label = data_sample["gt_sem_seg"]["data"].squeeze().to(pred)
                self.results.append(self.intersect_and_union(pred, label, num_labels, self.ignore_index))
            if self.output_dir is not None:
                name = osp.splitext(osp.basename(data_sample["img_path"]))[0]
                write_mask(osp.join(self.output_dir, f"{name}.png"), pred.cpu().numpy().astype(np.uint8),
                           num_foreground=num_labels - 1, palette=self._palette())
