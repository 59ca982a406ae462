"""The GPU settings against the default ones: do bf16, fused attention and batching change the masks?

    python benchmarks/gpu_defaults.py --data ../shared/data/voc2012 --checkpoint PROXY_OR_SAM.pth \\
        [--model-type proxy] [--split train] [--max-images 120] [--set batch_size=8] [--json out.json]

Stage 1 (embed, train, generate) runs on the same labelled images with
``configs/stage1/proxy_voc.yaml`` (``--model-type proxy``) or ``voc_box_scribble.yaml`` (a SAM
checkpoint), in three settings:

* ``default``: the config as it is (fp32, batch 4, eager attention);
* ``bf16 masks``: the default run's fine-tuned decoder, embeddings and masks made again in bf16
  (what precision alone changes; target: >= 99.5% of pixels as in ``default``);
* ``gpu``: the run with ``voc_box_scribble_gpu.yaml``'s keys (bf16, SDPA attention, 8 images
  per encoder call; ``--set key=value`` changes it further), trained from scratch.

Printed: pseudo-mask mIoU of each against the ground truth and the share of pixels each agrees with
``default`` on. On a CPU, bf16 is CPU autocast; the mechanism is the GPU's, the speed is not.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Dict, Optional, Sequence


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: The keys voc_box_scribble_gpu.yaml sets, but the device (the run's own).
GPU_KEYS = ("model.precision", "train.precision", "model.tf32", "model.attention", "embed.batch_size",
            "train.batch_size", "model.decoder_batch_images")


def stage1(cfg, *, train: bool = True) -> Path:
    from stage1_pseudolabel.pipeline.embed import run_embed
    from stage1_pseudolabel.pipeline.generate import run_generate
    from stage1_pseudolabel.pipeline.train import run_train

    run_embed(cfg, progress=False)
    if train:
        run_train(cfg, progress=False)
    run_generate(cfg, progress=False)
    return cfg.output_path(zero_shot=False)


def run(args, work: Path) -> Dict[str, Dict[str, float]]:
    from stage1_pseudolabel.pipeline.config import build_config
    from wsss.core.evaluation.folders import evaluate_folders
    from wsss.core.masks import mask_agreement

    base = "proxy_voc.yaml" if args.model_type == "proxy" else "voc_box_scribble.yaml"
    common = {"data.root": str(args.data), "data.split": args.split, "model.checkpoint": str(args.checkpoint),
              "model.type": args.model_type, "device": args.device, "data.max_images": args.max_images,
              "train.epochs": args.epochs, "crf": None}
    gpu = build_config(config_file=str(REPO / "configs/stage1/voc_box_scribble_gpu.yaml"))
    configs = {
        "default": build_config(config_file=str(REPO / "configs/stage1" / base),
                                overrides=dict(common, work_dir=str(work / "default"))),
        "gpu": build_config(config_file=str(REPO / "configs/stage1" / base),
                            overrides=dict(common, work_dir=str(work / "gpu"),
                                           **{**{k: gpu.get(k) for k in GPU_KEYS}, **args.gpu_set})),
    }
    masks = {"default": stage1(configs["default"])}
    # The default run's decoder, everything else in bf16: its own cache (bf16 embeddings) and masks.
    bf16 = build_config(config_file=str(REPO / "configs/stage1" / base),
                        overrides=dict(common, work_dir=str(work / "bf16"), **{"model.precision": "bf16",
                                       "generate.decoder_checkpoint": str(configs["default"].decoder_path())}))
    masks["bf16 masks"] = stage1(bf16, train=False)
    masks["gpu"] = stage1(configs["gpu"])
    gt = Path(args.data) / "SegmentationClass"
    rows = {}
    for name, folder in masks.items():
        metrics = evaluate_folders(pred_dir=folder, gt_dir=gt)
        rows[name] = {"miou": metrics.miou, "agreement_with_default": mask_agreement(masks["default"], folder)}
    return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="VOC-layout folder with SegmentationClass")
    p.add_argument("--checkpoint", type=Path, required=True, help="the proxy SAM's or an official SAM checkpoint")
    p.add_argument("--model-type", default="proxy")
    p.add_argument("--split", default="train")
    p.add_argument("--max-images", type=int, default=120)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--device", default="auto")
    p.add_argument("--work-dir", type=Path, default=None, help="default: a temporary folder")
    p.add_argument("--set", action="append", default=[], dest="gpu_set", metavar="KEY=VALUE",
                   help="a further override of the gpu run (e.g. train.batch_size=8)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    import yaml

    args.gpu_set = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.gpu_set)}
    import logging

    logging.basicConfig(level=logging.ERROR)
    tmp = None if args.work_dir else tempfile.mkdtemp(prefix="gpu_defaults_")
    try:
        rows = run(args, args.work_dir or Path(tmp))
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"{'setting':>12} {'mIoU':>7} {'pixels as default':>18}")
    for name, r in rows.items():
        print(f"{name:>12} {r['miou']:7.2f} {r['agreement_with_default']:18.2%}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
