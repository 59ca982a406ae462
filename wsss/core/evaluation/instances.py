"""Instance evaluation: mask AP, AP50, AP75 of instance pseudo-labels, through pycocotools' COCOeval.

Ground truth from a VOC layout (:func:`voc_ground_truth`: ``SegmentationObject``, else the connected
components of each class, an approximation the result names in ``gt_source``), a COCO instances JSON
(:func:`coco_ground_truth`) or a dataset description (:func:`described_ground_truth`); predictions
are :mod:`wsss.core.instances` documents, matched to it by image name. The rules (crowd regions,
which images count): docs/data.md ("Instance ground truth and matching").
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from wsss.core import instances as inst
from wsss.core.atomic import write_json
from wsss.core.cli import run_cli
from wsss.core.datasets import DescribedDataset, voc_dataset
from wsss.core.masks import read_mask
from wsss.core.weak_labels.classes import IGNORE_INDEX, VOC_ALIASES, VOC_CLASSES, class_index

PathLike = inst.PathLike


def image_name(entry: Dict[str, Any]) -> str:
    return str(entry.get("name") or Path(entry["file_name"]).stem)


#: components of a class smaller than this (pixels) are crowd (ignored) regions of the ground truth
MIN_COMPONENT_AREA = 50


def class_components(class_map: np.ndarray) -> List[Tuple[int, np.ndarray]]:
    """``[(class, bool mask)]``: the 8-connected components of each foreground class (void excluded)."""
    out = []
    for cls in np.unique(class_map):
        if cls in (0, IGNORE_INDEX):
            continue
        n, labels = cv2.connectedComponents((class_map == cls).astype(np.uint8), connectivity=8)
        out += [(int(cls), labels == k) for k in range(1, n)]
    return out


def described_instances(dataset: DescribedDataset, image_id: str, *, min_area: int = MIN_COMPONENT_AREA):
    """Ground-truth instances of one image of a described dataset: ``(objects, source, crowd)``.
    ``objects`` and ``crowd`` are lists of ``(class, bool mask)``; ``source`` is ``"instances"`` (the
    description's instance-id PNG, e.g. VOC's ``SegmentationObject``) or ``"class_components"``;
    ``crowd`` holds the components under ``min_area`` pixels (always empty for instance PNGs)."""
    return _instances_of(dataset, image_id, dataset.read_gt(image_id), min_area=min_area)


def _instances_of(dataset: DescribedDataset, image_id: str, class_map: np.ndarray, *, min_area: int):
    obj_path = dataset.instance_path(image_id)
    if obj_path is not None:  # object ids are not classes: 1..254 (an image may have more than 20)
        objects = inst.label_maps_to_instances(read_mask(obj_path, num_foreground=254), class_map)
        return objects, "instances", []
    objects, crowd = component_instances(class_map, min_area=min_area)
    return objects, "class_components", crowd


def voc_instances(root: PathLike, image_id: str, *, min_area: int = MIN_COMPONENT_AREA):
    """:func:`described_instances` of an image of the VOC folder ``root``."""
    return described_instances(voc_dataset(root, split=None, ids=[image_id]), image_id, min_area=min_area)


def component_instances(class_map: np.ndarray, *, min_area: int = MIN_COMPONENT_AREA):
    """``(objects, crowd)``: the class components of ``class_map`` (:func:`class_components`), those under
    ``min_area`` pixels as crowd (ignored) regions."""
    parts = class_components(class_map)
    return [(c, m) for c, m in parts if m.sum() >= min_area], [(c, m) for c, m in parts if m.sum() < min_area]


def document_from_instances(items: Sequence[Tuple], *, score: float = 1.0, info: Optional[Dict[str, Any]] = None,
                            classes: Sequence[str] = VOC_CLASSES,
                            file_name: Optional[Callable[[str], str]] = None) -> Dict[str, Any]:
    """A numbered instances document from ``[(name, height, width, [(class, mask)][, crowd])]`` (image ids
    1..n in order; the same writer stage 1 uses, so it also serves as a perfect pseudo-label file);
    the optional ``crowd`` list becomes ``iscrowd: 1`` annotations. Categories are ``classes[1:]``;
    ``file_name(name)`` gives an image's file name (default ``<name>.jpg``)."""
    doc = inst.new_document(info, classes=classes)
    for k, (name, h, w, objects, *rest) in enumerate(items):
        doc["images"].append(inst.image_entry(k, name, h, w, file_name=file_name(name) if file_name else None))
        doc["annotations"] += inst.object_annotations(k + 1, [m for _, m in objects], [c for c, _ in objects],
                                                      [score] * len(objects))
        crowd = rest[0] if rest else []
        doc["annotations"] += [dict(a, iscrowd=1) for a in inst.object_annotations(
            k + 1, [m for _, m in crowd], [c for c, _ in crowd], [score] * len(crowd))]
    return inst.numbered(doc)


