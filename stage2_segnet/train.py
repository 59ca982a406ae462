"""Train a segmentation network on stage 1's pseudo-masks with mmseg (mmengine's Runner).

    python -m stage2_segnet.train CONFIG --pseudo DIR --data VOCROOT --work-dir DIR
        [--gpus N] [--launcher auto|none|pytorch|slurm] [--resume [CKPT]]
        [--train-list SPLIT|FILE] [--val-list SPLIT|FILE] [--iters N] [--no-check] [--amp] [--seed S]
        [--cfg-options key=value ...]

Before the runner starts: the backbone checkpoint the config names must exist (no downloads), and
the pseudo-mask folder must hold a valid mask for every training image (ids 0..20/255, the ground
truth's palette, the image's size); problems are listed with their files.

``--resume`` without a path resumes from the newest checkpoint in the work dir (and starts afresh if
there is none), so re-running the same command continues an interrupted job.
Distributed: ``--gpus N`` on one node (re-launched through torchrun), or run under ``torchrun`` /
``srun`` yourself (the launcher is detected). SyncBN is used when distributed, BN otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

from mmengine.config import Config

from wsss.core.cli import run_checked
from wsss.core.weak_labels.voc import read_id_list

from .checks import NUM_FOREGROUND, check_pretrained, check_pseudo_masks, raise_on_problems
from .launch import (add_common_args, add_resume_argument, apply_dataset, apply_resume, build_runner,
                     configure_runtime, described_data, finish_args, rank, relaunch_with_torchrun,
                     report_last_checkpoint, start)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="wsss-stage2-train", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--pseudo", required=True, help="stage 1's pseudo-mask folder (<id>.png)")
    add_resume_argument(parser)
    parser.add_argument("--train-list", default=None, help="training split name or list file (default: train)")
    parser.add_argument("--val-list", default=None, help="validation split name or list file (default: val)")
    parser.add_argument("--no-check", action="store_true", help="skip the pseudo-mask folder check")
    parser.add_argument("--iters", type=int, default=None,
                        help="schedule length (papers: 20000, 40000, 80000): max_iters and the LR schedule's end")
    parser.add_argument("--amp", action="store_true", help="mixed precision (CUDA)")
    parser.add_argument("--seed", type=int, default=None)
    return finish_args(parser.parse_args(argv), parser)


def build_config(args: argparse.Namespace, launcher: str) -> Config:
    """The config of this run: file + data paths + runtime + ``--cfg-options`` (applied last)."""
    cfg = Config.fromfile(args.config)
    configure_runtime(cfg, launcher, args.work_dir)
    info = apply_dataset(cfg, described_data(args), work_dir=args.work_dir,
                         loaders=["train_dataloader", "val_dataloader", "test_dataloader"],
                         splits={"train_dataloader": args.train_list or "train",
                                 "val_dataloader": args.val_list or "val", "test_dataloader": args.val_list or "val"})
    if info["gt_dir"] is None:  # nothing to validate on: train only
        print(f"[stage2] {args.dataset} describes no ground truth: training without validation", flush=True)
        for key in ("val_dataloader", "val_cfg", "val_evaluator", "test_dataloader", "test_cfg", "test_evaluator"):
            cfg[key] = None
        if cfg.get("default_hooks", {}).get("checkpoint", {}).get("save_best"):
            cfg.default_hooks.checkpoint.save_best = None
    cfg.train_dataloader.dataset.pseudo_dir = str(Path(args.pseudo).expanduser().resolve())
    apply_resume(cfg, args.resume)
    if args.iters is not None:
        set_schedule(cfg, args.iters)
    if args.amp:
        cfg.optim_wrapper.type = "AmpOptimWrapper"
        cfg.optim_wrapper.setdefault("loss_scale", "dynamic")
    if args.seed is not None:
        cfg.randomness = dict(seed=args.seed)
    if args.cfg_dict:
        cfg.merge_from_dict(args.cfg_dict)
    return cfg


def set_schedule(cfg: Config, iters: int) -> None:
    """Train for ``iters`` iterations: ``max_iters``, and every iteration-based LR scheduler that ends
    at the config's ``max_iters`` ends at ``iters`` (so poly decay reaches its floor at the new end)."""
    if iters < 1:
        raise ValueError(f"--iters must be >= 1, got {iters}")
    old = cfg.train_cfg.max_iters
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = min(cfg.train_cfg.get("val_interval", iters), iters)
    for scheduler in cfg.get("param_scheduler") or []:
        if not scheduler.get("by_epoch", True) and scheduler.get("end") == old:
            scheduler["end"] = iters


def _ann_path(dataset_cfg) -> Path:
    ann = Path(dataset_cfg.ann_file)
    return ann if ann.is_absolute() else Path(dataset_cfg.data_root) / ann


def preflight(cfg: Config, check_masks: bool = True) -> None:
    """Checks that need no model: backbone checkpoint present; pseudo-masks fit the training list."""
    check_pretrained(cfg.model)
    if not check_masks or rank() != 0:
        return
    ds = cfg.train_dataloader.dataset
    root = Path(ds.data_root)
    ids = read_id_list(_ann_path(ds))
    img_dir = root / ds.get("data_prefix", {}).get("img_path", "JPEGImages")
    # the class count and the ground truth of this run (a dataset description's, or VOC's)
    num_foreground = next((t.get("num_foreground", NUM_FOREGROUND) for t in ds.get("pipeline") or []
                           if t.get("type") == "LoadVOCLabel"), NUM_FOREGROUND)
    val = cfg.get("val_dataloader")
    seg_prefix = val.dataset.get("data_prefix", {}).get("seg_map_path") if val is not None else None
    gt_dir = Path(val.dataset.data_root) / seg_prefix if seg_prefix else None
    palette = (ds.get("metainfo") or {}).get("palette")  # a description's colours
    image_paths = json.loads(Path(ds.image_index).read_text(encoding="utf-8")) if ds.get("image_index") else None
    problems = check_pseudo_masks(ds.pseudo_dir, ids, img_dir=img_dir, gt_dir=gt_dir, palette=palette,
                                  num_foreground=num_foreground, img_suffix=ds.get("img_suffix", ".jpg"),
                                  image_paths=image_paths)
    raise_on_problems(problems, f"the pseudo-mask folder {ds.pseudo_dir} ({len(ids)} training images)")
    print(f"[stage2] pseudo-masks checked: {len(ids)} images in {ds.pseudo_dir}", flush=True)


def run(cfg: Config):
    """Build mmseg's runner from ``cfg`` and train; returns the runner."""
    runner = build_runner(cfg)
    runner.train()
    return runner


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv, args, launcher = start(parse_args, argv)

    def checked_config():
        """A user's mistake (missing backbone weights, bad pseudo-masks, bad config) is one line, exit 2."""
        if launcher == "torchrun":  # check once here, then one process per GPU
            preflight(build_config(args, "none"), check_masks=not args.no_check)
            return None
        cfg = build_config(args, launcher)
        preflight(cfg, check_masks=not args.no_check)
        return cfg

    cfg, status = run_checked(checked_config)
    if status:
        return status
    if launcher == "torchrun":
        return relaunch_with_torchrun("stage2_segnet.train", argv + ["--no-check"], args.gpus)
    run(cfg)
    report_last_checkpoint(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
