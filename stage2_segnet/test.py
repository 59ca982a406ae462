"""Evaluate a trained stage-2 model on real ground truth, and write VOC-format prediction PNGs.

    python -m stage2_segnet.test CONFIG --data VOCROOT --work-dir DIR [--checkpoint CKPT]
        [--split val|test|FILE] [--out-dir DIR] [--crf] [--json FILE]
        [--gpus N] [--launcher ...] [--cfg-options key=value ...]

``--checkpoint`` defaults to the work dir's best checkpoint (``best_mIoU_*.pth``), else its last.
On a split with ground truth the mIoU, mAcc and aAcc (in %) and the per-class IoU table are printed
and written to ``<work-dir>/test_<split>[_crf]_metrics.json``. ``--out-dir`` writes ``<id>.png`` palette
masks (0..20); on the ``test`` split (no ground truth) only those are written, for the evaluation
server. ``--crf`` refines each prediction with a dense CRF first (needs ``pydensecrf2``).
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

from .launch import (add_common_args, apply_dataset, build_runner, configure_runtime, finish_args, list_file, rank,
                     relaunch_with_torchrun, set_data_root, start)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="wsss-stage2-test", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--checkpoint", default=None, help="model to test (default: best, else last, in --work-dir)")
    parser.add_argument("--split", default=None,
                        help="split name (val, test) or list file; default: the config's test list (val)")
    parser.add_argument("--out-dir", default=None, help="write <id>.png VOC palette predictions here")
    parser.add_argument("--crf", action="store_true", help="dense-CRF post-processing (pydensecrf2)")
    parser.add_argument("--json", default=None, help="metrics JSON path (default: <work-dir>/test_<split>_metrics.json)")
    return finish_args(parser.parse_args(argv), parser)


def find_checkpoint(work_dir: str) -> str:
    """Best checkpoint of a work dir (``best_mIoU_*.pth``), else the one ``last_checkpoint`` names, else the newest."""
    root = Path(work_dir)
    best = sorted(root.glob("best_*.pth"), key=lambda p: p.stat().st_mtime)
    if best:
        return str(best[-1])
    last = root / "last_checkpoint"
    if last.is_file() and Path(last.read_text().strip()).is_file():
        return last.read_text().strip()
    ckpts = sorted(root.glob("*.pth"), key=lambda p: p.stat().st_mtime)
    if ckpts:
        return str(ckpts[-1])
    raise FileNotFoundError(f"no checkpoint in {root}: train first (make stage2) or pass --checkpoint")


def build_config(args: argparse.Namespace, launcher: str) -> Config:
    cfg = Config.fromfile(args.config)
    configure_runtime(cfg, launcher, args.work_dir)
    no_ground_truth = False
    if args.dataset:
        info = apply_dataset(cfg, args.dataset, work_dir=args.work_dir, loaders=["test_dataloader"],
                             splits={"test_dataloader": args.split or "val"})
        no_ground_truth = info["gt_dir"] is None
    else:
        set_data_root(cfg, args.data, ["test_dataloader"])
    checkpoint = args.checkpoint or find_checkpoint(args.work_dir)
    if not Path(checkpoint).is_file():
        raise FileNotFoundError(f"checkpoint {checkpoint} not found")
    cfg.load_from, cfg.resume = checkpoint, False
    # the trained weights replace the backbone's ImageNet initialisation: no need for that file
    cfg.model.pretrained = None
    split = args.split
    test_ds = cfg.test_dataloader.dataset
    if split is not None and not args.dataset:
        test_ds.ann_file = list_file(args.data, split)
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
    if args.crf:
        require_crf()
        evaluator.crf = {}
    if args.cfg_dict:
        cfg.merge_from_dict(args.cfg_dict)
    return cfg


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
        tag = f"{split}_crf" if args.crf else split
        out = Path(args.json) if args.json else Path(args.work_dir) / f"test_{tag}_metrics.json"
        record = dict(metrics={k: float(v) for k, v in (metrics or {}).items()}, checkpoint=cfg.load_from,
                      config=str(args.config), split=split, crf=bool(args.crf), out_dir=args.out_dir)
        write_json(out, record)  # atomic: the demo takes an existing file for a finished test
        print(f"[stage2] {json.dumps(record['metrics'])} -> {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
