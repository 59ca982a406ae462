"""The demo's stage 1 config and the weak-label setting it claims its work dir for."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from wsss.apps.demo.errors import RefusedRun
from wsss.apps.demo.model import Model
from wsss.apps.demo.sources import Source
from wsss.core.weak_labels.annotation import WEAK_LABEL_SETTINGS

BENCH_QUALITY_PROXY_EPOCHS = 6  # --bench-quality with the proxy SAM: stage 1 fine-tuning epochs (--stage1-epochs)


def config_file(args: argparse.Namespace, model: Model) -> str:
    """``--stage1-config``, else the synthetic demo's tuned config for the proxy SAM (the VOC loss on real
    photographs), else the VOC config for official weights."""
    if args.stage1_config:
        return args.stage1_config
    if model.is_proxy:
        return "configs/stage1/proxy_voc.yaml" if args.bench_quality else "configs/stage1/demo_proxy.yaml"
    return "configs/stage1/voc_box_scribble.yaml"


def stage1_config(args: argparse.Namespace, *, work: Path, source: Source, model: Model):
    """The stage 1 config of this run (under ``work/stage1``), with instance pseudo-labels on."""
    from stage1_pseudolabel.pipeline.config import build_config

    overrides = {"data.split": source.split, "work_dir": str(work / "stage1"), "model.type": model.type,
                 "model.checkpoint": model.checkpoint, "device": args.device}
    overrides.update({"data.dataset": source.description, "data.root": source.data and str(source.data)})
    if args.stage1_epochs is not None:
        overrides["train.epochs"] = args.stage1_epochs
    elif args.bench_quality and model.is_proxy and args.stage1_config is None:
        # demo_proxy.yaml's 25 epochs are sized for the demo's 40 scenes; on a real train list (VOC: 334
        # images) that is thousands of steps. Keep bench-quality's fine-tuning to minutes on 2 cores.
        overrides["train.epochs"] = BENCH_QUALITY_PROXY_EPOCHS
    if args.stage1_max_steps is not None:
        overrides["train.max_steps"] = args.stage1_max_steps
    if args.weak_labels is not None:
        kinds, prompt_mode = WEAK_LABEL_SETTINGS[args.weak_labels]
        overrides.update({"data.weak_labels": list(kinds), "prompts.mode": prompt_mode})
    cfg = build_config(config_file=config_file(args, model), overrides=overrides, cfg_options=args.cfg_options)
    return cfg.updated(generate={"instances": True})


def weak_label_setting_name(kinds: Sequence[str]) -> str:
    """The name in :data:`WEAK_LABEL_SETTINGS` of a set of weak-label kinds (else the kinds joined by +)."""
    for name, (setting_kinds, _) in WEAK_LABEL_SETTINGS.items():
        if set(setting_kinds) == set(kinds):
            return name
    return "+".join(kinds)


def claim_work_dir(work: Path, setting: str) -> None:
    """Mark ``work`` as holding results of the weak-label setting ``setting``; refuse one marked for another.

    Every step reuses what the work dir holds: outputs of another weak-label setting must not be."""
    marker = work / "weak_labels.txt"
    if marker.is_file() and marker.read_text().strip() != setting:
        raise RefusedRun(f"{work} holds results made with weak labels '{marker.read_text().strip()}', this run uses "
                         f"'{setting}': use another --work-dir (make: WEAK_LABELS=... picks its own) or --fresh")
    if not marker.is_file():
        marker.write_text(setting + "\n")
