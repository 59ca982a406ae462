"""Sanity report of the logic constraints on the real VOC slice (not a test; prints numbers).

For each image, in SAM's low-res frame (the frame the loss is evaluated in): the mean log-truth per
grounding of each constraint type for the one-hot ground truth and for three wrong masks (boxes
filled with their class, the ground truth shifted by a few cells, all background); and the boundary
recall of the SLIC superpixels for several settings.

Void pixels (VOC's band along every object border) have no known class. Two ways to leave them out:
* "void unknown" (main table): void pixels take part in the constraints with every class true
  (log-truth 0 for all k), so they can satisfy an ``exists`` but never violate anything;
* "void invalid": void pixels are removed through the valid mask. A box row whose only object
  pixels are void then has no pixel of the class left, and the ground truth "violates" it.

    python benchmarks/report_logic_voc.py [--root ../shared/data/voc2012] [--limit N] [--lowres 256]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Dict

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from logic.constraints import CompiledConstraints, ConstraintConfig  # noqa: E402

CONSTRAINT_NAMES = ("background", "box_tightness", "scribbles", "neighbourhood", "border_precision")
from logic.superpixels import DEFAULT_COMPACTNESS, DEFAULT_N_SEGMENTS, DEFAULT_SIGMA, boundary_recall, compute_superpixels  # noqa: E402
from wsss.core.frames import SamFrame  # noqa: E402
from wsss.core.datasets import DescribedDataset, voc_dataset  # noqa: E402
from wsss.core.weak_labels import read_image, read_label_png  # noqa: E402

NUM_LABELS = 21
MASKS = ("ground_truth", "box_filled", "shifted", "all_background", "ground_truth_void_invalid")


def one_hot_log(labels: np.ndarray, num_labels: int = NUM_LABELS) -> torch.Tensor:
    """``[K, H, W]`` log of a one-hot map (``0`` / ``-inf``); label 255 (void) is true for every class."""
    lab = torch.as_tensor(np.where(labels == 255, 0, labels).astype(np.int64))
    log_probs = torch.log(torch.nn.functional.one_hot(lab, num_labels).permute(2, 0, 1).double())
    log_probs[:, torch.as_tensor(labels == 255)] = 0.0
    return log_probs


def box_filled(boxes: np.ndarray, classes: np.ndarray, shape) -> np.ndarray:
    """Boxes filled with their class, larger boxes drawn first (small objects stay visible)."""
    out = np.zeros(shape, np.int64)
    order = np.argsort(-(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), kind="stable")
    for i in order:
        x0, y0, x1, y1 = boxes[i]
        out[y0:y1, x0:x1] = classes[i]
    return out


def shifted(labels: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``labels`` moved by ``(dy, dx)`` cells, background shifted in."""
    out = np.zeros_like(labels)
    h, w = labels.shape
    out[max(dy, 0): h + min(dy, 0), max(dx, 0): w + min(dx, 0)] = labels[max(-dy, 0): h - max(dy, 0), max(-dx, 0): w - max(dx, 0)]
    return out


def lowres_problem(ds: DescribedDataset, image_id: str, *, lowres: int, sp_settings: Dict):
    """Everything of one image in the low-res frame: labels, valid mask, constraints inputs, superpixels."""
    ann = ds.load(image_id)
    frame = SamFrame(height=ann.height, width=ann.width, encoder_size=4 * lowres, lowres=lowres)
    gt = read_label_png(ann.gt_path, height=ann.height, width=ann.width)
    gt_low = frame.label_map_to_lowres(gt)  # 255 on padding and void
    in_frame = frame.valid_lowres().numpy()
    valid = in_frame & (gt_low != 255)  # "void invalid"
    scribbles = None if ann.scribbles is None else frame.label_map_to_lowres(ann.scribbles, keep_thin=True)
    image_low = frame.image_to_lowres(read_image(ann.image_path))
    sp = compute_superpixels(image_low, valid=in_frame, **sp_settings)
    return dict(
        gt=gt_low, in_frame=in_frame, valid=valid, image=image_low, superpixels=sp,
        boxes=frame.boxes_to_lowres(ann.boxes), box_classes=ann.box_classes, scribbles=scribbles,
    )


def compile_constraints(pb: Dict, *, valid: np.ndarray) -> CompiledConstraints:
    return CompiledConstraints.build(
        num_labels=NUM_LABELS, boxes=pb["boxes"], box_classes=pb["box_classes"], valid=valid,
        scribbles=pb["scribbles"], superpixels=pb["superpixels"], config=ConstraintConfig(normalisation="mean"),
    )


def mean_truths(cc: CompiledConstraints, labels: np.ndarray) -> Dict[str, float]:
    truths = cc.truths(one_hot_log(labels))
    return {k: truths[k].item() / cc.num_groundings[k] for k in truths}


