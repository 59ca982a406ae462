"""One prepared GPU run of stage 1 at SAM ViT-H size: embed, train and generate speed, syncs, cache size.

    python benchmarks/gpu_check.py --json gpu_check.json           # on a CUDA machine, about 5 minutes
    python benchmarks/gpu_check.py --dry --json out.json           # anywhere: reduced model, a few images

With random ViT-H weights (speed does not depend on them; no download), on synthetic VOC-size scenes:

* embed img/s of the bare encoder for fp32, fp32 + TF32 and bf16, eager and SDPA attention, batch
  1 and 8; SDPA runs with only the fused backends allowed (flash / memory-efficient / cuDNN on
  CUDA, flash on the CPU), so a row that cannot reach one fails instead of falling back;
* cache MB per image written by the embed step at batch 8;
* ``--steps`` training steps (bf16, batch 8): median step time, the preparation time before the
  first step, and on CUDA the host-device syncs per step (``torch.cuda.set_sync_debug_mode``);
* generate img/s;
* bf16 against fp32: the share of zero-shot pseudo-mask pixels on which the whole bf16 path (embed
  and decoder in bf16) agrees with the fp32 one (target >= 99.5%; random weights, so this is the
  numerics of the two paths, not a quality figure).

It prints one table and writes the figures as JSON. Targets: ViT-H bf16 >= 15 img/s and >= 4x fp32;
the VOC train_aug run (10,582 images: embed + 4 epochs + generate), estimated from these rates, in
under 30 minutes.
"""

from __future__ import annotations

import argparse
import json
from contextlib import nullcontext
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

VOC_TRAIN_AUG = 10_582
#: The dry run's model: the tests' reduced ViT (configs/stage1/tiny_random.yaml), 256-px input.
DRY_MODEL = {"image_size": 256, "encoder_depth": 2, "encoder_embed_dim": 64, "encoder_num_heads": 2,
             "window_size": 8, "prompt_embed_dim": 64, "decoder_mlp_dim": 128}


def fused_backends(device: torch.device):
    from torch.nn.attention import SDPBackend

    if device.type == "cuda":
        return [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION]
    return [SDPBackend.FLASH_ATTENTION]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def encoder_rates(model, device: torch.device, *, images: int, batches: Sequence[int]) -> List[Dict]:
    """img/s of the bare encoder per precision x attention x batch (a warm-up batch not counted)."""
    from torch.nn.attention import sdpa_kernel
    from stage1_pseudolabel.sam.precision import autocast
    from stage1_pseudolabel.sam.sdpa import use_eager_attention, use_sdpa_attention

    rng = np.random.default_rng(0)
    prepared = [model.prepare_image(rng.integers(0, 255, (375, 500, 3), dtype=np.uint8)) for _ in range(max(batches))]
    rows = []
    settings = [("fp32", False), ("fp32+tf32", True), ("bf16", False)]
    if device.type != "cuda":
        settings = [s for s in settings if s[0] != "fp32+tf32"]  # TF32 is a CUDA matmul mode
    for attention in ("eager", "sdpa"):
        (use_sdpa_attention if attention == "sdpa" else use_eager_attention)(model.image_encoder)
        for name, tf32 in settings:
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
            for batch in batches:
                kernel = sdpa_kernel(fused_backends(device)) if attention == "sdpa" else nullcontext()
                with kernel, autocast("bf16" if name == "bf16" else "fp32", device):
                    model.encode(prepared[:batch], device=device)  # warm-up (and cuDNN / kernel choice)
                    sync(device)
                    t0 = time.perf_counter()
                    done = 0
                    while done < images:
                        model.encode(prepared[:batch], device=device)
                        done += batch
                    sync(device)
                rows.append({"precision": name, "attention": attention, "batch": batch,
                             "img_per_s": done / (time.perf_counter() - t0)})
    use_eager_attention(model.image_encoder)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return rows


