"""The demo's results: the overlay rows, ``report.html`` / ``report.json`` and the printed table."""

from __future__ import annotations

import argparse
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence

from wsss.apps.demo.methods import MethodOutputs
from wsss.apps.demo.model import Model
from wsss.apps.demo.sources import Source
from wsss.apps.demo.steps import Scores
from wsss.apps.demo.targets import check_targets, target_line
from wsss.apps.demo.timer import Timer
from wsss.core.atomic import write_json

SHOWN = ("zero-shot", "fine-tuned", "fine-tuned + CRF")  # the methods whose masks the overlays show


@dataclass(frozen=True, kw_only=True)
class Results:
    """What a run measured: the stage 1 method stage 2 trains on (``final``), every method's outputs and
    scores, and the stage 2 val metrics of the segmentation and instance networks, by row name."""

    final: str
    outputs: MethodOutputs
    scores: Scores
    stage2: Dict[str, dict]
    stage2_instances: Dict[str, dict]


def overlay_rows(ids, load, methods: Dict[str, Path], rank_by: str, read_gt, *, weak_labels: Sequence[str]):
    """The best, median and worst images by ``rank_by``'s mIoU, with every method's mask; ``load(id)``
    gives an image's annotation, of which the rows keep (and name) the ``weak_labels`` kinds the run
    used, ``read_gt(id)`` its ground truth."""
    from wsss.core.masks import read_mask
    from wsss.core.weak_labels.annotation import select_weak_labels
    from wsss.apps.report import OverlayRow, per_image_miou, select_best_median_worst

    scores = {}
    for i in ids:
        scores[i] = per_image_miou(read_mask(methods[rank_by] / f"{i}.png"), read_gt(i))
    rows = []
    for label, image_id, _ in select_best_median_worst(scores):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ann = select_weak_labels(load(image_id), weak_labels)
        gt = read_gt(image_id)
        masks = {name: read_mask(d / f"{image_id}.png") for name, d in methods.items()}
        rows.append(OverlayRow(label=label, image_id=image_id, image=ann.read_image(), annotation=ann,
                               masks=masks, gt=gt, scores={n: per_image_miou(m, gt) for n, m in masks.items()},
                               weak_labels=", ".join(weak_labels)))
    return rows, scores


def write_report(args: argparse.Namespace, *, work: Path, source: Source, model: Model, cfg, setting: str,
                 results: Results, timer: Timer, notes: List[str]) -> List[dict]:
    """``work/report.html`` and ``work/report.json`` (with every step's time) in a timed step; returns the targets."""
    from wsss.apps.report import build_report

    final, masks = results.final, results.outputs.masks
    with timer.step("report"):
        rows, per_image = overlay_rows(source.ids, source.load_annotation, {k: masks[k] for k in SHOWN if k in masks},
                                       final, source.read_gt, weak_labels=cfg.data.weak_labels)
        targets = check_targets(pseudo=results.scores.pseudo, instances=results.scores.instances,
                                stage2=results.stage2, final=final)
        report = build_report(
            work, pseudo_metrics=results.scores.pseudo, stage2_metrics=results.stage2,
            stage2_description=(f"{args.stage2_config}, {args.stage2_iters} iterations from scratch on the "
                                f"{len(source.ids)} train scenes' masks; mIoU on the {args.num_val} held-out val "
                                "scenes' ground truth." if results.stage2 else None),
            train_log=cfg.train_log, overlay_rows=rows, ranked_by=final, title=title(source, setting),
            diagnostics_dir=cfg.diagnostics_path(zero_shot=False),
            dataset={"root": str(source.data), "description": source.description, "split": source.split, "images": len(source.ids),
                     "weak_labels": setting, "kind": source.kind},
            classes=source.class_names, model=model.info(), targets=targets, timings=timer.times, notes=notes,
            extra={"per_image_miou": {"method": final, "scores": per_image}, "crf": cfg.get("crf"),
                   "instances": instances_extra(args, results)},
        )
    report["timings_s"] = timer.times  # the report step's own time included
    write_json(work / "report.json", report)
    return targets


def title(source: Source, setting: str) -> str:
    what = "Demo: synthetic target scenes" if source.synthetic else f"Quality benchmark: {source.description or source.data} ({source.split})"
    return f"{what}, weak labels: {setting}"


def instances_extra(args: argparse.Namespace, results: Results) -> dict:
    """The report's instance section: every method's mask AP and the instance network's."""
    trained = results.stage2_instances
    return {"methods": results.scores.instances, "ground_truth": results.scores.truth_info,
            "score": "stage 1: mean class probability over the mask; baselines: 1",
            "stage2": trained,
            "stage2_description": (f"{args.stage2_instance_config}, {args.stage2_instance_iters} iterations from "
                                   "scratch; mask AP on the val scenes' instances" if trained else None)}


def print_results(*, setting: str, results: Results, targets: List[dict], work: Path, timer: Timer) -> None:
    """The closing table: every figure of the run, then each target as MET / NOT MET."""
    print(f"\nResults (weak labels: {setting})")
    for name, m in results.scores.pseudo.items():
        print(f"  pseudo-masks  {name:<16} mIoU {m.miou:6.2f}")
    for name, r in results.stage2.items():
        print(f"  {name:<40} mIoU {r['mIoU']:6.2f}")
    for name, m in results.scores.instances.items():
        print(f"  instances     {name:<16} mask AP {m['AP']:6.2f}  AP50 {m['AP50']:6.2f}  AP75 {m['AP75']:6.2f}")
    for name, r in results.stage2_instances.items():
        print(f"  {name:<40} mask AP {r['AP']:6.2f}")
    for t in targets:
        print(target_line(t))
    print(f"\nreport: {work / 'report.html'} (and report.json); total {timer.total():.0f} s")
