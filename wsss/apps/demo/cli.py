"""``wsss-demo`` / ``python -m wsss.apps.demo``: the flags, and the demo's steps in their order."""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from wsss.apps.demo.errors import RefusedRun
from wsss.apps.demo.methods import MethodOutputs
from wsss.apps.demo.model import PROXY_NOTE, resolve_model
from wsss.apps.demo.results import Results, print_results, write_report
from wsss.apps.demo.sources import Source, check_source_flags, open_source
from wsss.apps.demo.stage1_config import (BENCH_QUALITY_PROXY_EPOCHS, claim_work_dir, stage1_config,
                                          weak_label_setting_name)
from wsss.apps.demo.stage2 import run_stage2
from wsss.apps.demo.steps import evaluate, final_method, run_baselines, run_stage1
from wsss.apps.demo.timer import Timer
from wsss.core.cli import EXIT_REFUSED, setup_logging
from wsss.core.weak_labels.annotation import WEAK_LABEL_SETTINGS


def add_source_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--work-dir", default="work_dirs/demo")
    p.add_argument("--data", default=None, help="a VOC2012 folder, or --dataset's folder (default: synthetic target "
                                                "scenes in the work dir)")
    p.add_argument("--dataset", default=None,
                   help="with --bench-quality: a dataset description with ground_truth (configs/datasets/*.yaml)")
    p.add_argument("--split", default="train", help="split whose weak labels make the pseudo-masks")
    p.add_argument("--checkpoint", default=None, help="SAM checkpoint (default: the proxy SAM, trained if missing)")
    p.add_argument("--model-type", default=None, help="vit_h | vit_l | vit_b | vit_t | proxy (default: proxy)")
    p.add_argument("--proxy-checkpoint", default="data/checkpoints/proxy_sam.pth")
    p.add_argument("--proxy-steps", type=int, default=None, help="proxy pretraining steps (default: the recipe's)")
    p.add_argument("--proxy-eval-scenes", type=int, default=None, help="held-out scenes for the proxy's summary")
    p.add_argument("--proxy-seed", type=int, default=None,
                   help="proxy pretraining seed (default: the recipe's); give each seed its own --proxy-checkpoint")
    p.add_argument("--bench-quality", action="store_true",
                   help="baselines + stage 1 on --data or --dataset (with ground truth), with the report")
    p.add_argument("--num-train", type=int, default=40, help="synthetic scenes whose pseudo-masks are made")
    p.add_argument("--num-val", type=int, default=20, help="synthetic held-out scenes for stage 2's evaluation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weak-labels", choices=sorted(WEAK_LABEL_SETTINGS), default=None,
                   help="the weak labels every method uses (prompts and loss of stage 1, seeds of the baselines); "
                        "default: the stage 1 config's")


def add_stage1_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stage1-config", default=None,
                   help="stage 1 YAML (default with the proxy SAM: configs/stage1/demo_proxy.yaml for the demo, "
                        "configs/stage1/proxy_voc.yaml for --bench-quality; with official weights: "
                        "configs/stage1/voc_box_scribble.yaml)")
    p.add_argument("--stage1-epochs", type=int, default=None,
                   help="stage 1 fine-tuning epochs (default: the stage 1 config's; with --bench-quality and the "
                        f"proxy SAM: {BENCH_QUALITY_PROXY_EPOCHS})")
    p.add_argument("--stage1-max-steps", type=int, default=None)
    p.add_argument("--cfg-options", dest="cfg_options", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="stage 1 config overrides: section.key=value (YAML values)")
    p.add_argument("--set", dest="cfg_options", action="append", metavar="KEY=VALUE",
                   help="the same as --cfg-options, one key per flag; repeatable")


def add_stage2_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stage2-config", default="configs/stage2/demo_deeplabv3plus_tiny.py",
                   help="stage 2 mmseg config (default: a quarter-width DeepLabV3+ R18 that learns on 2 CPU cores)")
    p.add_argument("--stage2-iters", type=int, default=300)
    p.add_argument("--stage2-batch", type=int, default=8)
    p.add_argument("--stage2-instance-config", default="configs/stage2/tiny_mask_rcnn_r18_smoke.py",
                   help="mmdet config of the instance network trained on the fine-tuned instance pseudo-labels")
    p.add_argument("--stage2-instance-iters", type=int, default=100,
                   help="iterations of the instance network (about 2.5 s each on 2 CPU cores at batch 4)")
    p.add_argument("--stage2-instance-batch", type=int, default=4)
    p.add_argument("--skip-stage2", action="store_true")
    p.add_argument("--no-stage2-baseline", action="store_true",
                   help="train stage 2 on the fine-tuned pseudo-masks only, not also on the box-fill masks")


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=int(os.environ.get("DEMO_THREADS", "2")))
    p.add_argument("--fresh", action="store_true", help="delete the work dir first")
    p.add_argument("--no-progress", action="store_true")