def score(pb: Dict, *, shift: int) -> Dict[str, Dict[str, float]]:
    """Mean log-truth per grounding of each constraint type, for each of :data:`MASKS` ("void
    unknown"), and for the ground truth with void removed through the valid mask ("void invalid")."""
    cc = compile_constraints(pb, valid=pb["in_frame"])
    gt = pb["gt"].astype(np.int64)  # 255 = void, only left in the ground truth itself
    no_void = np.where(gt == 255, 0, gt)
    masks = {
        "ground_truth": gt,
        "box_filled": box_filled(pb["boxes"], pb["box_classes"], gt.shape),
        "shifted": shifted(no_void, shift, shift),
        "all_background": np.zeros_like(gt),
    }
    out = {name: mean_truths(cc, labels) for name, labels in masks.items()}
    out["ground_truth_void_invalid"] = mean_truths(compile_constraints(pb, valid=pb["valid"]), no_void)
    return out


def main() -> None:
    default_root = os.environ.get("WSSS_VOC_ROOT", str(Path(__file__).resolve().parents[2] / "shared" / "data" / "voc2012"))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", default=default_root)
    ap.add_argument("--split", default=None, help="ImageSets/Segmentation split (default: every image)")
    ap.add_argument("--limit", type=int, default=0, help="first N images only (0 = all)")
    ap.add_argument("--lowres", type=int, default=256, help="low-res frame size (SAM: 256)")
    ap.add_argument("--shift", type=int, default=0, help="cells to shift the ground truth by (default lowres/64)")
    ap.add_argument("--sweep", action="store_true", help="also sweep SLIC settings for boundary recall")
    args = ap.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    shift = args.shift or max(1, args.lowres // 64)

    ds = voc_dataset(args.root, split=args.split)
    ids = ds.ids[: args.limit] if args.limit else ds.ids
    default_sp = dict(n_segments=DEFAULT_N_SEGMENTS, compactness=DEFAULT_COMPACTNESS, sigma=DEFAULT_SIGMA)
    sweep = [default_sp]
    if args.sweep:
        sweep += [dict(n_segments=n, compactness=c, sigma=DEFAULT_SIGMA) for n in (300, 600, 1200) for c in (5.0, 10.0)
                  if not (n == DEFAULT_N_SEGMENTS and c == DEFAULT_COMPACTNESS)]

    scores = {m: {k: [] for k in CONSTRAINT_NAMES} for m in MASKS}
    recalls = {i: {1: [], 2: []} for i in range(len(sweep))}
    seg_counts = {i: [] for i in range(len(sweep))}
    gt_violations = {k: 0 for k in ("background", "box_tightness", "scribbles")}
    t0 = time.perf_counter()
    for n, image_id in enumerate(ids):
        pb = lowres_problem(ds, image_id, lowres=args.lowres, sp_settings=default_sp)
        if pb["box_classes"].size == 0:
            continue
        result = score(pb, shift=shift)
        for m in MASKS:
            for k, v in result[m].items():
                scores[m][k].append(v)
        for k in gt_violations:
            gt_violations[k] += int(k in result["ground_truth"] and result["ground_truth"][k] < -1e-3)
        for i, settings in enumerate(sweep):
            sp = pb["superpixels"] if i == 0 else compute_superpixels(pb["image"], valid=pb["in_frame"], **settings)
            seg_counts[i].append(int(sp.max()) + 1)
            for tol in (1, 2):
                recalls[i][tol].append(boundary_recall(sp, pb["gt"], tolerance=tol, valid=pb["in_frame"]))
        if (n + 1) % 50 == 0:
            print(f"  {n + 1}/{len(ids)} images, {time.perf_counter() - t0:.0f} s", flush=True)

    count = len(scores["ground_truth"]["background"])
    print(f"\nVOC slice {args.root}: {count} images with boxes, low-res frame {args.lowres}x{args.lowres}, "
          f"shift {shift} cells, eps 1e-6, normalisation 'mean' (log-truth per grounding)\n")
    header = f"{'mean log-truth / grounding':28s}" + "".join(f"{m[:15]:>16s}" for m in MASKS)
    print(header)
    print("-" * len(header))
    for k in CONSTRAINT_NAMES:
        row = f"{k:28s}"
        for m in MASKS:
            vals = scores[m][k]
            row += f"{np.mean(vals):16.4g}" if vals else f"{'-':>16s}"
        print(row)
    total = {m: np.mean([sum(scores[m][k][i] for k in ("background", "box_tightness")) for i in range(count)]) for m in MASKS}
    print(f"{'bg + box (per image mean)':28s}" + "".join(f"{total[m]:16.4g}" for m in MASKS))
    print("(columns: void unknown, except the last: ground truth with void removed through the valid mask)")
    print(f"\nimages where the ground truth violates a weak-label constraint (mean log-truth < -1e-3): {gt_violations}")
    print("\nSLIC boundary recall (ground-truth borders, void filled by nearest label; Chebyshev tolerance):")
    print(f"{'n_segments':>10s} {'compactness':>11s} {'segments':>9s} {'recall@1':>9s} {'recall@2':>9s}")
    for i, s in enumerate(sweep):
        mark = "  <- default" if i == 0 else ""
        print(f"{s['n_segments']:>10d} {s['compactness']:>11.1f} {np.mean(seg_counts[i]):>9.0f} "
              f"{np.mean(recalls[i][1]):>9.3f} {np.mean(recalls[i][2]):>9.3f}{mark}")
    print(f"\n{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
