"""Instance versions of the classical baselines, for the instance evaluator.

* :func:`box_fill_instances` -- each box is one object, filled.
* :func:`grabcut_instances` -- each box's GrabCut foreground (:func:`grabcut_object`, empty or failed
  GrabCut falls back to the filled box as in :func:`grabcut_fill`).

Objects do not overlap: they are painted in the semantic baselines' order (largest box first, smaller
on top, :func:`box_paint_order`) and each keeps the pixels where it is on top, so the union of the
objects labelled with their classes is exactly the semantic baseline's mask. Objects left with no
pixel are dropped. Scores are 1 (these baselines have no confidence), so AP ranks their objects in
file order; both baselines are scored the same way.

:func:`run_instance_baseline` writes one COCO instances JSON (:mod:`wsss.core.instances`) for a
VOC-layout dataset (``wsss-baselines --instances``).
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from stage1_pseudolabel.baselines.box_fill import box_paint_order, integer_box
from stage1_pseudolabel.baselines.grabcut import grabcut_object
from wsss.core.weak_labels.annotation import DEFAULT_WEAK_LABELS, select_weak_labels
from wsss.core import instances as inst
from wsss.core.atomic import remove_stale_temp_files
from wsss.core.cli import shard_ids
from wsss.core.datasets import open_described
from wsss.core.weak_labels.annotation import ImageAnnotation
from wsss.core.weak_labels.errors import WeakLabelError

#: one object: (its index among the image's boxes, class, bool mask)
Object = Tuple[int, int, np.ndarray]


def _box_mask(box, height: int, width: int) -> np.ndarray:
    out = np.zeros((height, width), bool)
    x0, y0, x1, y1 = integer_box(box, height, width)
    out[y0:y1, x0:x1] = True
    return out


def paint_objects(foregrounds: Dict[int, np.ndarray], classes: Sequence[int], boxes: np.ndarray) -> List[Object]:
    """Disjoint objects from per-box foregrounds, in paint order (smaller boxes on top), empty ones dropped."""
    if not foregrounds:
        return []
    shape = next(iter(foregrounds.values())).shape
    owner = np.full(shape, -1, np.int64)
    for i in box_paint_order(boxes):
        owner[foregrounds[int(i)]] = int(i)
    out = []
    for i in sorted(foregrounds):
        m = owner == i
        if m.any():
            out.append((i, int(classes[i]), m))
    return out


def box_fill_instances(image: Optional[np.ndarray], ann: ImageAnnotation) -> List[Object]:
    """Each box filled, as one object per box (module docstring)."""
    fgs = {i: _box_mask(b, ann.height, ann.width) for i, b in enumerate(ann.boxes)}
    return paint_objects(fgs, ann.box_classes, ann.boxes)


def grabcut_instances(image: np.ndarray, ann: ImageAnnotation, *, iterations: int = 5, margin: float = 0.25) -> List[Object]:
    """Each box's GrabCut foreground as one object (module docstring), with the same per-object
    seeds and fallback as :func:`~stage1_pseudolabel.baselines.grabcut.grabcut_fill`."""
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    image = np.ascontiguousarray(image[:, :, :3], dtype=np.uint8)
    fgs = {}
    for i in box_paint_order(ann.boxes):
        i = int(i)
        try:
            fg = grabcut_object(image, ann.boxes[i], int(ann.box_classes[i]), ann.scribbles, iterations=iterations,
                                margin=margin, seed=i)
        except cv2.error as exc:
            warnings.warn(f"{ann.image_id}: GrabCut failed on box {i} ({str(exc).strip()[:120]}); using the filled box")
            fg = np.zeros((ann.height, ann.width), bool)
        if not fg.any():
            fg = _box_mask(ann.boxes[i], ann.height, ann.width)
        fgs[i] = fg
    return paint_objects(fgs, ann.box_classes, ann.boxes)


INSTANCE_METHODS: Dict[str, Callable[..., List[Object]]] = {"box": box_fill_instances, "grabcut": grabcut_instances}


def run_instance_baseline(
    method: str,
    data,
    out_file,
    *,
    split: Optional[str] = "train",
    ids: Optional[Sequence[str]] = None,
    shard_index: int = 0,
    num_shards: int = 1,
    overwrite: bool = False,
    progress_every: int = 0,
    weak_labels: Sequence[str] = DEFAULT_WEAK_LABELS,
    dataset=None,
) -> Dict[str, object]:
    """Write ``method``'s instances of the dataset (this shard) as one COCO JSON, ``out_file``.

    Images already in ``out_file`` are kept (a killed job is re-run; ``overwrite`` starts afresh); the
    file is rewritten atomically
    at the end (not when nothing was added). Returns ``{"written", "existing", "failed": [(id, message)], "objects", "seconds"}``.
    """
    fn = INSTANCE_METHODS[method]
    dataset = open_described(dataset, root=data, split=split, ids=ids)  # default: VOC 2012's description
    position = {image_id: k for k, image_id in enumerate(dataset.ids)}
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(out_file.parent)
    doc = inst.read_document(out_file) if out_file.is_file() and not overwrite else inst.new_document(
        {"description": f"{method} baseline instances", "score": "1 (no confidence)"})
    done = {im["name"] for im in doc["images"]}
    run = {"written": 0, "existing": 0, "failed": [], "objects": 0}
    start = time.perf_counter()
    for n, image_id in enumerate(shard_ids(dataset.ids, shard_index=shard_index, num_shards=num_shards)):
        if image_id in done:
            run["existing"] += 1
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ann = select_weak_labels(dataset.load(image_id), weak_labels)
            image = ann.read_image() if method != "box" else None
            objects = fn(image, ann)
        except (WeakLabelError, OSError, ValueError, RuntimeError) as exc:
            run["failed"].append((image_id, f"{type(exc).__name__}: {exc}"))
            continue
        k = position[image_id]
        doc["images"].append(inst.image_entry(k, image_id, ann.height, ann.width,
                                              file_name=dataset.image_path(image_id).name))
        doc["annotations"] += inst.object_annotations(k + 1, [m for _, _, m in objects], [c for _, c, _ in objects],
                                                      [1.0] * len(objects), [ann.boxes[i] for i, _, _ in objects])
        run["written"] += 1
        run["objects"] += len(objects)
        if progress_every and (n + 1) % progress_every == 0:
            print(f"{method}: {n + 1} image(s)", flush=True)
    if run["written"] or overwrite or not out_file.is_file():  # a rerun with nothing new rewrites nothing
        inst.write_document(out_file, doc)
    run["seconds"] = round(time.perf_counter() - start, 2)
    return run
