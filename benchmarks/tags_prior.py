"""Does the image-tag constraint remove classes an image does not have? (logic level, no SAM)

    .venv/bin/python benchmarks/tags_prior.py [--scenes 40] [--steps 150]

Stage 1's class channels are the classes of an image's boxes or scribbles, so a class without any weak
label never appears there; tags matter where a model predicts over *all* classes. This benchmark
isolates the constraint: on synthetic target scenes (6 classes + background, 64 x 64), a per-pixel
prediction over all 7 channels starts from the ground truth blurred by noise *plus* blobs of 1-2
classes absent from the scene (the errors tags can fix), and is optimised directly (free logits, Adam)
under the scribble and neighbourhood constraints, with and without

    tags:  (forall k in tagged: exists p in pixels: k(p)) and (forall k in untagged: forall p in pixels: not k(p))

Tags are given for half the scenes (the others have none: the formula is left out of them). Prints,
for the tagged and the untagged scenes, how many scenes still predict a class outside their tags
(their true classes), and the mIoU.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from logic.constraints import CompiledConstraints, ConstraintConfig  # noqa: E402
from wsss.core.evaluation.metrics import SegmentationMetrics, confusion_matrix  # noqa: E402
from wsss.core.synthetic.scenes import DEFAULT_CLASSES, render_scene  # noqa: E402

TAGS = "(forall k in tagged: exists p in pixels: k(p)) and (forall k in untagged: forall p in pixels: not k(p))"
SIZE = 64


def scene_problem(index: int, seed: int):
    scene = render_scene(seed=seed, domain="target", split="train", index=index, height=160, width=160)
    lut = np.full(256, 255, np.int64)
    lut[0] = 0
    lut[list(DEFAULT_CLASSES)] = np.arange(1, len(DEFAULT_CLASSES) + 1)
    label = lut[cv2.resize(scene.label, (SIZE, SIZE), interpolation=cv2.INTER_NEAREST)]
    scribbles = lut[cv2.resize(scene.scribbles, (SIZE, SIZE), interpolation=cv2.INTER_NEAREST)]
    k = 1 + len(DEFAULT_CLASSES)
    rng = np.random.default_rng(1000 + index)
    logits = 3.0 * np.eye(k)[label].transpose(2, 0, 1) + rng.normal(0, 1.0, (k, SIZE, SIZE))
    present = set(np.unique(label).tolist())
    absent = [c for c in range(1, k) if c not in present]
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    for c in rng.choice(absent, size=min(len(absent), int(rng.integers(1, 3))), replace=False):
        for _ in range(int(rng.integers(1, 3))):
            cy, cx, r = rng.uniform(8, SIZE - 8), rng.uniform(8, SIZE - 8), rng.uniform(5, 10)
            logits[c][(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] += 6.0
    tags = np.zeros(k, bool)
    tags[sorted(present - {0})] = True
    return label, scribbles, logits.astype(np.float32), tags


def optimise(problem, *, with_tags: bool, tagged: bool, steps: int) -> np.ndarray:
    label, scribbles, logits0, tags = problem
    k = logits0.shape[0]
    weights = {"scribbles": 1.0, "neighbourhood": 1.0, "background": 0.0, "box_tightness": 0.0, "border_precision": 0.0}
    formulas = {"tags": TAGS} if with_tags else {}
    if with_tags:
        weights["tags"] = 1.0
    cc = CompiledConstraints.build(num_labels=k, valid=np.ones((SIZE, SIZE), bool), scribbles=scribbles,
                                   tags=tags if tagged else None, config=ConstraintConfig(weights, formulas=formulas))
    logits = torch.tensor(logits0, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=0.1)
    for _ in range(steps):
        opt.zero_grad()
        cc.loss(torch.log_softmax(logits, dim=0)).backward()
        opt.step()
    return logits.detach().argmax(0).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenes", type=int, default=40)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--seed", type=int, default=21)
    args = ap.parse_args()
    torch.set_num_threads(1)
    problems = [scene_problem(i, args.seed) for i in range(args.scenes)]
    k = 1 + len(DEFAULT_CLASSES)
    results = {}
    for name, with_tags in (("start (noisy prediction)", None), ("scribbles + neighbourhood", False),
                            ("... + tags formula", True)):
        counts = {"tagged": [0, 0], "untagged": [0, 0]}
        conf = np.zeros((k, k + 1), np.int64)
        for i, pb in enumerate(problems):
            tagged = i % 2 == 0
            pred = pb[2].argmax(0) if with_tags is None else optimise(pb, with_tags=with_tags, tagged=tagged, steps=args.steps)
            extra = set(np.unique(pred).tolist()) - {0} - set(np.flatnonzero(pb[3]).tolist())
            group = "tagged" if tagged else "untagged"
            counts[group][0] += int(bool(extra))
            counts[group][1] += 1
            conf += confusion_matrix(pred, pb[0], num_labels=k)
        miou = SegmentationMetrics.from_confusion(conf, num_images=len(problems), class_names=[str(c) for c in range(k)]).miou
        results[name] = (counts, miou)
        print(f"{name}: scenes predicting a class they do not have: tagged {counts['tagged'][0]}/{counts['tagged'][1]}, "
              f"untagged {counts['untagged'][0]}/{counts['untagged'][1]}; mIoU {miou:.2f}", flush=True)


if __name__ == "__main__":
    main()
