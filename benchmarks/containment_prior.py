"""Does a domain prior written as a formula help? The containment prior on the synthetic nested domain.

    .venv/bin/python benchmarks/containment_prior.py [--inner-label box|click] [--config ...] [--threads 1]

Scenes: an outer object containing an inner one (:mod:`wsss.core.synthetic.nested`), the proxy SAM.
``--inner-label box``: boxes for both, the inner object's box loose (``--inner-box-margin``, 0.35 of its
size on each side: an annotator's box around a small faint structure). ``--inner-label click``: a box
for the outer object and only a click for the inner one, which stage 1 prompts by its click
(``configs/stage1/nested_proxy_click*.yaml``). The prior ``forall p: inner(p) -> forall q in N8(p): not background(q)``
(``configs/stage1/nested_proxy_containment.yaml``) is weighed on *selection* scenes (seed 11), and the
chosen weight is compared with the same run without the prior on *report* scenes (seed 12) never used
to choose anything. Prints the inner class's IoU, the outer's, and the mIoU of each run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Dict

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from stage1_pseudolabel.pipeline.config import build_config  # noqa: E402
from stage1_pseudolabel.pipeline.embed import run_embed  # noqa: E402
from stage1_pseudolabel.pipeline.generate import run_generate  # noqa: E402
from stage1_pseudolabel.pipeline.train import run_train  # noqa: E402
from stage1_pseudolabel.proxy.train_proxy import ProxyTrainConfig, ensure_proxy_checkpoint  # noqa: E402
from wsss.core.evaluation import evaluate_folders  # noqa: E402
from wsss.core.synthetic.nested import INNER, OUTER, write_nested_dataset  # noqa: E402
from wsss.core.weak_labels.voc import read_id_list  # noqa: E402

CONFIG = "configs/stage1/nested_proxy_containment.yaml"
CONFIGS = {"box": CONFIG, "click": "configs/stage1/nested_proxy_click_containment.yaml"}


def run(data: Path, work: Path, weight: float, checkpoint: str, *, zero_shot: bool = False,
        config: str = CONFIG, train_seed: int = 0) -> Dict[str, float]:
    if train_seed:  # another training order (and prompt sampling); the data stay the same
        work = work.with_name(f"{work.name}_s{train_seed}")
    cfg = build_config(config_file=config, overrides={"data": str(data), "split": "train", "work_dir": str(work),
                                                     "checkpoint": checkpoint, "model_type": "proxy"},
                       cfg_options=[f"loss.inner_in_outer.weight={weight}", f"seed={train_seed}"])
    run_embed(cfg, progress=False)
    if zero_shot:
        out = Path(run_generate(cfg, zero_shot=True, progress=False)["output_dir"])
    else:
        if not cfg.decoder_path().is_file():
            run_train(cfg, progress=False)
        out = Path(run_generate(cfg, progress=False)["output_dir"])
    ids = read_id_list(data / "ImageSets" / "Segmentation" / "train.txt")
    m = evaluate_folders(pred_dir=out, gt_dir=data / "SegmentationClass", ids=ids)
    iou = list(m.per_class_iou.values())  # percentages, in label order
    return {"inner IoU": iou[INNER], "outer IoU": iou[OUTER], "mIoU (bg, outer, inner)": (iou[0] + iou[OUTER] + iou[INNER]) / 3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work-dir", help="default work_dirs/containment_loose (box) or work_dirs/containment_click")
    ap.add_argument("--inner-label", choices=("box", "click"), default="box", help="how the inner object is annotated")
    ap.add_argument("--selection-scenes", type=int, default=16)
    ap.add_argument("--report-scenes", type=int, default=40)
    ap.add_argument("--weights", default="0.5,2", help="prior weights tried on the selection scenes")
    ap.add_argument("--inner-box-margin", type=float, default=0.35)
    ap.add_argument("--config", help="stage-1 config with the prior as loss.inner_in_outer (default per --inner-label)")
    ap.add_argument("--train-seed", type=int, default=0, help="stage-1 training seed (the scenes do not change)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.config = args.config or CONFIGS[args.inner_label]
    work = Path(args.work_dir or ("work_dirs/containment_loose" if args.inner_label == "box" else "work_dirs/containment_click"))
    checkpoint = str(ensure_proxy_checkpoint(Path("data/checkpoints/proxy_sam.pth"), ProxyTrainConfig(), progress=False))
    m = args.inner_box_margin
    sel = write_nested_dataset(work / "selection_data", num_train=args.selection_scenes, seed=11, inner_box_margin=m,
                               inner_label=args.inner_label)
    rep = write_nested_dataset(work / "report_data", num_train=args.report_scenes, seed=12, inner_box_margin=m,
                               inner_label=args.inner_label)

    print(f"selection: {args.selection_scenes} scenes (seed 11)")
    scores = {}
    for w in [0.0] + [float(v) for v in args.weights.split(",")]:
        scores[w] = run(sel, work / f"selection_w{w:g}" if w == 0 else work / f"selection_{Path(args.config).stem}_w{w:g}",
                        w, checkpoint, config=args.config, train_seed=args.train_seed)  # weight 0: no prior
        print(f"  prior weight {w:g}: " + ", ".join(f"{k} {v:.2f}" for k, v in scores[w].items()))
    best = max(scores, key=lambda w: scores[w]["inner IoU"])
    print(f"chosen weight: {best:g} (best inner IoU on the selection scenes; 0 means the prior did not help)")
    if best == 0:
        best = min(w for w in scores if w > 0)  # still show the prior on the report scenes, for the record

    print(f"\nreport: {args.report_scenes} other scenes (seed 12), never used to choose")
    seed = args.train_seed
    rows = {"zero-shot": run(rep, work / "report_w0", 0.0, checkpoint, zero_shot=True, config=args.config),
            "fine-tuned without the prior": run(rep, work / "report_w0", 0.0, checkpoint, config=args.config,
                                                train_seed=seed),
            f"fine-tuned with the prior (weight {best:g})": run(rep, work / f"report_{Path(args.config).stem}_w{best:g}", best,
                                                                 checkpoint, config=args.config, train_seed=seed)}
    cols = list(next(iter(rows.values())))
    print(f"\n| run | " + " | ".join(cols) + " |\n|---|" + "---:|" * len(cols))
    for name, r in rows.items():
        print(f"| {name} | " + " | ".join(f"{r[c]:.2f}" for c in cols) + " |")


if __name__ == "__main__":
    main()
