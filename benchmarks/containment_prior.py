"""Does a domain prior written as a formula help? The containment prior on the synthetic nested domain.

    .venv/bin/python benchmarks/containment_prior.py [--inner-label box|click|tag] [--weights 1,4]
        [--weight W --train-seed S] [--config ...] [--set KEY=VALUE] [--threads 1]

Scenes: an outer object containing an inner one (:mod:`wsss.core.synthetic.nested`), the proxy SAM.
``--inner-label box``: boxes for both, the inner object's box loose (``--inner-box-margin``, 0.35 of its
size on each side: an annotator's box around a small faint structure). ``--inner-label click``: a box
for the outer object and only a click for the inner one, which stage 1 prompts by its click
(``configs/stage1/nested_proxy_click*.yaml``). ``--inner-label tag``: a box for the outer object and
the image's tags (and one click, a label for the loss only) for the inner one, which stage 1 makes a
prompt-less object (``configs/stage1/nested_proxy_tag*.yaml``). The prior
``forall p: inner(p) -> forall q in N8(p): not background(q)`` (``loss.inner_in_outer`` of the config) is
weighed on *selection* scenes (seed 11), and the chosen weight is compared with the same run without
the prior on *report* scenes (seed 12) never used to choose anything; ``--weight W`` skips the
selection (for other ``--train-seed`` values once W is chosen). Prints, per run, the inner class's IoU,
the outer's, the mIoU, and where the inner class's errors are (its precision and recall, its pixels on
background and on the outer object). A decoder trained with the same config is reused on a rerun.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Dict, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import yaml  # noqa: E402

from stage1_pseudolabel.pipeline.config import build_config  # noqa: E402
from stage1_pseudolabel.pipeline.embed import run_embed  # noqa: E402
from stage1_pseudolabel.pipeline.generate import run_generate  # noqa: E402
from stage1_pseudolabel.pipeline.train import run_train  # noqa: E402
from stage1_pseudolabel.proxy.train_proxy import ProxyTrainConfig, ensure_proxy_checkpoint  # noqa: E402
from wsss.core.evaluation import evaluate_folders  # noqa: E402
from wsss.core.synthetic.nested import INNER, OUTER, write_nested_dataset  # noqa: E402
from wsss.core.weak_labels.voc import read_id_list  # noqa: E402

CONFIG = "configs/stage1/nested_proxy_containment.yaml"
CONFIGS = {"box": CONFIG, "click": "configs/stage1/nested_proxy_click_containment.yaml",
           "tag": "configs/stage1/nested_proxy_tag_containment.yaml"}
WORK_DIRS = {"box": "work_dirs/containment_loose", "click": "work_dirs/containment_click", "tag": "work_dirs/containment_tag"}


def _trained_with(cfg) -> bool:
    """True if the work dir holds a decoder trained with this config (a rerun reuses it); the paths may
    differ (a renamed work dir: the scenes are the benchmark's own, fixed by their seed)."""
    saved = cfg.work_path / "config.yaml"
    if not (cfg.decoder_path().is_file() and saved.is_file()):
        return False
    def settings(d):
        kept = {k: v for k, v in d.items() if k != "work_dir"}
        kept["data"] = {k: v for k, v in d.get("data", {}).items() if k != "root"}
        return kept
    return settings(yaml.safe_load(saved.read_text())) == settings(yaml.safe_load(yaml.safe_dump(cfg.to_dict(), sort_keys=False)))


def run(data: Path, work: Path, weight: float, checkpoint: str, *, zero_shot: bool = False,
        config: str = CONFIG, train_seed: int = 0, sets: Sequence[str] = ()) -> Dict[str, float]:
    if train_seed:  # another training order (and prompt sampling); the data stay the same
        work = work.with_name(f"{work.name}_s{train_seed}")
    cfg = build_config(config_file=config, overrides={"data.root": str(data), "data.split": "train", "work_dir": str(work),
                                                     "model.checkpoint": checkpoint, "model.type": "proxy"},
                       cfg_options=[f"loss.inner_in_outer.weight={weight}", f"seed={train_seed}", *sets])
    run_embed(cfg, progress=False)
    if zero_shot:
        out = Path(run_generate(cfg, zero_shot=True, progress=False)["output_dir"])
    else:
        if not _trained_with(cfg):
            shutil.rmtree(cfg.output_path(zero_shot=False), ignore_errors=True)  # another decoder's masks
            run_train(cfg, progress=False)
        out = Path(run_generate(cfg, progress=False)["output_dir"])
    ids = read_id_list(data / "ImageSets" / "Segmentation" / "train.txt")
    m = evaluate_folders(pred_dir=out, gt_dir=data / "SegmentationClass", ids=ids)
    iou = list(m.per_class_iou.values())  # percentages, in label order
    # where the inner class's errors are: what a containment prior can remove are its pixels on background
    # (confusion rows: ground truth, columns: prediction)
    tp, on_bg, on_outer = (int(m.confusion[row, INNER]) for row in (INNER, 0, OUTER))
    gt_inner = int(m.confusion[INNER].sum())
    return {"inner IoU": iou[INNER], "outer IoU": iou[OUTER], "mIoU (bg, outer, inner)": (iou[0] + iou[OUTER] + iou[INNER]) / 3,
            "inner precision %": 100 * tp / max(tp + on_bg + on_outer, 1), "inner recall %": 100 * tp / max(gt_inner, 1),
            "inner px on background": on_bg, "inner px on outer": on_outer}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work-dir", help="default work_dirs/containment_loose (box), work_dirs/containment_click, "
                                       "work_dirs/containment_tag")
    ap.add_argument("--inner-label", choices=tuple(CONFIGS), default="box", help="how the inner object is annotated")
    ap.add_argument("--selection-scenes", type=int, default=16)
    ap.add_argument("--report-scenes", type=int, default=40)
    ap.add_argument("--weights", default="0.5,2", help="prior weights tried on the selection scenes")
    ap.add_argument("--inner-box-margin", type=float, default=0.35)
    ap.add_argument("--config", help="stage-1 config with the prior as loss.inner_in_outer (default per --inner-label)")
    ap.add_argument("--train-seed", type=int, default=0, help="stage-1 training seed (the scenes do not change)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="config override for every run (repeatable), e.g. --set 'data.weak_labels=[boxes,tags]'; "
                         "give a --work-dir of its own")
    ap.add_argument("--weight", type=float, help="skip the selection: compare this prior weight on the report "
                                                   "scenes (e.g. with other --train-seed values once it is chosen)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    args.config = args.config or CONFIGS[args.inner_label]
    work = Path(args.work_dir or WORK_DIRS[args.inner_label])
    checkpoint = str(ensure_proxy_checkpoint(Path("data/checkpoints/proxy_sam.pth"), ProxyTrainConfig(), progress=False))
    m = args.inner_box_margin
    sel = write_nested_dataset(work / "selection_data", num_train=args.selection_scenes, seed=11, inner_box_margin=m,
                               inner_label=args.inner_label)
    rep = write_nested_dataset(work / "report_data", num_train=args.report_scenes, seed=12, inner_box_margin=m,
                               inner_label=args.inner_label)

    scores = {}
    if args.weight is not None:  # chosen before: the report scenes only
        args.weights, args.selection_scenes = "", 0
    else:
        print(f"selection: {args.selection_scenes} scenes (seed 11)")
    for w in ([0.0] + [float(v) for v in args.weights.split(",")]) if args.selection_scenes else []:
        scores[w] = run(sel, work / f"selection_w{w:g}" if w == 0 else work / f"selection_{Path(args.config).stem}_w{w:g}",
                        w, checkpoint, config=args.config, train_seed=args.train_seed, sets=args.sets)  # weight 0: no prior
        print(f"  prior weight {w:g}: " + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                                                    for k, v in scores[w].items()))
    if args.weight is not None:
        best = args.weight
    else:
        best = max(scores, key=lambda w: scores[w]["inner IoU"])
        print(f"chosen weight: {best:g} (best inner IoU on the selection scenes; 0 means the prior did not help)")
        if best == 0:
            best = min(w for w in scores if w > 0)  # still show the prior on the report scenes, for the record

    if not args.report_scenes:
        return
    print(f"\nreport: {args.report_scenes} other scenes (seed 12), never used to choose")
    seed = args.train_seed
    rows = {"zero-shot": run(rep, work / "report_w0", 0.0, checkpoint, zero_shot=True, config=args.config, sets=args.sets),
            "fine-tuned without the prior": run(rep, work / "report_w0", 0.0, checkpoint, config=args.config,
                                                train_seed=seed, sets=args.sets),
            f"fine-tuned with the prior (weight {best:g})": run(rep, work / f"report_{Path(args.config).stem}_w{best:g}", best,
                                                                 checkpoint, config=args.config, train_seed=seed,
                                                                 sets=args.sets)}
    cols = list(next(iter(rows.values())))
    print(f"\n| run | " + " | ".join(cols) + " |\n|---|" + "---:|" * len(cols))
    for name, r in rows.items():
        print(f"| {name} | " + " | ".join(f"{r[c]:.2f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")


if __name__ == "__main__":
    main()
