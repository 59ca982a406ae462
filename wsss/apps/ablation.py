"""Which knowledge helps: fine-tune stage 1 leaving each constraint out once, one table of pseudo-mask mIoU.

    wsss-ablation [--config configs/stage1/demo_proxy.yaml] [--data DIR] [--dataset FILE] [--split train]
                  [--work-dir work_dirs/ablation] [--set section.key=value ...]

For the config's active constraints (``loss:``, every registered type or formula with a non-zero
weight) it runs train + generate once with all of them and once per constraint with that one's weight
set to 0, all from the same cached embeddings (embedded once), and evaluates each run's pseudo-masks
against the ground truth of the same images (masks of the mask decoder alone: the config's CRF is not
applied, so the table shows what the logic does). ``--dataset`` takes a dataset description
(configs/datasets/*.yaml) with ground truth, VOC 2012's by default. Without either it uses the demo's synthetic target
scenes and the proxy SAM (made if missing), like ``make demo``. Each run lives in
``<work-dir>/<variant>/`` and is reused when its masks exist (a killed ablation resumes);
``ablation.json`` and ``ablation.md`` hold the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from wsss.core.atomic import atomic_write, write_json
from wsss.core.cli import add_config_arguments, run_cli, setup_logging


def without(loss: Dict, name: str) -> Dict:
    """A copy of a ``loss:`` mapping with constraint ``name``'s weight set to 0 (its options kept)."""
    out = dict(loss)
    entry = out.get(name)
    out[name] = {**entry, "weight": 0.0} if isinstance(entry, dict) else 0.0
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wsss-ablation", description=__doc__.split("\n\n")[0])
    add_config_arguments(p, config_help="stage-1 YAML (default: configs/stage1/demo_proxy.yaml)")
    p.add_argument("--data", default=None, help="the dataset's folder; alone: a VOC2012 folder (default: synthetic scenes)")
    p.add_argument("--dataset", default=None, help="dataset description with ground_truth (configs/datasets/*.yaml)")
    p.add_argument("--split", default="train", help="a split of the dataset")
    p.add_argument("--work-dir", default="work_dirs/ablation")
    p.add_argument("--checkpoint", default=None, help="SAM checkpoint (default: the proxy SAM)")
    p.add_argument("--model-type", default=None)
    p.add_argument("--num-train", type=int, default=40, help="synthetic scenes (without --data)")
    p.add_argument("--seed", type=int, default=0, help="synthetic scenes' seed (without --data)")
    p.add_argument("--threads", type=int, default=int(os.environ.get("DEMO_THREADS", "2")))
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    return run_cli(lambda: run(args))


def run(args: argparse.Namespace) -> int:
    import torch

    from stage1_pseudolabel.pipeline.config import build_config
    from stage1_pseudolabel.pipeline.embed import run_embed
    from stage1_pseudolabel.pipeline.prepare import open_dataset
    from wsss.apps.common import ensure_synthetic, proxy_checkpoint
    from wsss.core.evaluation import evaluate_described

    torch.set_num_threads(max(1, args.threads))
    work = Path(args.work_dir)
    progress = not args.no_progress
    checkpoint, model_type = args.checkpoint, args.model_type
    if checkpoint is None:
        checkpoint = str(proxy_checkpoint(Path("data/checkpoints/proxy_sam.pth"), progress=progress))
        model_type = "proxy"
    overrides = {"data.split": args.split, "model.checkpoint": checkpoint, "model.type": model_type or "vit_h",
                 "work_dir": str(work / "all"), "data.dataset": args.dataset, "data.root": args.data}
    if args.dataset is None and args.data is None:
        overrides["data.root"] = str(ensure_synthetic(work / "data", num_train=args.num_train, num_val=1, seed=args.seed))
    base = build_config(config_file=args.config or "configs/stage1/demo_proxy.yaml", overrides=overrides,
                        cfg_options=args.cfg_options or ())
    dataset = open_dataset(base)  # the dataset the runs read, through its description
    if dataset.description.ground_truth is None:
        raise ValueError(f"{args.dataset}: the description has no ground_truth, so there is nothing to score an ablation on")
    ids = list(dataset.ids)
    # a VOC split is ground truth for every image it lists; a description's images may have none
    scored = ids if args.dataset is None else [i for i in ids if dataset.has_gt(i)]
    data = args.dataset or overrides["data.root"]

    def score(out: Path) -> float:
        return evaluate_described(dataset, pred_dir=out, ids=scored).miou

    base = dataclasses.replace(base, crf=None)  # the decoder's own masks: what the logic does, not the CRF
    active = base.constraints.active
    print(f"active constraints: {', '.join(active)}; {len(ids)} {args.split} images of {data}")
    run_embed(base, progress=progress)
    variants = {"all constraints": base}
    for name in active:
        variants[f"without {name}"] = dataclasses.replace(base, loss=without(base.loss, name),
                                                          work_dir=str(work / f"without_{name}"))
    rows: List[dict] = []
    for label, cfg in variants.items():
        miou = score(variant_masks(label, cfg, base=base, num_images=len(ids), progress=progress))
        rows.append({"variant": label, "mIoU": round(miou, 2)})
        print(f"{label}: pseudo-mask mIoU {miou:.2f}")
    write_table(rows, args=args, work=work, data=data, num_images=len(ids))
    return 0


def variant_masks(label: str, cfg, *, base, num_images: int, progress: bool) -> Path:
    """The fine-tuned pseudo-masks of one variant: trained and generated unless its decoder and all
    ``num_images`` masks exist. Every variant reads ``base``'s embedding cache."""
    from stage1_pseudolabel.pipeline.generate import run_generate
    from stage1_pseudolabel.pipeline.train import run_train

    if cfg is not base and not cfg.cache_dir.exists():
        cfg.work_path.mkdir(parents=True, exist_ok=True)
        cfg.cache_dir.symlink_to(base.cache_dir.resolve(), target_is_directory=True)
    out = cfg.output_path(zero_shot=False)
    if cfg.decoder_path().is_file() and out.is_dir() and len(list(out.glob("*.png"))) >= num_images:
        print(f"=== {label}: reused {out}")
        return out
    print(f"=== {label}: train + generate")
    if out.exists():
        shutil.rmtree(out)  # masks of an older (or interrupted) run's decoder
    run_train(cfg, progress=progress)
    run_generate(cfg, progress=progress)
    return out


def write_table(rows: List[dict], *, args: argparse.Namespace, work: Path, data, num_images: int) -> None:
    """Each row's change against the first (all constraints), printed and written to ``ablation.json`` / ``.md``."""
    full = rows[0]["mIoU"]
    for r in rows:
        r["delta"] = round(r["mIoU"] - full, 2)
    lines = ["| run | pseudo-mask mIoU | change vs all |", "|---|---:|---:|"]
    lines += [f"| {r['variant']} | {r['mIoU']:.2f} | {r['delta']:+.2f} |" for r in rows]
    table = "\n".join(lines)
    print("\n" + table)
    print("\nA constraint whose removal lowers the mIoU helps on these images (change < 0).")
    write_json(work / "ablation.json", {"config": args.config, "data": str(data), "split": args.split,
                                        "images": num_images, "rows": rows}, sort_keys=True)
    with atomic_write(work / "ablation.md") as f:
        f.write((f"Ablation on {num_images} {args.split} images of {data} (config {args.config or 'configs/stage1/demo_proxy.yaml'})\n\n"
                 + table + "\n").encode())
    print(f"-> {work / 'ablation.md'}, {work / 'ablation.json'}")


if __name__ == "__main__":
    raise SystemExit(main())
