"""Which data the demo runs on: its synthetic target scenes, a dataset description with ground truth
(``--dataset``), or a VOC-layout folder (``--data``), each with its images' ids, weak labels, ground
truth and scoring."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, List, Optional

from wsss.apps.common import ensure_synthetic, metrics_for
from wsss.apps.demo.errors import RefusedRun
from wsss.apps.demo.timer import Timer

SYNTHETIC, DESCRIBED, VOC = "synthetic target domain", "dataset description", "VOC-layout dataset"


@dataclass(frozen=True, kw_only=True)
class Source:
    """The images of one split with ground truth and how to read, show and score them.

    ``data`` is the folder (or the description file) stage 1 and the baselines read; ``load_annotation(id)``
    gives an image's weak labels, ``read_gt(id)`` its ground-truth mask, ``score(pred_dir)`` the
    segmentation metrics of a pseudo-mask folder on ``ids``, ``instance_truth()`` the ground-truth
    instances of ``ids``; ``class_names`` is None for VOC's own classes."""

    kind: str
    data: Path
    split: str
    ids: List[str]
    load_annotation: Callable[[str], Any]
    read_gt: Callable[[str], Any]
    score: Callable[[Path], Any]
    instance_truth: Callable[[], dict]
    class_names: Optional[List[str]] = None

    @property
    def synthetic(self) -> bool:
        return self.kind == SYNTHETIC


def check_source_flags(args: argparse.Namespace) -> None:
    """Refuse ``--bench-quality`` without data and ``--dataset`` outside ``--bench-quality`` or beside ``--data``."""
    if args.bench_quality and args.data is None and args.dataset is None:
        raise RefusedRun("--bench-quality needs --data (a VOC-layout folder, e.g. ../shared/data/voc2012) or "
                         "--dataset (a dataset description with ground_truth)")
    if args.dataset and (args.data or not args.bench_quality):
        raise RefusedRun("--dataset goes with --bench-quality, instead of --data")


def open_source(args: argparse.Namespace, *, work: Path, timer: Timer) -> Source:
    """The flags' data: ``--dataset``, ``--data``, else synthetic scenes made (in a timed step) under ``work/data``."""
    if args.dataset:
        return described_source(args.dataset, split=args.split)
    if args.data is not None:
        data = Path(args.data)
        if not (data / "JPEGImages").is_dir():
            raise RefusedRun(f"{data} is not a VOC-layout folder (no JPEGImages/)")
        return voc_source(data, split=args.split, kind=VOC)
    with timer.step("synthetic target scenes"):
        data = ensure_synthetic(work / "data", num_train=args.num_train, num_val=args.num_val, seed=args.seed)
    return voc_source(data, split="train", kind=SYNTHETIC)


def described_source(description: str, *, split: str) -> Source:
    """The images of a dataset description that have ground truth; masks, metrics and overlays through it."""
    from wsss.core.datasets import DescribedDataset
    from wsss.core.evaluation import evaluate_described
    from wsss.core.evaluation.instances import described_ground_truth

    described = DescribedDataset(description, split=split)
    if described.description.ground_truth is None:
        raise RefusedRun(f"{description} describes no ground_truth: nothing to benchmark against")
    ids = [i for i in described.ids if described.has_gt(i)]
    return Source(kind=DESCRIBED, data=Path(description), split=split, ids=ids, load_annotation=described.load,
                  read_gt=described.read_gt, class_names=list(described.classes),
                  score=lambda pred_dir: evaluate_described(described, pred_dir=pred_dir, ids=ids),
                  instance_truth=lambda: described_ground_truth(described, ids))


def voc_source(data: Path, *, split: str, kind: str) -> Source:
    """The images of a VOC-layout folder's split list, with SegmentationClass/ as ground truth."""
    from wsss.core.evaluation.instances import voc_ground_truth
    from wsss.core.masks import read_mask
    from wsss.core.weak_labels import VocDataset
    from wsss.core.weak_labels.voc import read_id_list, split_list_path

    ids = read_id_list(split_list_path(data, split))
    gt_dir = data / "SegmentationClass"
    return Source(kind=kind, data=data, split=split, ids=ids,
                  load_annotation=VocDataset(data, ids=ids, verify_images=False).load,
                  read_gt=lambda image_id: read_mask(gt_dir / f"{image_id}.png"),
                  score=lambda pred_dir: metrics_for(pred_dir, gt_dir, ids),
                  instance_truth=lambda: voc_ground_truth(data, ids))