#: the steps, in --help (what each shows: docs/method.md, "The proxy SAM")
STEPS_HELP = """\
steps:
  1. the proxy SAM, a stand-in for pretrained SAM (make proxy-sam; trained here if missing)
  2. synthetic target scenes: weak labels for train, ground truth for val
  3. baselines: box fill and GrabCut
  4. stage 1: embed, zero-shot masks, logic fine-tuning of the mask decoder, fine-tuned masks
  5. pseudo-mask evaluation of every method on the same train images (semantic and instances)
  6. on synthetic scenes: stage 2 on the fine-tuned and on the box-filled masks (mmseg), evaluated
     on val, and a smoke Mask R-CNN on the fine-tuned instances (mmdet)
  7. report.html and report.json in the work dir
With official weights and real data:
  wsss-demo --checkpoint sam_vit_h_4b8939.pth --model-type vit_h --data data/VOCdevkit/VOC2012
--bench-quality: steps 3-5 and 7 on --data / --dataset. A step whose outputs exist is skipped;
--fresh starts over."""


def build_parser() -> argparse.ArgumentParser:
    summary = importlib.import_module("wsss.apps.demo").__doc__.split("\n\n")[0]  # the package's docstring
    p = argparse.ArgumentParser(prog="wsss-demo", description=summary, epilog=STEPS_HELP,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    for add_arguments in (add_source_arguments, add_stage1_arguments, add_stage2_arguments, add_run_arguments):
        add_arguments(p)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    import torch

    torch.set_num_threads(max(1, args.threads))
    setup_logging()
    work = Path(args.work_dir)
    if args.fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    try:
        return run(args, work=work, timer=Timer())
    except RefusedRun as refusal:
        print(f"error: {refusal}", file=sys.stderr)
        return EXIT_REFUSED


def run(args: argparse.Namespace, *, work: Path, timer: Timer) -> int:
    """The demo's steps in order: model, data, baselines, stage 1, evaluation, stage 2, report."""
    progress = not args.no_progress
    check_source_flags(args)
    notes: List[str] = []
    model = resolve_model(args, timer=timer, progress=progress)
    if model.is_proxy:
        notes.append(PROXY_NOTE)
    source = open_source(args, work=work, timer=timer)
    cfg = stage1_config(args, work=work, source=source, model=model)
    setting = weak_label_setting_name(cfg.data.weak_labels)
    claim_work_dir(work, setting)
    print(f"weak labels: {setting} ({', '.join(cfg.data.weak_labels)}; prompts: {cfg.prompts.mode})")
    outputs = MethodOutputs()
    if "boxes" in cfg.data.weak_labels:
        run_baselines(source=source, weak_labels=cfg.data.weak_labels, work=work, outputs=outputs,
                      timer=timer, progress=progress)
    else:
        notes.append(f"Weak labels '{setting}' have no boxes: the box-fill and GrabCut baselines (both start "
                     "from boxes) were not run.")
    run_stage1(cfg, outputs=outputs, timer=timer, notes=notes, progress=progress)
    results = measure(args, work=work, source=source, cfg=cfg, outputs=outputs, timer=timer, notes=notes)
    targets = write_report(args, work=work, source=source, model=model, cfg=cfg, setting=setting, results=results,
                           timer=timer, notes=notes)
    print_results(setting=setting, results=results, targets=targets, work=work, timer=timer)
    return 0


def measure(args: argparse.Namespace, *, work: Path, source: Source, cfg, outputs: MethodOutputs, timer: Timer,
            notes: List[str]) -> Results:
    """Every method's scores, then stage 2 on the synthetic scenes (not with --bench-quality or --skip-stage2)."""
    final = final_method(cfg)
    scores = evaluate(source=source, outputs=outputs, timer=timer)
    stage2, stage2_instances = {}, {}
    if source.synthetic and not args.bench_quality and not args.skip_stage2:
        stage2, stage2_instances = run_stage2(args, work=work, data=source.data, outputs=outputs, final=final,
                                              timer=timer, notes=notes)
    return Results(final=final, outputs=outputs, scores=scores, stage2=stage2, stage2_instances=stage2_instances)
