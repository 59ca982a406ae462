"""Stage 1 at growing dataset size: does the time per image stay flat and memory bounded?

    python benchmarks/bench_scale.py [--sizes 500,2000,8000] [--epochs 2] [--work-dir work_dirs/bench_scale]

For each N, in a fresh process (so that its peak RSS is its own): N synthetic scenes (VOC-like
weak labels: boxes, scribbles, clicks) go through embed, train (``--epochs`` epochs) and generate
with a reduced random-weight ViT whose encoder input is 1024 px, so that the loss works in SAM's
256 x 256 low-res frame with the default 600 superpixels (what preparation costs on VOC); weights
are random, so the masks mean nothing, only the times do. Printed per N:

* seconds per image of embed, of one training epoch, and of generate;
* the preparation share of training: the seconds spent building images (annotation, prompts,
  superpixels, compiled constraints, zero-shot pass) over the training seconds, and the median
  step of the last epoch (steady state) against the median step of the first;
* peak RSS of the process.

Targets (issue: the real run): per-image time at the largest N within 1.2x of the smallest for
every step, and preparation at most 10% of a step in steady state. The scenes are written once per
N under the work dir and reused.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: A reduced ViT at SAM's 1024-px input (64 x 64 embedding, 256 x 256 low-res frame), random weights.
MODEL = {"image_size": 1024, "encoder_depth": 1, "encoder_embed_dim": 32, "encoder_num_heads": 1,
         "window_size": 16, "prompt_embed_dim": 32, "decoder_mlp_dim": 64}


def ensure_scenes(root: Path, n: int) -> Path:
    from wsss.core.synthetic import write_dataset

    marker = root / "scenes.json"
    if marker.is_file() and json.loads(marker.read_text()).get("num_train") == n:
        return root
    write_dataset(root, domain="target", num_train=n, num_val=0, seed=0)
    marker.write_text(json.dumps({"num_train": n}))
    return root


def timed_preparation() -> Dict[str, float]:
    """Seconds spent preparing training images, whichever way the pipeline does it: the time in
    ``TrainImages.warm`` (preparation inside the step loop) or the ``prepare_seconds`` the train
    summary reports (preparation before it)."""
    from stage1_pseudolabel.pipeline import train

    spent = {"seconds": 0.0}
    warm = getattr(getattr(train, "TrainImages", None), "warm", None)
    if warm is not None:
        def timed(self, indices):
            t0 = time.perf_counter()
            try:
                return warm(self, indices)
            finally:
                spent["seconds"] += time.perf_counter() - t0

        train.TrainImages.warm = timed
    return spent


def run_one(n: int, epochs: int, work: Path, encoder_size: int) -> Dict[str, float]:
    import torch

    from stage1_pseudolabel.pipeline.config import build_config
    from stage1_pseudolabel.pipeline.embed import run_embed
    from stage1_pseudolabel.pipeline.generate import run_generate
    from stage1_pseudolabel.pipeline.train import run_train

    torch.manual_seed(0)
    data = ensure_scenes(work / f"scenes_{n}", n)
    run_dir = work / f"run_{n}"
    cfg = build_config(config_file=str(REPO / "configs/stage1/synthetic.yaml"), overrides={
        "data.root": str(data), "work_dir": str(run_dir), "model.type": "vit_b", "model.checkpoint": "none", "model.seed": 0,
        "model.kwargs": dict(MODEL, image_size=encoder_size), "device": "cpu", "train.epochs": epochs, "train.batch_size": 4, "train.checkpoint_every": 10**9})
    out: Dict[str, float] = {"images": n}
    t0 = time.perf_counter()
    run_embed(cfg, progress=False)
    out["embed_s_per_image"] = (time.perf_counter() - t0) / n
    prep = timed_preparation()
    t0 = time.perf_counter()
    summary = run_train(cfg, progress=False)
    train_s = time.perf_counter() - t0
    prep_s = prep["seconds"] + float(summary.get("prepare_seconds", 0.0))
    steps = summary["step_seconds"]
    per_epoch = max(1, len(steps) // epochs)
    out["train_s_per_image_epoch"] = train_s / (n * epochs)
    out["prepare_s"] = prep_s
    out["prepare_share"] = prep_s / train_s
    out["step_first_epoch_s"] = statistics.median(steps[:per_epoch])
    out["step_last_epoch_s"] = statistics.median(steps[-per_epoch:])
    t0 = time.perf_counter()
    run_generate(cfg, progress=False)
    out["generate_s_per_image"] = (time.perf_counter() - t0) / n
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="500,2000,8000", help="dataset sizes N, comma-separated")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--work-dir", default="work_dirs/bench_scale")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--encoder-size", type=int, default=1024,
                   help="encoder input side; the loss frame is a quarter of it (512: 128 x 128, 4x cheaper)")
    p.add_argument("--json", default=None, help="also write the rows here")
    p.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # a child: one N, one JSON line
    args = p.parse_args(argv)
    work = Path(args.work_dir)
    if args.one is not None:
        import torch

        torch.set_num_threads(args.threads)
        print("ROW " + json.dumps(run_one(args.one, args.epochs, work, args.encoder_size)), flush=True)
        return 0
    rows: List[Dict[str, float]] = []
    for n in (int(s) for s in args.sizes.split(",")):
        run = work / f"run_{n}"
        if run.exists():
            import shutil

            shutil.rmtree(run)  # caches of an earlier run would make embed free
        cmd = [sys.executable, __file__, "--one", str(n), "--epochs", str(args.epochs), "--work-dir", str(work),
               "--threads", str(args.threads), "--encoder-size", str(args.encoder_size)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        line = [ln for ln in res.stdout.splitlines() if ln.startswith("ROW ")]
        if res.returncode != 0 or not line:
            print(res.stdout[-3000:], res.stderr[-3000:], file=sys.stderr)
            return 1
        rows.append(json.loads(line[0][4:]))
        print(f"N={n} done", flush=True)
    cols = [("images", "N", "{:.0f}"), ("embed_s_per_image", "embed s/img", "{:.4f}"),
            ("train_s_per_image_epoch", "train s/img/epoch", "{:.4f}"), ("prepare_share", "prep share", "{:.1%}"),
            ("step_first_epoch_s", "step ep.1 s", "{:.4f}"), ("step_last_epoch_s", "step last s", "{:.4f}"),
            ("generate_s_per_image", "generate s/img", "{:.4f}"), ("peak_rss_mb", "peak RSS MB", "{:.0f}")]
    print("  ".join(f"{h:>17}" for _, h, _ in cols))
    for r in rows:
        print("  ".join(f"{f.format(r[k]):>17}" for k, _, f in cols))
    first, last = rows[0], rows[-1]
    for key in ("embed_s_per_image", "train_s_per_image_epoch", "generate_s_per_image"):
        ratio = last[key] / first[key]
        print(f"{key}: N={last['images']:.0f} / N={first['images']:.0f} = {ratio:.2f}x "
              f"({'within' if ratio <= 1.2 else 'OVER'} the 1.2x target)")
    print(f"N={last['images']:.0f}: median step {last['step_first_epoch_s']:.3f} s in the first epoch, "
          f"{last['step_last_epoch_s']:.3f} s in the last (preparation inside the steps shows as a slower first "
          f"epoch); preparation {last['prepare_share']:.1%} of the training time")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
