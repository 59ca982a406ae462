"""Stage 2 speed: seconds per training iteration and peak memory, per config.

    python benchmarks/bench_stage2.py [--device cpu|cuda|auto] [--configs CFG ...] [--iters N]
        [--batch B] [--json FILE]

Each config's model is built as mmseg's Runner builds it (from scratch: no checkpoint is read) and
trained with the config's optimizer on a random batch of the config's crop size and batch size;
the time covers the forward, backward and optimizer step (no data loading). On a busy CPU, compare
``--threads 1`` with the default: OpenMP threads that outnumber free cores slow down badly. Peak memory is the CUDA
allocator's peak on GPU, and the process's peak resident set size (growth during the benchmark and
total) on CPU. Defaults: the tiny smoke configs on CPU; on CUDA, also the full DeepLabV3+ and
Mask2Former configs.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Dict, List

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from stage2_segnet.register import register_all  # noqa: E402

register_all()  # a script: registrations and the checkpoint fix at start

TINY = ["configs/stage2/tiny_deeplabv3plus_r18_smoke.py", "configs/stage2/tiny_mask2former_r18_smoke.py"]
FULL = ["configs/stage2/deeplabv3plus_r50_voc_pseudo.py", "configs/stage2/mask2former_r50_voc_pseudo.py"]


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _batch(cfg, batch_size: int, device: str):
    """A random training batch in the data preprocessor's input format (uint8 images, label maps)."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    h, w = cfg.model.data_preprocessor.size
    g = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for _ in range(batch_size):
        inputs.append(torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8))
        label = torch.zeros(1, h, w, dtype=torch.long)
        for c in torch.randint(1, 21, (3,), generator=g).tolist():  # a few rectangles of classes
            y0, x0 = torch.randint(0, h // 2, (2,), generator=g).tolist()
            label[:, y0:y0 + h // 3, x0:x0 + w // 3] = c
        s = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
        s.gt_sem_seg = PixelData(data=label)
        samples.append(s)
    return dict(inputs=inputs, data_samples=samples)


def bench_config(path: str, device: str, iters: int, warmup: int, batch_size: int = 0) -> Dict:
    from mmengine.config import Config
    from mmengine.model import revert_sync_batchnorm
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    from mmengine.logging import MMLogger

    MMLogger.get_instance("bench_stage2", log_level="WARNING")  # no per-parameter init report
    cfg = Config.fromfile(str(REPO / path))
    init_default_scope(cfg.get("default_scope", "mmseg"))
    cfg.model.pop("pretrained", None)
    if cfg.model.backbone.get("init_cfg"):
        cfg.model.backbone.init_cfg = None
    model = revert_sync_batchnorm(MODELS.build(cfg.model)).to(device)
    model.init_weights()
    model.train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    bs = batch_size or cfg.train_dataloader.batch_size
    data = _batch(cfg, bs, device)

    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    rss0 = _rss_mib()
    times: List[float] = []
    for i in range(warmup + iters):
        t0 = time.perf_counter()
        model.train_step(data, optim_wrapper)
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    result = dict(config=path, device=device, batch_size=bs, crop=list(cfg.model.data_preprocessor.size),
                  iters=iters, s_per_iter=sum(times) / len(times), s_per_iter_min=min(times),
                  params_m=sum(p.numel() for p in model.parameters()) / 1e6)
    if device == "cuda":
        result["peak_mem_mib"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        result["peak_rss_mib"] = _rss_mib()
        result["rss_growth_mib"] = _rss_mib() - rss0
    del model, optim_wrapper
    if device == "cuda":
        torch.cuda.empty_cache()
    return result


def _bench_in_subprocess(path: str, device: str, iters: int, warmup: int, batch: int) -> Dict:
    """One config per process, so that the CPU peak RSS is that config's alone."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        subprocess.run([sys.executable, __file__, "--device", device, "--configs", path, "--iters", str(iters),
                        "--warmup", str(warmup), "--batch", str(batch), "--threads", str(torch.get_num_threads()),
                        "--json", str(out), "--quiet"],
                       check=True)
        return json.loads(out.read_text())["results"][0]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--configs", nargs="+", default=None)
    parser.add_argument("--iters", type=int, default=None, help="timed iterations (default 5 CPU, 20 CUDA)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed iterations (default 1 CPU, 5 CUDA)")
    parser.add_argument("--batch", type=int, default=0, help="images per iteration (default: the config's)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", default=None)
    parser.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    configs = args.configs or (TINY + FULL if device == "cuda" else TINY)
    iters = args.iters or (20 if device == "cuda" else 5)
    warmup = args.warmup if args.warmup is not None else (5 if device == "cuda" else 1)
    env = dict(torch=torch.__version__, threads=torch.get_num_threads(), machine=platform.machine(),
               gpu=torch.cuda.get_device_name(0) if device == "cuda" else None)
    if not args.quiet:
        print(f"[bench-stage2] {env}")
    results = []
    for path in configs:
        try:
            r = bench_config(path, device, iters, warmup, args.batch) if len(configs) == 1 else \
                _bench_in_subprocess(path, device, iters, warmup, args.batch)
        except Exception as err:  # one failing config does not hide the others' numbers
            print(f"{Path(path).stem:40s} FAILED: {err}", flush=True)
            continue
        mem = f"peak {r['peak_mem_mib']:.0f} MiB (CUDA)" if device == "cuda" else \
            f"peak RSS {r['peak_rss_mib']:.0f} MiB (+{r['rss_growth_mib']:.0f} during run)"
        if not args.quiet:
            print(f"{Path(path).stem:40s} batch {r['batch_size']} x {r['crop'][0]}x{r['crop'][1]}: "
                  f"{r['s_per_iter']:.3f} s/iter (min {r['s_per_iter_min']:.3f}), {mem}, {r['params_m']:.1f} M params",
                  flush=True)
        results.append(r)
    if args.json:
        Path(args.json).write_text(json.dumps(dict(env=env, results=results), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
