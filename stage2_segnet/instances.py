"""Stage 2 for instances: train and test an mmdet network (Mask R-CNN, Mask2Former) on stage 1's
instance pseudo-labels, with test-time mask AP.

``python -m stage2_segnet.instances train|test`` (console scripts ``wsss-stage2-instance-train`` and
``wsss-stage2-instance-test``; flags: ``--help``). What it trains on, validates against and writes:
docs/method.md ("Instances"); with a dataset description: docs/data.md ("Without make").
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence

from mmengine.config import Config

from wsss.core import instances as inst
from wsss.core.atomic import write_json
from wsss.core.cli import run_checked
from wsss.core.evaluation.instances import described_ground_truth
from wsss.core.weak_labels.classes import VOC_CLASSES

from .checks import check_pretrained
from .launch import (add_common_args, add_resume_argument, apply_resume, build_runner, configure_runtime,
                     described_data, described_split, finish_args, rank, relaunch_with_torchrun,
                     report_last_checkpoint, set_num_classes, start, write_image_index)
from .register import register_instances
from .test import find_checkpoint


def ground_truth_file(split_or_file: str, work_dir: str, dataset) -> str:
    """The COCO ground-truth file of a split (written once under ``work_dir``), or the given JSON: the
    split of that name of ``dataset`` (a :class:`~wsss.core.datasets.DescribedDataset`), else every
    image with ground truth (:func:`~wsss.core.evaluation.instances.described_ground_truth`)."""
    path = Path(split_or_file)
    if path.suffix == ".json":
        if not path.is_file():
            raise FileNotFoundError(f"{path}: ground-truth instances JSON not found")
        return str(path.resolve())
    ids, _ = described_split(dataset, split_or_file, with_gt=True)
    out = Path(work_dir) / f"gt_{Path(split_or_file).stem}_instances.json"
    if rank() == 0 and not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        truth = described_ground_truth(dataset, ids)
        inst.write_document(out, truth)
        note = truth["info"].get("note", "")
        print(f"[stage2] ground-truth instances of {len(ids)} image(s) ({note}) -> {out}", flush=True)
    return str(out.resolve())


def check_instances_file(path: str, image_dir: Path, classes: Sequence[str] = VOC_CLASSES) -> int:
    """Refuse a training file that is not COCO instances of ``classes`` (VOC's, or a description's) or
    names missing images; returns the number of objects."""
    doc = inst.read_document(path)
    names = {c["id"]: c["name"] for c in doc.get("categories", [])}
    bad = {i: n for i, n in names.items() if not (0 < i < len(classes) and classes[i] == n)}
    if bad:
        which = "VOC's" if tuple(classes) == tuple(VOC_CLASSES) else "the dataset description's"
        raise ValueError(f"{path}: categories {bad} are not {which} (id = class index, name = class name)")
    missing = [im["file_name"] for im in doc["images"] if not (image_dir / im["file_name"]).is_file()]
    if missing:
        raise FileNotFoundError(f"{path}: {len(missing)} image(s) not in {image_dir}, e.g. {missing[:3]}")
    if not doc["annotations"]:
        raise ValueError(f"{path}: no object to train on")
    return len(doc["annotations"])


def _set_gt(cfg: Config, loader: str, evaluator: str, gt: str) -> None:
    cfg[loader].dataset.ann_file = gt
    cfg[evaluator].ann_file = gt


# -- train --------------------------------------------------------------------------------------------
def parse_train_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="wsss-stage2-instance-train", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--pseudo", required=True, help="instance pseudo-labels (merged COCO JSON of stage 1)")
    parser.add_argument("--val-gt", default=None, help="validation ground truth as COCO JSON (default: from --val-list)")
    parser.add_argument("--val-list", default="val", help="split whose ground truth validates (default val; with "
                                                          "--dataset, every image with ground truth when not listed)")
    add_resume_argument(parser)
    parser.add_argument("--seed", type=int, default=None)
    return finish_args(parser.parse_args(argv), parser)


LOADERS = ("train_dataloader", "val_dataloader", "test_dataloader")


def point_at_data(cfg: Config, args: argparse.Namespace, loaders: Sequence[str]):
    """Point ``loaders`` at the images of the run's dataset description (:func:`described_data`:
    ``--dataset``, else VOC 2012's, rooted at ``--data``), whose classes become the datasets'
    ``metainfo`` and every head's class count; returns the :class:`~wsss.core.datasets.DescribedDataset`."""
    from wsss.core.datasets import DescribedDataset

    dataset = DescribedDataset(described_data(args))
    register_instances()
    # every annotated or listed image, as stage 1 read it (training reads the pseudo-labels' images,
    # validation the ground truth's); a split whose list is absent (VOC's test before wsss-voc-data) lists none
    splits = [s for s, path in dataset.description.splits.items() if path.is_file()]
    listed = [i for split in splits for i in described_split(dataset, split, with_gt=False)[0]]
    image_index = (Path(args.work_dir) / "lists" / "images.json").resolve()
    write_image_index(dataset, list(dataset.ids) + listed, image_index)
    for loader in loaders:
        ds = cfg[loader].dataset
        ds.type = "OrientedCocoDataset"
        ds.image_index = str(image_index)
        ds.data_root = str(dataset.description.images.resolve()) + "/"  # COCO file_name: the image's name
        ds.data_prefix = dict(img="")
        ds.metainfo = dict(classes=tuple(dataset.classes[1:]))
        for transform in ds.get("pipeline") or []:
            if transform.get("type") == "LoadImageFromFile":
                transform["type"] = "LoadDatasetImage"
    set_num_classes(cfg.model, dataset.num_foreground)  # mmdet's heads count no background
    return dataset


