"""The demo's stage 2: a short training of the tiny segmentation network (mmseg) on pseudo-masks and of
the smoke Mask R-CNN (mmdet) on instance pseudo-labels, each tested on the synthetic val scenes. Every
network runs as ``train`` then ``test`` subprocesses and is reused when its metrics file exists."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from wsss.apps.demo.methods import MethodOutputs
from wsss.apps.demo.timer import Timer

REPO_ROOT = Path(__file__).resolve().parents[3]  # wsss/apps/demo/stage2.py -> the repository


def stage2_available(mods: Sequence[str] = ("mmcv", "mmengine", "mmseg")) -> Optional[str]:
    """None if the OpenMMLab stack imports, else the reason."""
    for mod in mods:
        if importlib.util.find_spec(mod) is None:
            return f"{mod} is not installed (make setup installs the OpenMMLab stack)"
    try:
        for mod in mods:
            importlib.import_module(mod)
        if "mmdet" in mods:
            importlib.import_module("mmcv.ops")  # Mask R-CNN's RoIAlign and NMS
    except Exception as exc:  # noqa: BLE001 -- any import failure means: no stage 2 here
        return f"the OpenMMLab stack does not import: {type(exc).__name__}: {exc}"
    return None


def run_logged(commands, folder: Path, env: Dict[str, str], *, what: str) -> bool:
    """Run ``[(name, argv), ...]`` in turn from the repository, each logging to ``folder/<name>.log``;
    False (with the log's last lines printed) at the first that fails."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, cmd in commands:
        print("$ " + " ".join(cmd), flush=True)
        log_path = folder / f"{name}.log"
        with open(log_path, "w") as log:
            rc = subprocess.call(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        if rc != 0:
            tail = log_path.read_text().splitlines()[-15:]
            print(f"{what} failed (exit {rc}); last lines of {log_path}:\n  " + "\n  ".join(tail))
            return False
    return True


def train_and_test(*, folder: Path, metrics_file: Path, train: List[str], test: List[str], threads: int,
                   what: str) -> Optional[dict]:
    """The ``metrics`` of ``metrics_file``, written by running ``train`` then ``test`` in a fresh ``folder``
    unless it exists; None if a command fails. The subprocesses use ``threads`` OpenMP threads unless the
    environment sets them."""
    if metrics_file.is_file():
        print(f"{what}: cached result {metrics_file}")
    else:
        if folder.exists():
            shutil.rmtree(folder)
        env = dict(os.environ, PYTHONWARNINGS="ignore")
        env.setdefault("OMP_NUM_THREADS", str(max(1, threads)))
        if not run_logged([("train", train), ("test", test)], folder, env, what=what):
            return None
    return json.loads(metrics_file.read_text()).get("metrics", {})


def train_segmentation(args: argparse.Namespace, *, work: Path, data: Path, pseudo: Path, name: str) -> Optional[dict]:
    """Train the tiny stage 2 network on ``pseudo`` and test it on the val ground truth; returns metrics."""
    folder = work / "stage2" / name
    metrics_file = folder / "test_val_metrics.json"
    it = args.stage2_iters
    opts = [f"train_cfg.max_iters={it}", f"train_cfg.val_interval={it}", f"param_scheduler.0.end={it}",
            f"default_hooks.checkpoint.interval={it}", "default_hooks.logger.interval=25",
            f"train_dataloader.batch_size={args.stage2_batch}"]
    base = [sys.executable, "-m"]
    train = base + ["stage2_segnet.train", "--config", args.stage2_config, "--data", str(data), "--pseudo", str(pseudo),
                    "--work-dir", str(folder), "--train-list", "train", "--val-list", "val", "--seed", str(args.seed),
                    "--launcher", "none", "--cfg-options", *opts]
    test = base + ["stage2_segnet.test", "--config", args.stage2_config, "--data", str(data), "--work-dir", str(folder),
                   "--split", "val", "--launcher", "none", "--json", str(metrics_file)]
    m = train_and_test(folder=folder, metrics_file=metrics_file, train=train, test=test, threads=args.threads,
                       what=f"stage 2 ({name})")
    if m is None:
        return None
    return {"mIoU": m.get("mIoU"), "pixel_accuracy": m.get("aAcc"), "per_class_iou": {}, "trained_on": name,
            "iterations": args.stage2_iters, "config": args.stage2_config}


def train_instances(args: argparse.Namespace, *, work: Path, data: Path, pseudo: Path, name: str) -> Optional[dict]:
    """Train the smoke Mask R-CNN on the instance pseudo-labels ``pseudo`` and test it on the val
    instances; returns its mask AP (percent)."""
    folder = work / "stage2_instance" / name
    metrics_file = folder / "test_val_instance_metrics.json"
    it = args.stage2_instance_iters
    opts = [f"train_cfg.max_iters={it}", f"train_cfg.val_interval={it}", f"default_hooks.checkpoint.interval={it}",
            "default_hooks.logger.interval=25", f"train_dataloader.batch_size={args.stage2_instance_batch}"]
    base = [sys.executable, "-m", "stage2_segnet.instances"]
    train = base + ["train", args.stage2_instance_config, "--data", str(data), "--pseudo", str(pseudo),
                    "--work-dir", str(folder), "--val-list", "val", "--seed", str(args.seed), "--launcher", "none",
                    "--cfg-options", *opts]
    test = base + ["test", args.stage2_instance_config, "--data", str(data), "--work-dir", str(folder),
                   "--split", "val", "--launcher", "none", "--json", str(metrics_file)]
    m = train_and_test(folder=folder, metrics_file=metrics_file, train=train, test=test, threads=args.threads,
                       what=f"stage 2 instances ({name})")
    if m is None:
        return None
    pct = {k: (100 * m[f"coco/segm_mAP{s}"] if m.get(f"coco/segm_mAP{s}", -1) >= 0 else 0.0)
           for k, s in (("AP", ""), ("AP50", "_50"), ("AP75", "_75"))}
    return {**{k: round(v, 2) for k, v in pct.items()}, "trained_on": name, "iterations": args.stage2_instance_iters,
            "config": args.stage2_instance_config}


def run_stage2(args: argparse.Namespace, *, work: Path, data: Path, outputs: MethodOutputs, final: str,
               timer: Timer, notes: List[str]) -> Tuple[Dict[str, dict], Dict[str, dict]]:
    """The segmentation networks (on ``final``'s masks, and on box fill's unless ``--no-stage2-baseline``)
    and the instance network (on ``final``'s instances), each in a timed step; a stack that does not
    import skips its networks with a note. Returns both tables of val metrics, by row name."""
    return (segmentation_networks(args, work=work, data=data, outputs=outputs, final=final, timer=timer, notes=notes),
            instance_networks(args, work=work, data=data, outputs=outputs, final=final, timer=timer, notes=notes))


def segmentation_networks(args: argparse.Namespace, *, work: Path, data: Path, outputs: MethodOutputs, final: str,
                          timer: Timer, notes: List[str]) -> Dict[str, dict]:
    table: Dict[str, dict] = {}
    reason = stage2_available()
    if reason:
        print(f"stage 2 skipped: {reason}")
        notes.append(f"Stage 2 was skipped: {reason}.")
        return table
    runs = [(f"stage 2 on {final} pseudo-masks", final, "fine_tuned"),
            ("stage 2 on box-fill masks", "box fill", "box_fill")]
    for name, key, tag in runs[: 1 if args.no_stage2_baseline else 2]:
        if key not in outputs.masks:
            continue  # weak labels without boxes make no box-fill masks
        with timer.step(name):
            r = train_segmentation(args, work=work, data=data, pseudo=outputs.masks[key], name=tag)
            if r is not None:
                table[name] = r
                print(f"{name}: val mIoU {r['mIoU']:.2f}")
    return table


def instance_networks(args: argparse.Namespace, *, work: Path, data: Path, outputs: MethodOutputs, final: str,
                      timer: Timer, notes: List[str]) -> Dict[str, dict]:
    table: Dict[str, dict] = {}
    if final not in outputs.instances:
        return table
    reason = stage2_available(("mmcv", "mmengine", "mmdet"))
    if reason:
        print(f"stage 2 instance network skipped: {reason}")
        notes.append(f"The stage 2 instance network was skipped: {reason}.")
        return table
    name = f"Mask R-CNN (smoke) on {final} instances"
    with timer.step(name):
        r = train_instances(args, work=work, data=data, pseudo=outputs.instances[final], name="fine_tuned")
        if r is not None:
            table[name] = r
            print(f"{name}: val mask AP {r['AP']:.2f}")
    return table
