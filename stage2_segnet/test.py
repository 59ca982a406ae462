"""Evaluate a trained stage-2 model on real ground truth, and write VOC-format prediction PNGs.

    python -m stage2_segnet.test CONFIG --data VOCROOT --work-dir DIR [--checkpoint last|best|CKPT]
        [--split val|test|FILE] [--out-dir DIR] [--tta] [--crf] [--json FILE]
        [--gpus N] [--launcher ...] [--cfg-options key=value ...]

``--checkpoint`` is the last iteration's by default, as the papers report; ``best`` is the one
validation picked (``best_mIoU_*.pth``, when training saved one): a val figure from it is selected
on val, and the result file says which was used. On a split with ground truth the mIoU, mAcc, aAcc
and per-class IoU (in %) are printed and written to ``<work-dir>/test_<split>[_tta][_crf]_metrics.json``.
``--out-dir`` writes ``<id>.png`` palette masks (0..20); on the ``test`` split (no ground truth) only
those are written, for the evaluation server (``wsss-stage2-submit`` packs them). ``--tta``: the
config's multi-scale (0.5-1.75) + flip views, their softmax averaged (mmseg's TTA); ``--crf`` refines
each prediction (after TTA: the averaged distribution) with a dense CRF (needs ``pydensecrf2``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, Optional, Sequence

from mmengine.config import Config

from wsss.core.atomic import write_json
from wsss.core.cli import run_checked
from wsss.core.crf import require_crf

from .launch import (add_common_args, apply_dataset, build_runner, configure_runtime, described_data, finish_args,
                     rank, relaunch_with_torchrun, start)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="wsss-stage2-test", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--checkpoint", default="last",
                        help="last (default: the last iteration's), best (selected on val), or a .pth file")
    parser.add_argument("--split", default=None,
                        help="split name (val, test) or list file; default: the config's test list (val)")
    parser.add_argument("--out-dir", default=None, help="write <id>.png VOC palette predictions here")
    parser.add_argument("--tta", action="store_true", help="multi-scale + flip test-time augmentation")
    parser.add_argument("--crf", action="store_true", help="dense-CRF post-processing (pydensecrf2)")
    parser.add_argument("--json", default=None, help="metrics JSON path (default: <work-dir>/test_<split>_metrics.json)")
    return finish_args(parser.parse_args(argv), parser)


def find_checkpoint(work_dir: str, which: str = "last") -> str:
    """``last``: the checkpoint ``last_checkpoint`` names, else the newest ``iter_*.pth``; ``best``:
    the newest ``best_*.pth`` (the val-selected one); anything else is a path, returned as it is."""
    if which not in ("last", "best"):
        return which
    root = Path(work_dir)
    if which == "best":
        best = sorted(root.glob("best_*.pth"), key=lambda p: p.stat().st_mtime)
        if not best:
            raise FileNotFoundError(f"no best_*.pth in {root}: training saved no val-selected checkpoint "
                                    "(save_best); use --checkpoint last")
        return str(best[-1])
    last = root / "last_checkpoint"
    if last.is_file() and Path(last.read_text().strip()).is_file():
        return last.read_text().strip()
    ckpts = sorted(root.glob("iter_*.pth"), key=lambda p: int(p.stem.split("_")[1]))
    if ckpts:
        return str(ckpts[-1])
    raise FileNotFoundError(f"no checkpoint in {root}: train first (make stage2) or pass --checkpoint")


def build_config(args: argparse.Namespace, launcher: str) -> Config:
    cfg = Config.fromfile(args.config)
    configure_runtime(cfg, launcher, args.work_dir)
    info = apply_dataset(cfg, described_data(args), work_dir=args.work_dir, loaders=["test_dataloader"],
                         splits={"test_dataloader": args.split or "val"})
    no_ground_truth = info["gt_dir"] is None
    checkpoint = find_checkpoint(args.work_dir, args.checkpoint)
    if not Path(checkpoint).is_file():
        raise FileNotFoundError(f"checkpoint {checkpoint} not found")
    cfg.load_from, cfg.resume = checkpoint, False
    # the trained weights replace the backbone's ImageNet initialisation: no need for that file
    cfg.model.pretrained = None
    split = args.split
    test_ds = cfg.test_dataloader.dataset
    evaluator = cfg.test_evaluator
    if args.out_dir:
        evaluator.output_dir = str(Path(args.out_dir).resolve())
    if split == "test" or no_ground_truth:  # no ground truth: predictions only
        if not args.out_dir:
            raise ValueError(f"{'the dataset description' if no_ground_truth else '--split test'} has no ground "
                             "truth: give --out-dir for the prediction PNGs")
        evaluator.format_only = True
        test_ds.require_labels = False
        test_ds.pipeline = [t for t in test_ds.pipeline if t["type"] not in ("LoadVOCLabel", "LoadAnnotations")]
    if args.tta:
        if "tta_pipeline" not in cfg:
            raise ValueError(f"{args.config} has no tta_pipeline: --tta needs one (configs/stage2/_base_/datasets)")
        test_ds.pipeline = cfg.tta_pipeline
        cfg.model = dict(type="SegTTAWithScores", module=cfg.model)
    if args.crf:
        require_crf()
        evaluator.crf = {}
    if args.cfg_dict:
        cfg.merge_from_dict(args.cfg_dict)
    return cfg


def checkpoint_choice(which: str) -> str:
    """How the tested checkpoint was chosen, for the result file (a val figure of ``best`` is selected on val)."""
    return {"last": "last iteration", "best": "best on val (selected on the split it reports)"}.get(which, "given file")


def run(cfg: Config) -> Dict[str, float]:
    return build_runner(cfg).test()


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv, args, launcher = start(parse_args, argv)
    if launcher == "torchrun":
        return relaunch_with_torchrun("stage2_segnet.test", argv, args.gpus)
    cfg, status = run_checked(lambda: build_config(args, launcher))  # a user's mistake: one line, exit 2
    if status:
        return status
    metrics = run(cfg)
    if rank() == 0:
        split = Path(args.split).stem if args.split else Path(cfg.test_dataloader.dataset.ann_file).stem
        tag = split + ("_tta" if args.tta else "") + ("_crf" if args.crf else "")
        out = Path(args.json) if args.json else Path(args.work_dir) / f"test_{tag}_metrics.json"
        values = {k: float(v) for k, v in (metrics or {}).items()}
        record = dict(metrics={k: v for k, v in values.items() if not k.startswith("IoU.")},
                      per_class_iou={k[4:]: v for k, v in values.items() if k.startswith("IoU.")},
                      checkpoint=cfg.load_from, checkpoint_choice=checkpoint_choice(args.checkpoint),
                      config=str(args.config), split=split, tta=bool(args.tta), crf=bool(args.crf),
                      out_dir=args.out_dir)
        write_json(out, record)  # atomic: the demo takes an existing file for a finished test
        print(f"[stage2] {json.dumps(record['metrics'])} -> {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