def build_train_config(args: argparse.Namespace, launcher: str) -> Config:
    cfg = Config.fromfile(args.config)
    configure_runtime(cfg, launcher, args.work_dir)
    dataset = point_at_data(cfg, args, LOADERS)
    pseudo = Path(args.pseudo).expanduser().resolve()
    if not pseudo.is_file():
        raise FileNotFoundError(f"{pseudo}: instance pseudo-labels not found (wsss-generate --instances, then "
                                "wsss-merge-instances)")
    cfg.train_dataloader.dataset.ann_file = str(pseudo)
    gt = ground_truth_file(args.val_gt or args.val_list, args.work_dir, dataset)
    _set_gt(cfg, "val_dataloader", "val_evaluator", gt)
    _set_gt(cfg, "test_dataloader", "test_evaluator", gt)
    apply_resume(cfg, args.resume)
    if args.seed is not None:
        cfg.randomness = dict(seed=args.seed)
    if args.cfg_dict:
        cfg.merge_from_dict(args.cfg_dict)
    return cfg


def preflight(cfg: Config) -> None:
    check_pretrained(cfg.model)
    if rank() != 0:
        return
    ds = cfg.train_dataloader.dataset
    image_dir = Path(ds.data_root) / ds.get("data_prefix", {}).get("img", "JPEGImages/")
    n = check_instances_file(ds.ann_file, image_dir, ("background",) + tuple(ds.metainfo["classes"]))
    print(f"[stage2] instance pseudo-labels checked: {n} object(s) in {ds.ann_file}", flush=True)


def train_main(argv: Optional[Sequence[str]] = None) -> int:
    argv, args, launcher = start(parse_train_args, argv)

    def checked_config():
        cfg = build_train_config(args, "none" if launcher == "torchrun" else launcher)
        preflight(cfg)
        return None if launcher == "torchrun" else cfg

    cfg, status = run_checked(checked_config)
    if status:
        return status
    if launcher == "torchrun":
        return relaunch_with_torchrun("stage2_segnet.instances", ["train"] + argv, args.gpus)
    build_runner(cfg).train()
    report_last_checkpoint(cfg)
    return 0


# -- test ---------------------------------------------------------------------------------------------
def parse_test_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="wsss-stage2-instance-test", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--checkpoint", default=None, help="model to test (default: best, else last, in --work-dir)")
    parser.add_argument("--gt", default=None, help="ground truth as COCO JSON (default: from --split)")
    parser.add_argument("--split", default="val", help="split to test on (default val; with --dataset, every image "
                                                       "with ground truth when not listed)")
    parser.add_argument("--json", default=None,
                        help="metrics JSON path (default: <work-dir>/test_<split>_instance_metrics.json)")
    return finish_args(parser.parse_args(argv), parser)


def build_test_config(args: argparse.Namespace, launcher: str) -> Config:
    cfg = Config.fromfile(args.config)
    configure_runtime(cfg, launcher, args.work_dir)
    dataset = point_at_data(cfg, args, ["test_dataloader"])
    checkpoint = args.checkpoint or find_checkpoint(args.work_dir)
    if not Path(checkpoint).is_file():
        raise FileNotFoundError(f"checkpoint {checkpoint} not found")
    cfg.load_from, cfg.resume = checkpoint, False
    cfg.model.backbone.init_cfg = None  # the trained weights replace the ImageNet initialisation
    _set_gt(cfg, "test_dataloader", "test_evaluator", ground_truth_file(args.gt or args.split, args.work_dir, dataset))
    cfg.test_evaluator.outfile_prefix = str(Path(args.work_dir).resolve() / f"test_{_split_tag(args)}_instances")
    if args.cfg_dict:
        cfg.merge_from_dict(args.cfg_dict)
    return cfg


def _split_tag(args: argparse.Namespace) -> str:
    return Path(args.gt).stem if args.gt else args.split


def test_main(argv: Optional[Sequence[str]] = None) -> int:
    argv, args, launcher = start(parse_test_args, argv)
    if launcher == "torchrun":
        return relaunch_with_torchrun("stage2_segnet.instances", ["test"] + argv, args.gpus)
    cfg, status = run_checked(lambda: build_test_config(args, launcher))
    if status:
        return status
    metrics: Dict[str, float] = build_runner(cfg).test() or {}
    if rank() == 0:
        split = _split_tag(args)
        out = Path(args.json) if args.json else Path(args.work_dir) / f"test_{split}_instance_metrics.json"
        values = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
        note = None
        if "coco/segm_mAP" not in values:  # mmdet's CocoMetric reports nothing when nothing was detected
            values.update({f"coco/segm_mAP{s}": 0.0 for s in ("", "_50", "_75")})
            note = "no detection on the test images: AP 0"
        record = dict(metrics=values, checkpoint=cfg.load_from, config=str(args.config), split=split,
                      ground_truth=cfg.test_evaluator.ann_file, note=note,
                      predictions=cfg.test_evaluator.outfile_prefix + ".segm.json")
        write_json(out, record)
        print(f"[stage2] {json.dumps(record['metrics'])} -> {out}", flush=True)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m stage2_segnet.instances train|test ...``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("train", "test"):
        print("usage: python -m stage2_segnet.instances {train,test} ... (or wsss-stage2-instance-train / -test)",
              file=sys.stderr)
        return 2
    return (train_main if argv[0] == "train" else test_main)(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
