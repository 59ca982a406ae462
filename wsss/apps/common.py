"""What the demo and the ablation both start from: the proxy SAM checkpoint, the synthetic target
scenes, and pseudo-mask scores against a VOC-layout folder's ground truth."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Optional, Sequence


def proxy_checkpoint(path: Path, *, progress: bool, steps: Optional[int] = None, eval_scenes: Optional[int] = None,
                     seed: Optional[int] = None) -> Path:
    """The proxy SAM checkpoint at ``path``, pretrained there unless it exists with the same recipe.

    ``steps``, ``eval_scenes`` and ``seed`` replace the recipe's own (:class:`ProxyTrainConfig`) when given."""
    from stage1_pseudolabel.proxy.train_proxy import ProxyTrainConfig, ensure_proxy_checkpoint

    given = {"steps": steps, "eval_scenes": eval_scenes, "seed": seed}
    cfg = dataclasses.replace(ProxyTrainConfig(), **{k: v for k, v in given.items() if v is not None})
    return ensure_proxy_checkpoint(path, cfg, progress=progress)


def ensure_synthetic(root: Path, *, num_train: int, num_val: int, seed: int) -> Path:
    """The demo's synthetic target dataset (re-used if it exists with the same parameters)."""
    from wsss.core.synthetic import write_dataset

    meta = root / "synthetic.json"
    if meta.is_file():
        m = json.loads(meta.read_text())
        made = (m.get("domain"), m.get("num_train"), m.get("num_val"), m.get("seed"))
        if made == ("target", num_train, num_val, seed):
            print(f"synthetic target scenes: {root} is up to date")
            return root
        shutil.rmtree(root)
    write_dataset(root, domain="target", num_train=num_train, num_val=num_val, seed=seed)
    print(f"synthetic target scenes: {num_train} train (weak labels used) + {num_val} val (ground truth for stage 2) "
          f"-> {root}")
    return root


def metrics_for(pred_dir: Path, gt_dir: Path, ids: Sequence[str]):
    """The pseudo-masks in ``pred_dir`` scored against the ground-truth PNGs in ``gt_dir``, on ``ids``."""
    from wsss.core.evaluation import evaluate_folders

    return evaluate_folders(pred_dir=pred_dir, gt_dir=gt_dir, ids=ids)
