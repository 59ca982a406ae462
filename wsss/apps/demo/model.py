"""Which SAM the demo runs: official weights from ``--checkpoint``, else the project's proxy SAM."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

from wsss.apps.common import proxy_checkpoint
from wsss.apps.demo.errors import RefusedRun
from wsss.apps.demo.timer import Timer

PROXY_NOTE = ("Model: the project's proxy SAM, a small SAM-architecture stand-in for pretrained SAM trained by "
              "this project on synthetic source scenes (make proxy-sam). It is NOT pretrained SAM: these numbers "
              "show that the method works, not how well it works with SAM. Pass SAM_CHECKPOINT for official weights.")


@dataclass(frozen=True, kw_only=True)
class Model:
    """A SAM model type (``vit_h`` ... or ``proxy``) and its checkpoint file."""

    type: str
    checkpoint: str

    @property
    def is_proxy(self) -> bool:
        return self.type == "proxy"

    def info(self) -> dict:
        """The report's description of the model; for the proxy SAM with its held-out object IoU."""
        info = {"type": self.type, "checkpoint": self.checkpoint}
        if self.is_proxy:
            info["what"] = "proxy SAM: a small stand-in for pretrained SAM (not SAM)"
            side = Path(self.checkpoint + ".json")
            if side.is_file():
                summ = json.loads(side.read_text()).get("summary", {})
                info["proxy held-out object IoU (source / target)"] = (
                    f"{summ.get('val_object_iou_source')} / {summ.get('val_object_iou_target')}")
        return info


def resolve_model(args: argparse.Namespace, *, timer: Timer, progress: bool) -> Model:
    """``--checkpoint`` (which must exist) with ``--model-type`` (default vit_h); without it the proxy
    SAM at ``--proxy-checkpoint``, pretrained there in a timed step unless it is up to date."""
    if args.checkpoint is not None:
        if not Path(args.checkpoint).is_file():
            raise RefusedRun(f"SAM checkpoint {args.checkpoint} not found (make weights downloads one where there "
                             "is internet)")
        return Model(type=args.model_type or "vit_h", checkpoint=args.checkpoint)
    with timer.step("proxy SAM (stand-in for pretrained SAM)"):
        path = proxy_checkpoint(Path(args.proxy_checkpoint), progress=progress, steps=args.proxy_steps,
                                eval_scenes=args.proxy_eval_scenes, seed=args.proxy_seed)
    return Model(type="proxy", checkpoint=str(path))
