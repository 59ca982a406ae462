"""``wsss-evaluate --pred DIR --gt DIR [--list FILE] [--json FILE]``: per-class IoU table, mIoU, pixel accuracy.

With ``--dataset FILE`` (a dataset description, configs/datasets/*.yaml) the class names and the number
of classes are the description's, and without ``--gt`` the ground truth is the description's (PNG
folder, COCO segmentations or LabelMe polygons) for the images of ``--split``. ``--data DIR`` puts the
description's root at DIR; alone, it is the VOC description (configs/datasets/voc2012.yaml) there:
``--split train_aug`` reads VOC's ground truth and, for SBD's images, ``SegmentationClassAug``.

Exit status 0 on success, 2 on bad input (missing predictions, size mismatch, invalid values), with
the error on stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from wsss.core.atomic import write_json
from wsss.core.cli import run_cli
from wsss.core.datasets import dataset_class_names, open_described
from wsss.core.evaluation.described import evaluate_described
from wsss.core.evaluation.folders import evaluate_folders
from wsss.core.weak_labels.voc import read_id_list


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wsss-evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--pred", required=True, type=Path, help="folder of predicted <id>.png label maps")
    parser.add_argument("--gt", type=Path, default=None,
                        help="folder of ground-truth <id>.png (e.g. SegmentationClass); default: --dataset's")
    parser.add_argument("--dataset", type=Path, default=None,
                        help="dataset description YAML: class names, and the ground truth when --gt is not given")
    parser.add_argument("--data", type=Path, default=None,
                        help="the dataset's folder; alone: a VOC2012 folder (configs/datasets/voc2012.yaml there)")
    parser.add_argument("--split", default=None, help="with --dataset / --data: a split (default: all)")
    parser.add_argument("--list", type=Path, default=None,
                        help="id list (ImageSets/Segmentation/<split>.txt); default: every PNG in --pred")
    parser.add_argument("--json", type=Path, default=None, help="also write the metrics as JSON here")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.gt is None and args.dataset is None and args.data is None:
        parser.error("--gt, --dataset or --data is required")

    def body() -> int:
        ids = read_id_list(args.list) if args.list is not None else None
        if args.gt is None:
            dataset = open_described(args.dataset, root=args.data, split=args.split)
            if dataset.description.ground_truth is None:  # `make stage1` on a dataset without ground truth
                print(f"{args.dataset} describes no ground_truth: nothing to evaluate")
                return 0
            metrics = evaluate_described(dataset, pred_dir=args.pred, ids=ids)
        else:
            names = dataset_class_names(args.dataset)  # VOC's without a description
            metrics = evaluate_folders(pred_dir=args.pred, gt_dir=args.gt, ids=ids, class_names=names)
        print(metrics.format_table())
        if args.json is not None:
            write_json(args.json, {**metrics.to_dict(), "split": args.split, "list": args.list and str(args.list)})
            print(f"wrote {args.json}")
        return 0

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
