"""The constraints on real VOC images, in a reduced SAM low-res frame (128 x 128, encoder 512).

The one-hot ground truth must (almost) satisfy the weak-label constraints; a box-filled mask, a
shifted ground truth and an all-background mask must score clearly worse. Void pixels are "unknown"
(true for every class, see benchmarks/report_logic_voc.py, which prints the full numbers).
"""

from __future__ import annotations

from typing import Dict, List

import numpy as np
import pytest
import torch

from logic.constraints import CompiledConstraints, ConstraintConfig
from logic.superpixels import boundary_recall, compute_superpixels

pytestmark = pytest.mark.realdata

NUM_LABELS = 21
LOWRES = 128
N_IMAGES = 6
WEAK = ("background", "box_tightness", "scribbles")


def _one_hot_log(labels: np.ndarray) -> torch.Tensor:
    lab = torch.as_tensor(np.where(labels == 255, 0, labels).astype(np.int64))
    log_probs = torch.log(torch.nn.functional.one_hot(lab, NUM_LABELS).permute(2, 0, 1).double())
    log_probs[:, torch.as_tensor(labels == 255)] = 0.0  # void: unknown, true for every class
    return log_probs


def _box_filled(boxes, classes, shape) -> np.ndarray:
    out = np.zeros(shape, np.int64)
    for i in np.argsort(-(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), kind="stable"):
        x0, y0, x1, y1 = boxes[i]
        out[y0:y1, x0:x1] = classes[i]
    return out


@pytest.fixture(scope="module")
def scored(voc_root) -> List[Dict]:
    voc_dataset = pytest.importorskip("wsss.core.datasets").voc_dataset
    from wsss.core.frames import SamFrame
    from wsss.core.weak_labels import read_image, read_label_png

    ds = voc_dataset(voc_root, split="train")
    results = []
    for image_id in ds.ids:
        ann = ds.load(image_id)
        if not len(ann.boxes) or ann.scribbles is None or ann.gt_path is None:
            continue
        frame = SamFrame(height=ann.height, width=ann.width, encoder_size=4 * LOWRES, lowres=LOWRES)
        gt = frame.label_map_to_lowres(read_label_png(ann.gt_path, height=ann.height, width=ann.width)).astype(np.int64)
        in_frame = frame.valid_lowres().numpy()
        image = frame.image_to_lowres(read_image(ann.image_path))
        superpixels = compute_superpixels(image, valid=in_frame, n_segments=150)  # 600 at 256 -> 150 at 128
        boxes = frame.boxes_to_lowres(ann.boxes)
        cc = CompiledConstraints.build(
            num_labels=NUM_LABELS, boxes=boxes, box_classes=ann.box_classes, valid=in_frame,
            scribbles=frame.label_map_to_lowres(ann.scribbles, keep_thin=True), superpixels=superpixels,
            config=ConstraintConfig(normalisation="mean"),
        )
        gt[~in_frame] = 0  # padding: outside the valid mask anyway
        no_void = np.where(gt == 255, 0, gt)
        shifted = np.zeros_like(no_void)
        shifted[3:, 3:] = no_void[:-3, :-3]
        masks = {"gt": gt, "box_filled": _box_filled(boxes, ann.box_classes, gt.shape), "shifted": shifted,
                 "all_background": np.zeros_like(gt)}
        entry = {"id": image_id, "recall": boundary_recall(superpixels, np.where(in_frame, gt, 255), tolerance=1, valid=in_frame)}
        for name, labels in masks.items():
            log_probs = _one_hot_log(labels)
            truths = cc.truths(log_probs)
            entry[name] = {k: v.item() / cc.num_groundings[k] for k, v in truths.items()}
            entry[name]["loss"] = cc.loss(log_probs).item()
        results.append(entry)
        if len(results) == N_IMAGES:
            break
    assert results, "no VOC image with boxes, scribbles and ground truth"
    names = ("gt", "box_filled", "shifted", "all_background")
    keys = sorted({k for e in results for k in e["gt"]})
    print(f"\nmean log-truth per grounding over {len(results)} VOC images at {LOWRES}x{LOWRES}:")
    for k in keys:
        print(f"  {k:18s}" + "".join(f" {n}={np.mean([e[n][k] for e in results if k in e[n]]):.3g}" for n in names))
    print(f"  SLIC boundary recall@1: {np.mean([e['recall'] for e in results]):.3f}")
    return results


def test_ground_truth_satisfies_the_weak_label_constraints(scored):
    for k, bound in (("background", -0.02), ("box_tightness", -1e-3), ("scribbles", -1e-3)):
        values = [e["gt"][k] for e in scored if k in e["gt"]]
        # (background: the boxes of this slice are approximate, a few object cells fall outside)
        assert np.mean(values) > bound, (k, values)
        assert min(values) > 10 * bound, (k, values)


def test_wrong_masks_score_clearly_worse(scored):
    for e in scored:
        for wrong in ("box_filled", "shifted", "all_background"):
            assert e[wrong]["loss"] > e["gt"]["loss"] + 0.05, (e["id"], wrong, e[wrong]["loss"], e["gt"]["loss"])
    mean = lambda mask, k: np.mean([e[mask].get(k, 0.0) for e in scored])  # noqa: E731
    gt = {k: mean("gt", k) for k in WEAK + ("border_precision",)}
    assert mean("all_background", "box_tightness") < gt["box_tightness"] - 1.0
    assert mean("shifted", "box_tightness") < gt["box_tightness"] - 0.1
    assert mean("shifted", "background") < gt["background"] - 0.01
    assert mean("box_filled", "scribbles") < gt["scribbles"] - 0.1
    assert mean("box_filled", "border_precision") < gt["border_precision"] - 0.01


def test_superpixels_follow_ground_truth_borders(scored):
    assert np.mean([e["recall"] for e in scored]) > 0.7
