"""Instance pseudo-labels as COCO instances JSON: one document per shard, merged into one file.

Stage 1 writes the format, the instance evaluator reads it and stage 2's mmdet dataset trains on it:
COCO's ``images`` / ``annotations`` / ``categories`` with compressed RLE masks, every object's
``score`` (:data:`SCORE_DECIMALS` decimals) and ``weak_box``, and each image's ``ignore`` region.
Objects of one image do not overlap, so :func:`semantic_from_instances` rebuilds the semantic mask
exactly. Field by field: docs/data.md ("Instance pseudo-labels").
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

import numpy as np

from wsss.core.atomic import write_json
from wsss.core.cli import run_cli
from wsss.core.weak_labels.classes import IGNORE_INDEX, VOC_CLASSES

PathLike = Union[str, Path]
SCORE_DECIMALS = 3


def _mask_api():
    try:
        from pycocotools import mask as mask_api
    except ImportError as exc:  # a user's environment problem: one line, exit 2
        raise ImportError("instance pseudo-labels need pycocotools (pip install pycocotools)") from exc
    return mask_api


def categories(classes: Sequence[str] = VOC_CLASSES) -> List[Dict[str, Any]]:
    """COCO categories for the foreground classes: ids 1..C are the class indices."""
    return [{"id": i, "name": name} for i, name in enumerate(classes) if i > 0]


def encode_mask(mask: np.ndarray) -> Dict[str, Any]:
    """``bool [H, W]`` -> compressed RLE ``{"size": [H, W], "counts": str}`` (pycocotools)."""
    rle = _mask_api().encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode_mask(rle: Dict[str, Any]) -> np.ndarray:
    """Compressed RLE (``counts`` str or bytes) -> ``bool [H, W]``."""
    counts = rle["counts"]
    if isinstance(counts, list):  # uncompressed RLE (COCO ground truth may use it)
        h, w = rle["size"]
        rle = _mask_api().frPyObjects(rle, h, w)
    elif isinstance(counts, str):
        rle = {"size": rle["size"], "counts": counts.encode("ascii")}
    return _mask_api().decode(rle).astype(bool)


def mask_bbox(mask: np.ndarray) -> List[float]:
    """Tight COCO box ``[x, y, w, h]`` (pixel edges) of a non-empty ``bool`` mask."""
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]


def image_entry(index: int, name: str, height: int, width: int, *, ignore: Optional[np.ndarray] = None,
                file_name: Optional[str] = None) -> Dict[str, Any]:
    """The ``images`` entry of dataset position ``index`` (0-based; its COCO id is ``index + 1``);
    ``file_name`` defaults to ``<name>.jpg`` (relative to the image folder, as COCO has it)."""
    entry: Dict[str, Any] = {"id": int(index) + 1, "name": name, "file_name": file_name or f"{name}.jpg",
                             "height": int(height), "width": int(width)}
    if ignore is not None and ignore.any():
        entry["ignore"] = encode_mask(ignore)
    return entry


def object_annotations(image_id: int, masks: Sequence[np.ndarray], classes: Sequence[int], scores: Sequence[float],
                       weak_boxes: Optional[Sequence[Sequence[float]]] = None) -> List[Dict[str, Any]]:
    """``annotations`` entries (ids 0: numbered when the document is written) of the non-empty masks."""
    out = []
    for k, (mask, cls, score) in enumerate(zip(masks, classes, scores)):
        if not mask.any():
            continue
        ann = {"id": 0, "image_id": int(image_id), "category_id": int(cls), "bbox": mask_bbox(mask),
               "area": int(mask.sum()), "segmentation": encode_mask(mask), "iscrowd": 0,
               "score": round(float(score), SCORE_DECIMALS)}
        if weak_boxes is not None:
            ann["weak_box"] = [float(v) for v in weak_boxes[k]]
        out.append(ann)
    return out


def label_maps_to_instances(instance_map: np.ndarray, class_map: np.ndarray):
    """Instances of an instance-id map (0 none, 255 void) with the class of each from ``class_map``
    (the majority label of its pixels, void and background not counted): ``[(class, bool mask)]``."""
    out = []
    for inst in np.unique(instance_map):
        if inst in (0, IGNORE_INDEX):
            continue
        mask = instance_map == inst
        labels = class_map[mask]
        labels = labels[(labels != 0) & (labels != IGNORE_INDEX)]
        if labels.size == 0:
            continue
        out.append((int(np.bincount(labels).argmax()), mask))
    return out


# -- documents ---------------------------------------------------------------------------------------
def new_document(info: Optional[Dict[str, Any]] = None, *, classes: Sequence[str] = VOC_CLASSES) -> Dict[str, Any]:
    """An empty instances document whose categories are ``classes[1:]`` (ids = class indices)."""
    return {"info": dict(info or {}), "images": [], "annotations": [], "categories": categories(classes)}


def read_document(path: PathLike) -> Dict[str, Any]:
    """An instances JSON (ours or any COCO instances file with RLE/polygon segmentations)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc})") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list) or "annotations" not in doc:
        raise ValueError(f"{path}: not a COCO instances file (no images/annotations lists)")
    return doc


