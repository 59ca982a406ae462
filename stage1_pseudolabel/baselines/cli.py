"""Write classical-baseline pseudo-masks for a dataset (VOC 2012's layout, or any description).

Example::

    python -m stage1_pseudolabel.baselines.cli --method grabcut --data data/VOCdevkit/VOC2012 \\
        --split train --out-dir work_dirs/baselines/grabcut [--shard-index 0 --num-shards 8]

``--data DIR`` is the VOC description (configs/datasets/voc2012.yaml) with its root at DIR;
``--dataset FILE`` is any description (any format and class list, masks in its palette).

One VOC palette PNG per image is written atomically (:func:`wsss.core.masks.write_mask`).
Existing outputs are skipped, so a killed job is simply re-run. ``--shard-index i --num-shards N``
takes every N-th id of the list starting at i, so N jobs (a SLURM array) cover the list exactly once.
An image that cannot be read or processed is reported (id, file, error) and skipped; the exit status
is then 3 (:data:`wsss.core.cli.EXIT_SKIPPED`), after all the others were written.

``--instances`` writes the baseline's objects instead, as one COCO instances JSON
``<out-dir>/instances.json`` (``instances.shard<i>of<N>.json`` for a shard; merge them with
``wsss-merge-instances``), for ``wsss-evaluate-instances``
(:mod:`stage1_pseudolabel.baselines.instances`).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from tqdm import tqdm

from stage1_pseudolabel.baselines import METHODS
from wsss.core.masks import write_mask
from wsss.core.atomic import remove_stale_temp_files
from wsss.core.cli import add_shard_arguments, finish, run_cli, shard_ids
from wsss.core.datasets import open_described
from wsss.core.weak_labels.annotation import DEFAULT_WEAK_LABELS, WEAK_LABEL_SETTINGS, select_weak_labels
from wsss.core.weak_labels.errors import PathLike, WeakLabelError


@dataclass
class BaselineRun:
    """What :func:`run_baseline` did: ids written, skipped because they existed, and failures."""

    written: List[str] = field(default_factory=list)
    existing: List[str] = field(default_factory=list)
    failed: List[tuple] = field(default_factory=list)  # (image_id, message)
    seconds: float = 0.0

    def summary(self) -> str:
        lines = [f"written {len(self.written)}, already present {len(self.existing)}, failed {len(self.failed)} "
                 f"({self.seconds:.1f} s)"]
        return "\n".join(lines)


def run_baseline(
    method: str,
    data: Optional[PathLike],
    out: PathLike,
    *,
    split: Optional[str] = "train",
    ids: Optional[Sequence[str]] = None,
    shard_index: int = 0,
    num_shards: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    method_fn: Optional[Callable] = None,
    weak_labels: Sequence[str] = DEFAULT_WEAK_LABELS,
    dataset: Optional[PathLike] = None,
) -> BaselineRun:
    """Run baseline ``method`` (``box`` or ``grabcut``) on ``data`` and write ``out/<id>.png``.

    Args:
        ids: explicit ids (overrides ``split``).
        overwrite: recompute masks that already exist (default: skip them).
        method_fn: a custom ``(image, annotation) -> mask`` function instead of ``METHODS[method]``.
        weak_labels: the weak-label kinds the method may use (e.g. ``("boxes",)``: GrabCut without
            its scribble seeds).
        dataset: a dataset description file (default: VOC 2012's); ``data`` is its folder, when given.
    """
    if method_fn is None:
        if method not in METHODS:
            raise ValueError(f"unknown baseline {method!r}; choose one of {', '.join(METHODS)}")
        method_fn = METHODS[method]
    dataset = open_described(dataset, root=data, split=split, ids=ids)
    palette = dataset.palette
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    todo = shard_ids(dataset.ids, shard_index=shard_index, num_shards=num_shards)
    remove_stale_temp_files(out)
    run = BaselineRun()
    start = time.perf_counter()
    bar = tqdm(todo, desc=f"baseline {method}", unit="img", disable=not progress, dynamic_ncols=True)
    for image_id in bar:
        target = out / f"{image_id}.png"
        if target.is_file() and not overwrite:
            run.existing.append(image_id)
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # repairs were already reported by the reader policy
                ann = select_weak_labels(dataset.load(image_id), weak_labels)
            image = ann.read_image()
            mask = method_fn(image, ann)
            write_mask(target, mask, num_foreground=dataset.num_foreground, palette=palette)
        except (WeakLabelError, OSError, ValueError, RuntimeError) as exc:
            run.failed.append((image_id, f"{type(exc).__name__}: {exc}"))
            tqdm.write(f"[{image_id}] skipped: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        run.written.append(image_id)
    run.seconds = time.perf_counter() - start
    return run


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wsss-baselines", description=__doc__.split("\n\n")[0])
    p.add_argument("--method", required=True, choices=sorted(METHODS), help="box: filled boxes; grabcut: OpenCV GrabCut")
    p.add_argument("--data", help="the dataset's folder; alone: a VOC2012 folder")
    p.add_argument("--dataset", help="dataset description YAML (configs/datasets/*.yaml); default: VOC 2012's")
    p.add_argument("--split", default="train", help="a split of the dataset (default: train)")
    p.add_argument("--out-dir", required=True, help="output folder for <id>.png masks")
    add_shard_arguments(p)
    p.add_argument("--weak-labels", choices=sorted(WEAK_LABEL_SETTINGS), default="all",
                   help="which weak labels the method may use (default all: boxes, and scribbles as GrabCut seeds)")
    p.add_argument("--overwrite", action="store_true", help="recompute existing masks")
    p.add_argument("--instances", action="store_true",
                   help="write the objects as COCO instances JSON (<out-dir>/instances.json) instead of PNGs")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    def body() -> int:
        if args.instances:
            from stage1_pseudolabel.baselines.instances import run_instance_baseline

            name = "instances.json" if args.num_shards == 1 else f"instances.shard{args.shard_index}of{args.num_shards}.json"
            out = Path(args.out_dir) / name
            r = run_instance_baseline(args.method, args.data, out, split=args.split, shard_index=args.shard_index,
                                      num_shards=args.num_shards, overwrite=args.overwrite,
                                      weak_labels=WEAK_LABEL_SETTINGS[args.weak_labels][0], dataset=args.dataset)
            print(f"baseline {args.method} instances -> {out}: {r['written']} image(s) written ({r['objects']} "
                  f"object(s)), {r['existing']} already present, {len(r['failed'])} failed ({r['seconds']} s)")
            return finish([f"[{i}] {m}" for i, m in r["failed"]], what="wsss-baselines")
        run = run_baseline(args.method, args.data, args.out_dir, split=args.split, shard_index=args.shard_index,
                           num_shards=args.num_shards, overwrite=args.overwrite, progress=not args.no_progress,
                           weak_labels=WEAK_LABEL_SETTINGS[args.weak_labels][0], dataset=args.dataset)
        print(f"baseline {args.method} -> {args.out_dir}: {run.summary()}")
        return finish([f"[{i}] {m}" for i, m in run.failed], what="wsss-baselines")

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
