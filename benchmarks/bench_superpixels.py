"""Superpixels in SAM's low-res frame: time per image and boundary recall, masked SLIC vs the crop.

    python benchmarks/bench_superpixels.py [--root ../shared/data/voc2012] [--limit 40] [--lowres 256]

SAM's low-res frame holds the image in its top-left rectangle (the rest is padding). skimage's SLIC
with ``mask=`` seeds its centres by k-means over every valid pixel; :func:`logic.superpixels.
compute_superpixels` segments the rectangle's crop without a mask instead. Both with the default
settings (600 segments, compactness 10, sigma 0.5), on real VOC images; recall at 1 and 2 cells of
the ground truth's borders (:func:`logic.superpixels.boundary_recall`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from logic.superpixels import (  # noqa: E402
    DEFAULT_COMPACTNESS,
    DEFAULT_N_SEGMENTS,
    DEFAULT_SIGMA,
    boundary_recall,
    compute_superpixels,
)


def masked_slic(image: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """skimage's SLIC with the valid mask (``-1`` outside it)."""
    from skimage.segmentation import slic

    return slic(image, n_segments=DEFAULT_N_SEGMENTS, compactness=DEFAULT_COMPACTNESS, sigma=DEFAULT_SIGMA,
                start_label=1, mask=valid, channel_axis=-1, enforce_connectivity=True).astype(np.int64) - 1


def main() -> int:
    from wsss.core.frames import SamFrame
    from wsss.core.datasets import voc_dataset
    from wsss.core.weak_labels import read_image, read_label_png

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=os.environ.get("WSSS_VOC_ROOT", "../shared/data/voc2012"))
    ap.add_argument("--limit", type=int, default=40)
    ap.add_argument("--lowres", type=int, default=256)
    args = ap.parse_args()
    ds = voc_dataset(args.root, split="train")
    methods = {"masked SLIC (skimage mask=)": lambda img, v: masked_slic(img, v),
               "crop (compute_superpixels)": lambda img, v: compute_superpixels(img, valid=v)}
    stats = {name: {"s": 0.0, "r1": [], "r2": [], "segments": []} for name in methods}
    for image_id in ds.ids[: args.limit]:
        ann = ds.load(image_id)
        frame = SamFrame(height=ann.height, width=ann.width, encoder_size=4 * args.lowres, lowres=args.lowres)
        valid = frame.valid_lowres().numpy()
        image = frame.image_to_lowres(read_image(ann.image_path))
        gt = frame.label_map_to_lowres(read_label_png(ann.gt_path, height=ann.height, width=ann.width)).astype(np.int64)
        gt = np.where(valid, gt, 255)
        for name, method in methods.items():
            t0 = time.perf_counter()
            sp = method(image, valid)
            stats[name]["s"] += time.perf_counter() - t0
            stats[name]["r1"].append(boundary_recall(sp, gt, tolerance=1, valid=valid))
            stats[name]["r2"].append(boundary_recall(sp, gt, tolerance=2, valid=valid))
            stats[name]["segments"].append(int(sp.max()) + 1)
    n = min(args.limit, len(ds.ids))
    print(f"{n} VOC images, {args.lowres} x {args.lowres} frame, {DEFAULT_N_SEGMENTS} segments asked")
    print(f"{'method':<30} {'ms/img':>8} {'recall@1':>9} {'recall@2':>9} {'segments':>9}")
    for name, s in stats.items():
        print(f"{name:<30} {1000 * s['s'] / n:8.0f} {np.mean(s['r1']):9.3f} {np.mean(s['r2']):9.3f} "
              f"{np.mean(s['segments']):9.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