def numbered(doc: Dict[str, Any]) -> Dict[str, Any]:
    """``doc`` with images sorted by id and annotations renumbered 1..M in image order."""
    images = sorted(doc["images"], key=lambda im: im["id"])
    order = {im["id"]: k for k, im in enumerate(images)}
    anns = sorted(doc["annotations"], key=lambda a: order.get(a["image_id"], len(order)))
    anns = [dict(a, id=k) for k, a in enumerate(anns, start=1)]
    return {**doc, "images": images, "annotations": anns}


def write_document(path: PathLike, doc: Dict[str, Any]) -> None:
    """Write ``doc`` atomically (annotations numbered)."""
    write_json(path, numbered(doc))


def merge_documents(docs: Iterable[Dict[str, Any]]) -> Dict[str, Any]:
    """One document from the shards' documents; an image in two of them is an error."""
    merged = new_document()
    seen: Dict[int, str] = {}
    for doc in docs:
        for im in doc["images"]:
            if im["id"] in seen:
                raise ValueError(f"image {im.get('name', im['id'])} is in two shard files")
            seen[im["id"]] = im.get("name", str(im["id"]))
            merged["images"].append(im)
        merged["annotations"] += doc["annotations"]
        if doc.get("categories"):  # the shards' own class list (a dataset description's), not VOC's
            merged["categories"] = doc["categories"]
        if doc.get("info"):
            merged["info"] = {k: v for k, v in doc["info"].items() if k not in ("shard_index",)}
    return numbered(merged)


def semantic_from_instances(doc: Dict[str, Any], name: str) -> np.ndarray:
    """The semantic mask (``uint8 [H, W]``) of image ``name``: each object's class on its pixels,
    255 on the image's ``ignore`` region, 0 elsewhere. Overlapping objects are an error."""
    image = next((im for im in doc["images"] if im.get("name") == name), None)
    if image is None:
        raise KeyError(f"image {name!r} is not in the instances document")
    out = np.zeros((image["height"], image["width"]), np.uint8)
    taken = np.zeros(out.shape, bool)
    for ann in doc["annotations"]:
        if ann["image_id"] != image["id"]:
            continue
        mask = decode_mask(ann["segmentation"])
        if (taken & mask).any():
            raise ValueError(f"{name}: objects overlap (annotation {ann['id']})")
        taken |= mask
        out[mask] = int(ann["category_id"])
    if "ignore" in image:
        out[decode_mask(image["ignore"])] = IGNORE_INDEX
    return out


# -- wsss-merge-instances ------------------------------------------------------------------------------
def main(argv: Optional[Sequence[str]] = None) -> int:
    """``wsss-merge-instances SHARD.json ... --out FILE``: one instances JSON from the shard files."""
    parser = argparse.ArgumentParser(prog="wsss-merge-instances",
                                     description="Merge the per-shard instance pseudo-label JSON files into one.")
    parser.add_argument("shards", nargs="+", type=Path, help="shard files (<work_dir>/instances/*.shard*.json)")
    parser.add_argument("--out", required=True, type=Path, help="merged COCO instances JSON")
    args = parser.parse_args(argv)

    def body() -> int:
        docs = [read_document(p) for p in args.shards]
        merged = merge_documents(docs)
        write_document(args.out, merged)
        print(f"{len(merged['images'])} image(s), {len(merged['annotations'])} object(s) from "
              f"{len(docs)} file(s) -> {args.out}")
        return 0

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