def voc_ground_truth(root: PathLike, ids: Sequence[str], *, min_area: int = MIN_COMPONENT_AREA) -> Dict[str, Any]:
    """:func:`described_ground_truth` of ``ids`` of the VOC folder ``root``."""
    return described_ground_truth(voc_dataset(root, split=None, ids=ids), ids, min_area=min_area)


def coco_ground_truth(path: PathLike, classes: Sequence[str] = VOC_CLASSES) -> Dict[str, Any]:
    """A COCO instances JSON as ground truth, its categories mapped by name to ``classes`` (COCO
    ``airplane`` -> VOC ``aeroplane`` ..., :data:`VOC_ALIASES`; other categories are dropped) and its
    images named by their ``file_name`` stem."""
    doc = inst.read_document(path)
    to_class = {}
    for cat in doc.get("categories", []):
        try:
            cls = class_index(str(cat["name"]), classes, VOC_ALIASES)
        except KeyError:
            continue
        if cls > 0:
            to_class[int(cat["id"])] = cls
    anns = [dict(a, category_id=to_class[int(a["category_id"])]) for a in doc["annotations"]
            if int(a["category_id"]) in to_class]
    images = [dict(im, name=image_name(im)) for im in doc["images"]]
    return {"info": {"gt_source": {"coco": len(images)}, "note": f"COCO JSON {path}"}, "images": images,
            "annotations": anns, "categories": inst.categories(classes)}


def described_ground_truth(dataset: DescribedDataset, ids: Sequence[str], *,
                           min_area: int = MIN_COMPONENT_AREA) -> Dict[str, Any]:
    """Ground-truth instances of ``ids`` of a :class:`wsss.core.datasets.DescribedDataset`: its COCO
    segmentations (one instance per object, categories by the description's class names); for PNG or
    LabelMe ground truth, the connected components of each class of its class maps (approximate, as
    for VOC without SegmentationObject; ``info.gt_source`` says so).

    Raises:
        ValueError: the description has no ground truth, or an id has none.
    """
    gt = dataset.description.ground_truth
    if gt is None:
        raise ValueError(f"{dataset.description.path}: the description has no ground_truth to evaluate on")
    missing = [i for i in ids if not dataset.has_gt(i)]
    if missing:
        raise ValueError(f"{gt.path}: no ground truth for {len(missing)} image(s), e.g. {missing[:3]}")
    if gt.format == "coco":
        doc = coco_ground_truth(gt.path, classes=dataset.classes)
        wanted = set(ids)
        images = [im for im in doc["images"] if im["name"] in wanted]
        kept = {im["id"] for im in images}
        doc.update(images=images, annotations=[a for a in doc["annotations"] if a["image_id"] in kept])
        doc["info"]["gt_source"] = {"coco": len(images)}
        return doc
    items, sources = [], {"instances": 0, "class_components": 0}
    for image_id in ids:
        class_map = dataset.read_gt(image_id)
        objects, source, crowd = _instances_of(dataset, image_id, class_map, min_area=min_area)
        sources[source] += 1
        items.append((image_id, *class_map.shape, objects, crowd))
    where = f"{gt.format} ground truth of {dataset.description.path}"
    note = (f"approximate instances: connected components of each class of the {where} (under {min_area} px: "
            "crowd, ignored)" if sources["class_components"] else f"instance ground truth of {dataset.description.path}")
    return document_from_instances(items, info={"gt_source": sources, "note": note},
                                   classes=dataset.classes, file_name=lambda name: dataset.image_path(name).name)


def _coco(doc: Dict[str, Any]):
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = {"images": doc["images"], "annotations": [dict(a, iscrowd=int(a.get("iscrowd", 0)))
                                                               for a in doc["annotations"]],
                    "categories": doc.get("categories") or inst.categories()}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def evaluate_instances(pred: Dict[str, Any], gt: Dict[str, Any]) -> Dict[str, Any]:
    """Mask AP, AP50, AP75 (COCO's definitions, in percent) of ``pred`` against ``gt`` (module docstring).

    Raises:
        ValueError: a predicted image that is not in the ground truth.
    """
    from pycocotools.cocoeval import COCOeval

    gt_ids = {image_name(im): im["id"] for im in gt["images"]}
    pred_images = {im["id"]: image_name(im) for im in pred["images"]}
    missing = sorted(n for n in pred_images.values() if n not in gt_ids)
    if missing:
        raise ValueError(f"{len(missing)} predicted image(s) not in the ground truth, e.g. {missing[:3]}")
    img_ids = sorted(gt_ids[n] for n in pred_images.values())
    results = [{"image_id": gt_ids[pred_images[a["image_id"]]], "category_id": int(a["category_id"]),
                "segmentation": a["segmentation"], "score": float(a.get("score", 1.0))}
               for a in pred["annotations"]]
    gt_coco = _coco(gt)
    chosen = set(img_ids)
    num_gt = sum(1 for a in gt["annotations"] if a["image_id"] in chosen and not a.get("iscrowd", 0))
    out: Dict[str, Any] = {"images": len(img_ids), "gt_objects": num_gt, "pred_objects": len(results),
                           "gt_source": (gt.get("info") or {}).get("gt_source")}
    if not results:
        out.update(AP=0.0, AP50=0.0, AP75=0.0)
        return out
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt_coco.loadRes(results)
        ev = COCOeval(gt_coco, dt, iouType="segm")
        ev.params.imgIds = img_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    ap, ap50, ap75 = (max(float(v), 0.0) * 100 for v in ev.stats[:3])
    out.update(AP=round(ap, 2), AP50=round(ap50, 2), AP75=round(ap75, 2))
    return out


