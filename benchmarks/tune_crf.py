"""Choose stage 1's dense-CRF parameters on labelled images the evaluation does not use.

    python benchmarks/tune_crf.py                      # proxy SAM, 24 synthetic *source* scenes
    python benchmarks/tune_crf.py --data ../shared/data/voc2012 --split val --model-type vit_h \\
        --checkpoint data/checkpoints/sam_vit_h_4b8939.pth --limit 50

Decodes every image once with the (zero-shot, or ``--decoder`` fine-tuned) model, then scores a
grid of :class:`wsss.core.crf.CRFParams` by pseudo-mask mIoU against the ground truth, and
prints the table best first with the config line to paste (``crf: {...}``). The default set is the
proxy SAM's own *source* domain (rendered here, seeded), so the demo's CRF parameters are never
chosen on the target scenes it reports on.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from wsss.core.crf import CRFParams, require_crf  # noqa: E402
from wsss.core.evaluation.metrics import confusion_matrix, iou_per_class  # noqa: E402
from wsss.core.masks import read_mask  # noqa: E402
from stage1_pseudolabel.pipeline.cache import EmbeddingCache  # noqa: E402
from stage1_pseudolabel.pipeline.config import build_config  # noqa: E402
from stage1_pseudolabel.pipeline.embed import run_embed  # noqa: E402
from stage1_pseudolabel.pipeline.model import load_decoder, load_model  # noqa: E402
from stage1_pseudolabel.pipeline.predict import DecoderRunner, mask_from_distribution, pixel_log_distribution  # noqa: E402
from stage1_pseudolabel.pipeline.prepare import ImageInputs, open_dataset, prepare_image  # noqa: E402
from wsss.core.weak_labels.images import read_image  # noqa: E402

GRID = dict(bi_weight=(6.0, 10.0, 15.0), bi_xy_std=(20.0, 40.0, 67.0), bi_rgb_std=(8.0, 13.0, 20.0))


def score_image(image: np.ndarray, log_probs: torch.Tensor, classes: torch.Tensor, gt: np.ndarray,
                settings: Sequence[Optional[CRFParams]]) -> np.ndarray:
    """``int64 [len(settings), 21, 22]`` confusion of the mask ``generate`` writes with each setting
    (None: no CRF)."""
    out = np.zeros((len(settings), 21, 22), np.int64)
    for k, params in enumerate(settings):
        mask = mask_from_distribution(log_probs, classes, crf=params, image=image)
        out[k] = confusion_matrix(mask, gt, num_labels=21)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=None, help="VOC-layout folder (default: synthetic source scenes rendered here)")
    p.add_argument("--split", default="train")
    p.add_argument("--config", default="configs/stage1/demo_proxy.yaml")
    p.add_argument("--model-type", default=None)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--decoder", default=None, help="fine-tuned decoder checkpoint (default: zero-shot)")
    p.add_argument("--scenes", type=int, default=24, help="synthetic source scenes (without --data)")
    p.add_argument("--limit", type=int, default=None, help="first N images of --split")
    p.add_argument("--work-dir", default=None, help="embedding cache (default: a temporary folder)")
    p.add_argument("--threads", type=int, default=2, help="torch threads of the decoder")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes running the CRFs")
    p.add_argument("--top", type=int, default=10)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    require_crf()

    with tempfile.TemporaryDirectory(prefix="tune_crf_") as tmp:
        work = Path(args.work_dir or tmp)
        data = Path(args.data) if args.data else work / "source_scenes"
        if args.data is None and not (data / "synthetic.json").is_file():
            from wsss.core.synthetic import write_dataset

            write_dataset(data, domain="source", num_train=args.scenes, num_val=0, seed=1)
        overrides = {"data.root": str(data), "data.split": args.split, "work_dir": str(work / "stage1"), "device": "cpu",
                     "data.max_images": args.limit, "model.type": args.model_type, "model.checkpoint": args.checkpoint}
        cfg = build_config(config_file=args.config, overrides=overrides)
        cfg.crf = None  # the decoder's own probabilities are what the grid refines
        run_embed(cfg, progress=True)
        model, key = load_model(cfg.model, device=torch.device("cpu"))
        if args.decoder:
            load_decoder(Path(args.decoder), model=model, key=key)
        model.eval()
        runner = DecoderRunner(model, device=torch.device("cpu"))
        cache = EmbeddingCache(cfg.cache_dir, key=key)
        dataset = open_dataset(cfg)
        inputs = ImageInputs.from_config(cfg)
        settings = [None] + [CRFParams(bi_weight=w, bi_xy_std=s, bi_rgb_std=c)
                             for w, s, c in itertools.product(*GRID.values())]
        confusion = np.zeros((len(settings), 21, 22), np.int64)
        t0 = time.perf_counter()
        # the decoder runs here; the CRFs (single-threaded C++) run in a pool of processes, one image each
        with ProcessPoolExecutor(max_workers=max(1, args.workers)) as pool:
            pending = []
            for image_id in tqdm(dataset.ids, desc=f"{len(settings) - 1} CRF settings", unit="img"):
                ann = dataset.load(image_id)
                prepared = prepare_image(ann, inputs=inputs, encoder_size=key.encoder_size, lowres=key.lowres_size,
                                         padded=key.padded)
                if prepared.objects.num_objects == 0:
                    continue
                with torch.inference_mode():
                    logits = runner.object_logits(prepared, cache.load(image_id, height=ann.height, width=ann.width))
                    log_probs = pixel_log_distribution(prepared, logits)
                pending.append(pool.submit(score_image, read_image(ann.image_path), log_probs, prepared.classes,
                                           read_mask(data / "SegmentationClass" / f"{image_id}.png"), settings))
                while len(pending) > 2 * args.workers:
                    confusion += pending.pop(0).result()
            for fut in pending:
                confusion += fut.result()
        scores = [100 * float(np.nanmean(iou_per_class(c))) for c in confusion]
        print(f"\n{len(dataset.ids)} image(s) of {data} ({args.split}), {'fine-tuned' if args.decoder else 'zero-shot'} "
              f"{cfg.model.type}; {len(settings) - 1} CRF settings in {time.perf_counter() - t0:.0f} s")
        print(f"no CRF: {scores[0]:.2f} mIoU")
        order = sorted(range(1, len(settings)), key=lambda k: -scores[k])
        print(f"{'mIoU':>6}  bi_weight  bi_xy_std  bi_rgb_std")
        for k in order[: args.top]:
            s = settings[k]
            print(f"{scores[k]:6.2f}  {s.bi_weight:9g}  {s.bi_xy_std:9g}  {s.bi_rgb_std:10g}")
        best = settings[order[0]]
        print(f"\nbest: crf: {{bi_weight: {best.bi_weight:g}, bi_xy_std: {best.bi_xy_std:g}, bi_rgb_std: {best.bi_rgb_std:g}}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
