"""Which data the demo runs on: its synthetic target scenes, a dataset description with ground truth
(``--dataset``), or a VOC2012 folder (``--data``), each read through its dataset description, with its
images' ids, weak labels, ground truth and scoring."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, List, Optional

from wsss.core.weak_labels.errors import PathLike

from wsss.apps.common import ensure_synthetic
from wsss.apps.demo.errors import RefusedRun
from wsss.apps.demo.timer import Timer

SYNTHETIC, DESCRIBED, VOC = "synthetic target domain", "dataset description", "VOC-layout dataset"


@dataclass(frozen=True, kw_only=True)
class Source:
    """The images of one split with ground truth and how to read, show and score them.

    ``description`` (None: VOC 2012's) with its root at ``data`` (None: the description's) is what stage 1
    and the baselines read; ``load_annotation(id)`` gives an image's weak labels, ``read_gt(id)`` its
    ground-truth mask, ``score(pred_dir)`` the segmentation metrics of a pseudo-mask folder on ``ids``,
    ``instance_truth()`` the ground-truth instances of ``ids``."""

    kind: str
    description: Optional[str]
    data: Optional[Path]
    split: str
    ids: List[str]
    load_annotation: Callable[[str], Any]
    read_gt: Callable[[str], Any]
    score: Callable[[Path], Any]
    instance_truth: Callable[[], dict]
    class_names: List[str]

    @property
    def synthetic(self) -> bool:
        return self.kind == SYNTHETIC


def check_source_flags(args: argparse.Namespace) -> None:
    """Refuse ``--bench-quality`` without data and ``--dataset`` outside ``--bench-quality``."""
    if args.bench_quality and args.data is None and args.dataset is None:
        raise RefusedRun("--bench-quality needs --data (a VOC2012 folder, e.g. ../shared/data/voc2012) or "
                         "--dataset (a dataset description with ground_truth)")
    if args.dataset and not args.bench_quality:
        raise RefusedRun("--dataset goes with --bench-quality")


def open_source(args: argparse.Namespace, *, work: Path, timer: Timer) -> Source:
    """The flags' data: ``--dataset`` (its root at ``--data`` when given), ``--data`` (a VOC2012 folder),
    else synthetic scenes made (in a timed step) under ``work/data``."""
    if args.dataset is None and args.data is None:
        with timer.step("synthetic target scenes"):
            data = ensure_synthetic(work / "data", num_train=args.num_train, num_val=args.num_val, seed=args.seed)
        return dataset_source(None, root=data, split="train", kind=SYNTHETIC)
    if args.dataset is None and not (Path(args.data) / "JPEGImages").is_dir():
        raise RefusedRun(f"{args.data} is not a VOC2012 folder (no JPEGImages/)")
    return dataset_source(args.dataset, root=args.data, split=args.split, kind=DESCRIBED if args.dataset else VOC)


def dataset_source(description: Optional[str], *, root: Optional[PathLike], split: str, kind: str) -> Source:
    """The images of ``split`` of a dataset description (None: VOC 2012's; its root at ``root`` when
    given) that have ground truth; masks, metrics and overlays through it."""
    from wsss.core.datasets import open_described
    from wsss.core.evaluation import evaluate_described
    from wsss.core.evaluation.instances import described_ground_truth

    described = open_described(description, root=root, split=split)
    if described.description.ground_truth is None:
        raise RefusedRun(f"{description} describes no ground_truth: nothing to benchmark against")
    # a VOC split is ground truth for every image it lists (a missing file fails when it is read); a
    # description's images may have none, and those are left out
    ids = list(described.ids) if description is None else [i for i in described.ids if described.has_gt(i)]
    return Source(kind=kind, description=description, data=Path(root) if root is not None else None, split=split,
                  ids=ids, load_annotation=described.load, read_gt=described.read_gt,
                  class_names=list(described.classes),
                  score=lambda pred_dir: evaluate_described(described, pred_dir=pred_dir, ids=ids),
                  instance_truth=lambda: described_ground_truth(described, ids))