def format_row(name: str, m: Dict[str, Any]) -> str:
    return f"{name:<28} {m['AP']:6.2f} {m['AP50']:6.2f} {m['AP75']:6.2f} {m['images']:7d} {m['gt_objects']:8d} {m['pred_objects']:8d}"


def format_table(rows: Dict[str, Dict[str, Any]]) -> str:
    head = f"{'pseudo-labels':<28} {'AP':>6} {'AP50':>6} {'AP75':>6} {'images':>7} {'gt objs':>8} {'pred objs':>8}"
    return "\n".join([head] + [format_row(k, v) for k, v in rows.items()])


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="wsss-evaluate-instances", description=__doc__.splitlines()[0])
    parser.add_argument("--pred", nargs="+", type=Path, default=[], help="instances JSON file(s) to evaluate")
    parser.add_argument("--split", help="with --voc: the images of ImageSets/Segmentation/<split>.txt; with "
                                        "--dataset: a split of the description (default: the images of --pred)")
    parser.add_argument("--write-gt", type=Path, help="write the ground truth as COCO JSON here (stage 2's "
                                                      "validation file)")
    gt = parser.add_mutually_exclusive_group(required=True)
    gt.add_argument("--voc", type=Path, help="a VOC2012 folder: configs/datasets/voc2012.yaml with this root "
                                            "(SegmentationObject, else class components)")
    gt.add_argument("--coco", type=Path, help="COCO instances JSON with the ground-truth masks")
    gt.add_argument("--dataset", type=Path, help="dataset description (configs/datasets/*.yaml) with ground_truth")
    parser.add_argument("--gt-as-pred", action="store_true",
                        help="add a row: the ground truth itself as perfect pseudo-labels (written and read back as "
                             "stage 1's files are), a check of the evaluation that must give 100")
    parser.add_argument("--json", type=Path, help="also write the metrics here")
    args = parser.parse_args(argv)

    def body() -> int:
        if not args.pred and not args.write_gt:
            parser.error("give --pred FILE ... (to evaluate) and/or --write-gt FILE")
        preds = {str(p): inst.read_document(p) for p in args.pred}
        if args.voc is not None or args.dataset is not None:
            dataset = (voc_dataset(args.voc, split=args.split) if args.voc is not None
                       else DescribedDataset(args.dataset, split=args.split))
            if args.split:  # a VOC split is ground truth for every image it lists: a missing file is an error
                names = list(dataset.ids) if args.voc is not None else [i for i in dataset.ids if dataset.has_gt(i)]
            else:
                names = sorted({image_name(im) for d in preds.values() for im in d["images"]})
            truth = described_ground_truth(dataset, names)
        else:
            truth = coco_ground_truth(args.coco)
        if args.write_gt:
            inst.write_document(args.write_gt, truth)
            print(f"ground truth of {len(truth['images'])} image(s), {len(truth['annotations'])} object(s) -> "
                  f"{args.write_gt}")
        if not preds:
            return 0
        short = [Path(k).name for k in preds]
        labels = short if len(set(short)) == len(short) else [str(Path(Path(k).parent.name) / Path(k).name) for k in preds]
        rows = {label: evaluate_instances(d, truth) for label, d in zip(labels, preds.values())}
        if args.gt_as_pred:
            names = {image_name(im) for d in preds.values() for im in d["images"]}
            perfect = inst.new_document()
            perfect["images"] = [im for im in truth["images"] if im["name"] in names]
            perfect["annotations"] = [dict(a, score=1.0) for a in truth["annotations"] if not a.get("iscrowd", 0)]
            rows["ground truth as pred"] = evaluate_instances(json.loads(json.dumps(inst.numbered(perfect))), truth)
        print(format_table(rows))
        print(f"ground truth: {truth['info'].get('note', 'COCO JSON')} ({truth['info'].get('gt_source')})")
        if args.json is not None:
            write_json(args.json, rows)
        return 0

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