def pipeline_figures(cfg, device: torch.device, *, images: int) -> Dict[str, float]:
    """Embed (batch 8), train and generate through the pipeline's own entry points."""
    from stage1_pseudolabel.pipeline.embed import run_embed
    from stage1_pseudolabel.pipeline.generate import run_generate
    from stage1_pseudolabel.pipeline.train import run_train

    out: Dict[str, float] = {}
    t0 = time.perf_counter()
    run_embed(cfg, progress=False)
    out["embed_step_img_per_s"] = images / (time.perf_counter() - t0)
    files = list(Path(cfg.cache_dir).glob("*.pt"))
    out["cache_mb_per_image"] = sum(f.stat().st_size for f in files) / len(files) / 2**20
    syncs: List[int] = []
    if device.type == "cuda":
        torch.cuda.set_sync_debug_mode("warn")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = run_train(cfg, progress=False)
    if device.type == "cuda":
        torch.cuda.set_sync_debug_mode("default")
        syncs = [w for w in caught if "synchroniz" in str(w.message)]
    steps = summary["step_seconds"]
    out["train_steps"] = summary["steps"]
    out["train_step_median_s"] = statistics.median(steps[len(steps) // 2:])
    out["train_img_per_s"] = cfg.train.batch_size / out["train_step_median_s"]
    out["prepare_seconds"] = summary["prepare_seconds"]
    for phase, seconds in summary["phase_seconds"].items():  # host side; the device's time shows in read
        out[f"train_{phase}_median_s"] = statistics.median(seconds[len(seconds) // 2:])
    out["syncs_per_step"] = (len(syncs) / max(summary["steps"], 1)) if device.type == "cuda" else None
    t0 = time.perf_counter()
    run_generate(cfg, progress=False)
    out["generate_img_per_s"] = images / (time.perf_counter() - t0)
    return out


def bf16_agreement(cfg, *, work: Path) -> float:
    """Share of pixels on which zero-shot masks made in bf16 equal those made in fp32 (same images)."""
    from stage1_pseudolabel.pipeline.embed import run_embed
    from stage1_pseudolabel.pipeline.generate import run_generate
    from wsss.core.masks import mask_agreement

    folders = {}
    for precision in ("fp32", "bf16"):
        c = cfg.updated(model={"precision": precision}, work_dir=str(work / f"agree_{precision}"))
        run_embed(c, progress=False)
        run_generate(c, zero_shot=True, progress=False)
        folders[precision] = c.output_path(zero_shot=True)
    return mask_agreement(folders["fp32"], folders["bf16"])


def voc_estimate_minutes(embed_img_s: float, train_img_s: float, generate_img_s: float, epochs: int = 4) -> float:
    """Minutes of the VOC train_aug run at these rates (embed + epochs + generate)."""
    return (VOC_TRAIN_AUG / embed_img_s + epochs * VOC_TRAIN_AUG / train_img_s + VOC_TRAIN_AUG / generate_img_s) / 60


def run(*, dry: bool, steps: int, images: int, work: Path) -> Dict:
    from stage1_pseudolabel.pipeline.config import build_config
    from stage1_pseudolabel.pipeline.model import load_model
    from wsss.core.synthetic import write_dataset

    device = torch.device("cuda" if torch.cuda.is_available() and not dry else "cpu")
    data = write_dataset(work / "scenes", domain="target", num_train=images, num_val=0, seed=0,
                         size_range=(300, 500))
    overrides = {"data.root": str(data), "work_dir": str(work / "run"), "model.type": "vit_b" if dry else "vit_h",
                 "model.checkpoint": "none", "device": str(device), "model.precision": "bf16", "model.attention": "sdpa",
                 "embed.batch_size": 8, "train.batch_size": 8, "train.epochs": 10**6, "train.max_steps": steps,
                 "train.checkpoint_every": 10**9}
    if dry:
        overrides["model.kwargs"] = DRY_MODEL
    cfg = build_config(config_file=str(REPO / "configs/stage1/synthetic.yaml"), overrides=overrides)
    model, _ = load_model(cfg.model, device=device)
    encoder = encoder_rates(model, device, images=2 if dry else 16, batches=(1, 2) if dry else (1, 8))
    del model
    figures = pipeline_figures(cfg, device, images=images)
    figures["bf16_pixel_agreement"] = bf16_agreement(cfg, work=work)
    bf16 = max(r["img_per_s"] for r in encoder if r["precision"] == "bf16")
    fp32 = max(r["img_per_s"] for r in encoder if r["precision"] == "fp32")
    estimate = voc_estimate_minutes(bf16, figures["train_img_per_s"], figures["generate_img_per_s"])
    return {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", "dry": dry,
            "model": cfg.model.type, "encoder": encoder, "pipeline": figures,
            "targets": {"bf16_img_per_s": bf16, "bf16_over_fp32": bf16 / fp32,
                        "voc_train_aug_minutes_estimate": estimate,
                        "bf16_pixel_agreement": figures["bf16_pixel_agreement"]}}


def print_table(result: Dict) -> None:
    print(f"device: {result['device']}  model: {result['model']}{'  (dry run)' if result['dry'] else ''}")
    print(f"{'precision':>10} {'attention':>9} {'batch':>5} {'img/s':>8}")
    for r in result["encoder"]:
        print(f"{r['precision']:>10} {r['attention']:>9} {r['batch']:>5} {r['img_per_s']:8.2f}")
    for k, v in result["pipeline"].items():
        print(f"{k:>28}: {v if v is None else round(v, 4)}")
    t = result["targets"]
    print(f"bf16 {t['bf16_img_per_s']:.1f} img/s (target >= 15), {t['bf16_over_fp32']:.1f}x fp32 (target >= 4); "
          f"VOC train_aug estimate {t['voc_train_aug_minutes_estimate']:.1f} min (target < 30); "
          f"bf16 masks agree with fp32 on {t['bf16_pixel_agreement']:.2%} of pixels (target >= 99.5%)")


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dry", action="store_true", help="reduced model on the CPU (what the tests run)")
    p.add_argument("--steps", type=int, default=None, help="training steps (default 200; dry: 4)")
    p.add_argument("--images", type=int, default=None, help="synthetic scenes (default 64; dry: 8)")
    p.add_argument("--work-dir", default=None, help="default: a temporary folder")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    steps = args.steps or (4 if args.dry else 200)
    images = args.images or (8 if args.dry else 64)
    with tempfile.TemporaryDirectory() as tmp:
        result = run(dry=args.dry, steps=steps, images=images, work=Path(args.work_dir or tmp))
    print_table(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
