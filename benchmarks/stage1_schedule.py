"""Stage-1 pseudo-mask quality vs. training steps (fine-tuning must not collapse the masks).

    PYTHONPATH=. python benchmarks/stage1_schedule.py --config configs/stage1/voc_box.yaml \\
        --data ../shared/data/voc2012 --work-dir /tmp/sched --model-type proxy \\
        --checkpoint data/checkpoints/proxy_sam.pth --train-images 80 --eval-images 50 \\
        --max-steps 200 --every 20 [--set loss.box_fill=1 ...] [--out result.json]

Trains the decoder with the real training loop (``pipeline.train.run_train``, checkpoint every
``--every`` steps) on the first ``--train-images`` ids of the train split (embeddings must be cached
in ``<work_dir>/embeddings``: run ``stage1_pseudolabel.pipeline.embed`` first), then scores, on the
first ``--eval-images`` ids of ``--eval-split`` and on the training images, the pixel-space
pseudo-masks (no CRF) of the untrained decoder (zero-shot) and of every checkpoint, plus box fill,
against the ground truth: mIoU over the 21 VOC classes (background included, classes absent from both
prediction and ground truth left out) and the foreground fraction inside the boxes (low-res frame).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch

from stage1_pseudolabel.baselines.box_fill import box_fill
from wsss.core.evaluation.metrics import confusion_matrix, iou_per_class
from wsss.core.masks import read_mask
from stage1_pseudolabel.pipeline.cache import EmbeddingCache
from stage1_pseudolabel.pipeline.config import build_config
from stage1_pseudolabel.pipeline.model import load_model
from stage1_pseudolabel.pipeline.predict import DecoderRunner, lowres_log_distribution, pseudo_mask
from stage1_pseudolabel.pipeline.prepare import (
    ImageInputs, has_objects, lowres_box_cover, open_dataset, prepare_image,
)
from stage1_pseudolabel.pipeline.train import run_train
from stage1_pseudolabel.pipeline.train_images import foreground_fraction


def miou(conf: np.ndarray) -> float:
    return float(np.nanmean(iou_per_class(conf)) * 100)


def load_items(cfg, dataset, ids, key):
    """Per image, once: annotation, ground truth, prepared objects and embedding."""
    encoder_size, lowres = key.encoder_size, 4 * key.embedding_shape[1]
    cache = EmbeddingCache(cfg.cache_dir, key=key)
    inputs = ImageInputs.from_config(cfg)
    items = []
    for image_id in ids:
        ann = dataset.load(image_id)
        gt = read_mask(dataset.gt_path(image_id), height=ann.height, width=ann.width)
        prepared = prepare_image(ann, inputs=inputs, encoder_size=encoder_size, lowres=lowres, padded=key.padded)
        emb = cache.load(image_id, height=ann.height, width=ann.width, device=torch.device("cpu"), dtype=torch.float32)
        items.append((ann, gt, prepared, emb))
    return items


def box_fill_miou(items) -> float:
    conf = np.zeros((21, 22), np.int64)
    for ann, gt, _, _ in items:
        conf += confusion_matrix(box_fill(None, ann), gt)
    return round(miou(conf), 2)


def score(cfg, model, decoder_state, items) -> Dict[str, float]:
    """mIoU of the pseudo-masks on ``items``, and the mean fg fraction in boxes (low-res)."""
    model.mask_decoder.load_state_dict(decoder_state, strict=True)
    runner = DecoderRunner(model, device=torch.device("cpu"), multimask_output=cfg.prompts.multimask_output)
    conf = np.zeros((21, 22), np.int64)
    fgs: List[float] = []
    for ann, gt, prepared, emb in items:
        with torch.inference_mode():
            logits = runner.object_logits(prepared, emb)
            mask = pseudo_mask(prepared, logits)
            fg = foreground_fraction(lowres_log_distribution(prepared, logits), lowres_box_cover(prepared))
        if not math.isnan(fg):
            fgs.append(fg)
        conf += confusion_matrix(mask, gt)
    return {"miou": round(miou(conf), 2), "fg_in_boxes": round(float(np.mean(fgs)) if fgs else float("nan"), 4)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--work-dir", required=True)
    p.add_argument("--model-type", default="proxy")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--train-images", type=int, default=80)
    p.add_argument("--eval-split", default="val")
    p.add_argument("--eval-images", type=int, default=50)
    p.add_argument("--max-steps", type=int, required=True)
    p.add_argument("--every", type=int, required=True)
    p.add_argument("--score-train", action="store_true", help="also score the training images")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--set", dest="sets", action="append", default=[])
    p.add_argument("--out")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    common = {"data.root": args.data, "work_dir": args.work_dir, "model.type": args.model_type,
              "model.checkpoint": args.checkpoint, "device": "cpu"}
    cfg = build_config(config_file=args.config, cfg_options=args.sets, overrides={
        **common, "data.split": "train", "data.max_images": args.train_images, "train.max_steps": args.max_steps,
        "train.checkpoint_every": args.every, "train.epochs": 10**6})
    t0 = time.time()
    summary = run_train(cfg, progress=False)
    train_seconds = time.time() - t0
    log = [json.loads(l) for l in cfg.train_log.read_text().splitlines()]
    eval_cfg = build_config(config_file=args.config, cfg_options=args.sets, overrides={
        **common, "data.split": args.eval_split, "data.max_images": args.eval_images})
    model, key = load_model(eval_cfg, device=torch.device("cpu"))
    untrained = {k: v.clone() for k, v in model.mask_decoder.state_dict().items()}
    sets = {"eval": (eval_cfg, open_dataset(eval_cfg))}
    if args.score_train:
        sets["train"] = (cfg, open_dataset(cfg))
    result: Dict[str, object] = {"config": args.config, "sets": args.sets, "train_images": summary["images"],
                                 "steps": summary["steps"], "train_seconds": round(train_seconds, 1)}
    for name, (c, ds) in sets.items():
        ids = [i for i in ds.ids if has_objects(ds.load(i), prompts=c.prompts, weak_labels=c.data.weak_labels)]
        items = load_items(c, ds, ids, key)
        rows = {0: score(c, model, untrained, items)}
        for step in range(args.every, args.max_steps + 1, args.every):
            path = cfg.decoder_dir / f"step_{step:06d}.pth"
            if path.is_file():
                state = torch.load(path, map_location="cpu", weights_only=True)["mask_decoder"]
                rows[step] = score(c, model, state, items)
        result[name] = {"images": len(ids), "box_fill": box_fill_miou(items),
                        "by_step": {s: {"miou": r["miou"], "fg_in_boxes": r["fg_in_boxes"]} for s, r in rows.items()}}
    result["train_log_fg"] = [(r["step"], round(r.get("fg_in_boxes", float("nan")), 3),
                               round(r.get("fg_in_boxes_zero_shot", float("nan")), 3)) for r in log[:: max(1, args.every // 2)]]
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
