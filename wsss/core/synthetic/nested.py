"""A synthetic domain with nested structure: an outer object that contains an inner object of another
class, as the optic disc contains the cup in a fundus photograph (the paper's REFUGE2 setting).

Each scene shows one outer ellipse (``OUTER``, VOC index 1, "aeroplane" in the VOC class list: the
stand-in for the disc) with one inner ellipse (``INNER``, VOC index 3, "bird": the cup) strictly
inside it, both with soft (blurred) edges and brightness gradients, on a textured background with
clutter. The inner object is brighter than the outer one but its edge is faint (low contrast, as the
cup's), which is what makes it hard. Weak labels: a box for each object (exact ground truth,
instances, clicks and scribbles are written as for the other synthetic scenes); ``inner_box_margin``
makes the inner object's box loose, as an annotator's box around a small faint structure is (grown by
that fraction of its size on every side, clipped to the image), so that its mask can leak out of the
outer object. ``inner_label="click"`` writes no box for the inner object: it is annotated by its click
only (the issue's setting: boxes for the outer object, clicks for the inner one); ``inner_label="tag"``
writes no box either, for a run that reads the inner object from the image's tags only
(``weak_labels: [boxes, tags]``). Every scene has a tag file, ``tags/<id>.txt``, naming both classes.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Tuple

import cv2
import numpy as np

from wsss.core.synthetic.dataset import scene_id, write_scene
from wsss.core.synthetic.scenes import (
    Scene, SceneObject, _background, _click, _hsv_to_rgb, _medial_strokes,
)
from wsss.core.weak_labels.classes import IGNORE_INDEX, VOC_CLASSES
from wsss.core.weak_labels.errors import PathLike

OUTER, INNER = 1, 3
#: How the inner object is annotated (:func:`write_nested_dataset`).
INNER_LABELS = ("box", "click", "tag")


def _rng(*, seed: int, split: str, index: int) -> np.random.Generator:
    # Streams of their own: never the same as the source/target scenes' (scene_rng's domain codes 0, 1).
    return np.random.default_rng(np.random.SeedSequence([int(seed), 2, {"train": 0, "val": 1}[split], int(index)]))


def _ellipse(height: int, width: int, centre, axes, angle: float) -> np.ndarray:
    mask = np.zeros((height, width), np.uint8)
    cv2.ellipse(mask, (int(round(centre[0])), int(round(centre[1]))), (max(int(axes[0]), 2), max(int(axes[1]), 2)),
                angle, 0, 360, 1, -1, cv2.LINE_8)
    return mask.astype(bool)


def render_nested_scene(*, seed: int, split: str, index: int, height: int, width: int) -> Scene:
    """One nested scene; depends only on ``(seed, split, index)`` and the size."""
    rng = _rng(seed=seed, split=split, index=index)
    pic = _background(rng, "target", height, width)
    short = min(height, width)
    a, b = rng.uniform(0.18, 0.3) * short, rng.uniform(0.18, 0.3) * short
    centre = (rng.uniform(a + 4, width - a - 4), rng.uniform(b + 4, height - b - 4))
    angle = float(rng.uniform(0, 180))
    outer = _ellipse(height, width, centre, (a, b), angle)
    ratio = rng.uniform(0.35, 0.6)
    offset = rng.uniform(-0.25, 0.25, size=2) * np.array([a, b])
    inner = _ellipse(height, width, (centre[0] + offset[0], centre[1] + offset[1]), (a * ratio, b * ratio),
                     float(rng.uniform(0, 180)))
    inner &= cv2.erode(outer.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)  # strictly inside
    hue = rng.uniform(0.02, 0.12)
    outer_colour = _hsv_to_rgb(hue, rng.uniform(0.55, 0.8), rng.uniform(0.6, 0.75))
    inner_colour = _hsv_to_rgb(hue + rng.uniform(0.02, 0.06), rng.uniform(0.35, 0.55), rng.uniform(0.8, 0.92))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    shade = 1.0 - 0.25 * np.clip(np.hypot(xx - centre[0], yy - centre[1]) / max(a, b), 0, 1)[..., None]
    pic = np.where(outer[..., None], outer_colour * shade, pic)
    pic = np.where(inner[..., None], inner_colour * shade, pic)
    pic = cv2.GaussianBlur(pic.astype(np.float32), (0, 0), 1.6)  # soft edges, faint inner boundary
    pic += rng.normal(0, 5.0, pic.shape).astype(np.float32)
    image = np.clip(pic, 0, 255).round().astype(np.uint8)

    label = np.zeros((height, width), np.uint8)
    label[outer] = OUTER
    label[inner] = INNER
    instances = np.zeros((height, width), np.uint8)
    instances[outer & ~inner] = 1
    instances[inner] = 2
    objects, points, classes, ranks = [], [], [], []
    strokes = np.full((height, width), IGNORE_INDEX, np.uint8)
    for k, cls in ((1, OUTER), (2, INNER)):
        region = instances == k
        ys, xs = np.nonzero(region)
        objects.append(SceneObject(instance_id=k, class_index=cls,
                                   box=(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)))
        points.append(_click(rng, region, 0.5))
        classes.append(cls)
        ranks.append(1)
        strokes[_medial_strokes(region, keep_fraction=0.6, min_dist=2.0)] = cls
    strokes[_medial_strokes(label == 0, keep_fraction=0.3, min_dist=4.0)] = 0
    for _ in range(2):
        points.append(_click(rng, label == 0, 0.3))
        classes.append(0)
        ranks.append(0)
    return Scene(image=image, label=label, instances=instances, objects=objects, scribbles=strokes,
                 points=np.asarray(points, np.float32), point_classes=np.asarray(classes, np.int64),
                 point_ranks=np.asarray(ranks, np.int64))


def loosen_box(box: Tuple[int, int, int, int], margin: float, height: int, width: int) -> Tuple[int, int, int, int]:
    """``box`` grown by ``margin`` times its width / height on each side, clipped to the image."""
    x0, y0, x1, y1 = box
    dx, dy = int(round(margin * (x1 - x0))), int(round(margin * (y1 - y0)))
    return max(x0 - dx, 0), max(y0 - dy, 0), min(x1 + dx, width), min(y1 + dy, height)


def write_nested_dataset(root: PathLike, *, num_train: int = 40, num_val: int = 0, seed: int = 0,
                         size_range: Tuple[int, int] = (160, 220), inner_box_margin: float = 0.0,
                         inner_label: str = "box") -> Path:
    """Write a VOC-layout nested dataset (``train`` / ``val`` lists); same seed, same files.

    ``inner_label``: ``box`` (the inner object has a box, loosened by ``inner_box_margin``), ``click``
    (no box: only its click, its scribble and the scene's tags annotate it) or ``tag``, the same files
    as ``click`` (a run picks what it reads with ``weak_labels``; the name records the intent).
    """
    if inner_label not in INNER_LABELS:
        raise ValueError(f"inner_label must be one of {INNER_LABELS}, got {inner_label!r}")
    root = Path(root)
    for sub in ("JPEGImages", "SegmentationClass", "SegmentationObject", "Annotations", "scribbles", "points", "tags",
                "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for split, count in (("train", num_train), ("val", num_val)):
        ids = []
        for index in range(count):
            size_rng = _rng(seed=seed + 7919, split=split, index=index)
            height, width = (int(v) for v in size_rng.integers(size_range[0], size_range[1] + 1, size=2))
            scene = render_nested_scene(seed=seed, split=split, index=index, height=height, width=width)
            if inner_box_margin:  # the weak box only: ground truth and instances stay exact
                scene = dataclasses.replace(scene, objects=[
                    dataclasses.replace(o, box=loosen_box(o.box, inner_box_margin, height, width)) if o.class_index == INNER else o
                    for o in scene.objects])
            tags = sorted({o.class_index for o in scene.objects})
            if inner_label in ("click", "tag"):  # the weak boxes only: ground truth and instances stay exact
                scene = dataclasses.replace(scene, objects=[o for o in scene.objects if o.class_index != INNER])
            image_id = scene_id(domain="nested", split=split, index=index)
            write_scene(root, scene, image_id=image_id, domain="nested")
            (root / "tags" / f"{image_id}.txt").write_text("".join(f"{VOC_CLASSES[c]}\n" for c in tags))
            ids.append(image_id)
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    meta = {"domain": "nested", "seed": seed, "num_train": num_train, "num_val": num_val, "size_range": list(size_range),
            "inner_box_margin": inner_box_margin, "inner_label": inner_label,
            "classes": {"outer": VOC_CLASSES[OUTER], "inner": VOC_CLASSES[INNER]}}
    (root / "synthetic.json").write_text(json.dumps(meta, indent=2) + "\n")
    return root
