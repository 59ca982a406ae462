"""Stage-1 speed benchmark with random-weight SAM models (not a test; prints a table).

    .venv/bin/python benchmarks/bench_stage1.py [--images 2] [--models vit_b,vit_t,sam2.1_hiera_tiny,hq_vit_b]
                                                [--precisions fp32,bf16] [--reduced] [--devices cpu,cuda]
                                                [--data ../shared/data/voc2012] [--json out.json]

For each model (backend), precision and device it measures, on the same images:

* encoder s/img: the bare image-encoder forward on a preprocessed 1024x1024 input (mean of a pass
  before and a pass after the embed step, so that load drift on a shared machine cancels);
* embed s/img: the embed step (read, resize, normalise, encode, fp16 atomic write) and its ratio to
  the bare encoder (target <= 1.10);
* train s/img: one decoder training step per image on cached embeddings (median of the second
  epoch), and the share of it spent in the logic loss: the class distribution + constraints forward
  and backward down to the logits, against the decoder forward + backward on the same prompts;
  the step against that bare decoder + logic (target <= 1.3: what the loop adds), the step's
  phases (fetch of the prepared image and its embedding, forward + loss + backward, clip + AdamW,
  the read of the step's sums from the device) as shares of it, and the
  preparation made before the first step (s/img, and as a share of preparation + training);
* generate s/img: the generate step from cached embeddings (annotation, prompts, decoder, class
  distribution in pixel space, PNG) and its ratio to the bare prompt-encoder + decoder forward for
  the same prompts (target <= 1.5);
* cross-image decoder batching (``decoder_batch_images``): train steps of ``--decoder-batch`` images
  (median step after the first, whose zero-shot passes are extra) and generate, with one decoder call
  per image (``decoder_batch_images=1``) and with all of them in one call, as images per second;
* cache MB/img (SAM 2.1 and HQ-SAM cache more than the embedding) and peak memory (process RSS
  high-water mark; CUDA max allocated);
* bf16 vs fp32: the share of pseudo-mask pixels (``generate``) on which a bf16 run agrees with the
  fp32 run of the same model.

``--reduced`` runs each backend at the reduced random-weight size of the tests
(configs/stage1/tiny_random*.yaml) instead of its official size: a smoke run of every column in
seconds. Throughputs are also printed as images per second.

``vit_t`` here is a plain ViT of MobileSAM's size (width 192, 12 blocks, 3 heads), not TinyViT:
``mobile_sam`` is not installable from PyPI. Images: synthetic scenes of VOC-like size (300-500 px),
or the first ``--images`` ids of a VOC-layout ``--data`` folder. CPU time is scarce on small machines:
the defaults are 2 images; the vit_b encoder alone takes tens of seconds per image on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import shutil
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from stage1_pseudolabel.pipeline.cache import EmbeddingCache  # noqa: E402
from stage1_pseudolabel.pipeline.config import build_config  # noqa: E402
from stage1_pseudolabel.pipeline.embed import run_embed  # noqa: E402
from stage1_pseudolabel.sam.precision import autocast  # noqa: E402
from wsss.core.masks import mask_agreement  # noqa: E402
from stage1_pseudolabel.pipeline.generate import run_generate  # noqa: E402
from stage1_pseudolabel.pipeline.model import freeze_for_decoder_training, load_model  # noqa: E402
from stage1_pseudolabel.pipeline.predict import DecoderRunner, lowres_log_distribution  # noqa: E402
from stage1_pseudolabel.pipeline.prepare import (  # noqa: E402
    ImageInputs, compile_constraints, open_dataset, prepare_image,
)
from stage1_pseudolabel.pipeline.train import run_train  # noqa: E402
from stage1_pseudolabel.sam.backends.variants import VIT_T_SIZED  # noqa: E402
from wsss.core.weak_labels.images import read_image  # noqa: E402

#: name -> (model_type, model_kwargs) at the official size (random weights)
MODELS = {
    "vit_b": ("vit_b", {}),
    "vit_t": ("vit_b", {"encoder_embed_dim": VIT_T_SIZED.encoder_embed_dim, "encoder_depth": VIT_T_SIZED.encoder_depth,
                        "encoder_num_heads": VIT_T_SIZED.encoder_num_heads}),
    "sam2.1_hiera_tiny": ("sam2.1_hiera_tiny", {}),
    "sam2.1_hiera_large": ("sam2.1_hiera_large", {}),
    "hq_vit_b": ("hq_vit_b", {}),
}
#: the tests' reduced sizes (--reduced)
REDUCED = {"sam1": "tiny_random.yaml", "sam2.1": "tiny_random_sam2.yaml", "hq-sam": "tiny_random_hq.yaml"}


def model_spec(name: str, *, reduced: bool):
    """``(model_type, model_kwargs)`` of a benchmark model name."""
    model_type, kwargs = MODELS[name]
    if reduced:
        from stage1_pseudolabel.pipeline.config import load_yaml_config
        from stage1_pseudolabel.sam.backends.variants import variant

        kwargs = load_yaml_config(REPO / "configs/stage1" / REDUCED[variant(model_type).backend])["model_kwargs"]
        kwargs = {k: v for k, v in kwargs.items() if k != "_delete_"}
    return model_type, kwargs


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _gpu_mb(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")


def _reset_gpu(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def bench_decoder_batching(cfg, *, batch: int, steps: int, repeats: int, out: Dict[str, float],
                           rounds: int = 3) -> None:
    """Cross-image batching, as images per second into ``out``: the decoder alone (forward + backward
    of a trivial loss, and forward under inference mode) over the first ``batch`` images, one call per
    image against one batched call, timed alternately ``repeats`` times (medians: load drift on a
    shared machine hits both); then train steps of ``batch`` images and generate, with
    ``decoder_batch_images`` 1 and ``batch`` (the embeddings of ``cfg``'s cache copied), alternately,
    medians of ``rounds`` runs."""
    device = torch.device(cfg.device)
    model, key = load_model(cfg.model, device=device)
    model.image_encoder = None
    params = freeze_for_decoder_training(model)
    runner = DecoderRunner(model, device=device, precision=cfg.model.precision)
    cache = EmbeddingCache(cfg.cache_dir, key=key)
    dataset = open_dataset(cfg)
    inputs = ImageInputs.from_config(cfg)
    prepared, feats = [], []
    for image_id in dataset.ids[:batch]:
        ann = dataset.load(image_id)
        prepared.append(prepare_image(ann, inputs=inputs, encoder_size=key.encoder_size, lowres=key.lowres_size,
                                      padded=key.padded))
        feats.append(cache.load(image_id, device=device, dtype=torch.float32))

    def per_image():
        return [runner.object_logits(p, f) for p, f in zip(prepared, feats)]

    def batched():
        return runner.batch_object_logits(prepared, feats)

    times: Dict[str, List[float]] = {}
    for r in range(repeats + 1):  # the first round is a warm-up
        for tag, fn in (("per_image", per_image), ("batched", batched)):
            for p in params:
                p.grad = None
            _sync(device)
            t = time.perf_counter()
            sum(x.float().mean() for x in fn()).backward()
            _sync(device)
            t_train = time.perf_counter() - t
            with torch.inference_mode():
                t = time.perf_counter()
                fn()
                _sync(device)
                t_fwd = time.perf_counter() - t
            if r:
                times.setdefault(f"decoder_fwd_bwd_{tag}", []).append(t_train)
                times.setdefault(f"decoder_fwd_{tag}", []).append(t_fwd)
    for k, v in times.items():
        out[f"{k}_img_per_s"] = len(prepared) / statistics.median(v)
    del model, runner
    rates: Dict[str, List[float]] = {}
    for r in range(rounds):  # alternately, so that load drift hits both
        for per_call, tag in ((1, "per_image"), (batch, "batched")):
            work = Path(cfg.work_dir) / f"decoder_batch_{tag}_{r}"
            c = cfg.updated(work_dir=str(work), model={"decoder_batch_images": per_call},
                            train={"batch_size": batch, "epochs": steps + 1, "max_steps": None, "checkpoint_every": 10_000})
            shutil.copytree(cfg.cache_dir, c.cache_dir, dirs_exist_ok=True)
            summary = run_train(c, progress=False)
            later = summary["step_seconds"][1:] or summary["step_seconds"]
            rates.setdefault(f"train_{tag}", []).append(batch / statistics.median(later))
            gen = run_generate(c, zero_shot=False, progress=False)
            rates.setdefault(f"generate_{tag}", []).append(gen["written"] / max(gen["seconds"], 1e-9))
            rates.setdefault(f"generate_decode_{tag}", []).append(1.0 / max(gen["decode_seconds_per_image"], 1e-9))
    for k, v in rates.items():
        out[f"{k}_img_per_s"] = statistics.median(v)
    out["decoder_batch_images"] = batch


def bench_one(model_name: str, device_name: str, *, data: Path, images: int, repeats: int, work: Path,
              precision: str = "fp32", reduced: bool = False, decoder_batch: int = 0) -> Dict[str, float]:
    device = torch.device(device_name)
    model_type, kwargs = model_spec(model_name, reduced=reduced)
    cfg = build_config(
        overrides={"data.root": str(data), "work_dir": str(work), "model.type": model_type, "model.checkpoint": "none",
                   "device": device_name, "data.split": "train"},
        cfg_options=[f"model.kwargs={json.dumps(kwargs)}", f"data.max_images={images}", "train.epochs=2", "train.batch_size=1",
              "train.checkpoint_every=1000", "train.lr=1e-4", "train.warmup_steps=0", f"model.precision={precision}"],
    )
    out: Dict[str, float] = {}
    model, key = load_model(cfg.model, device=device)
    dataset = open_dataset(cfg)
    ids = dataset.ids[:images]
    resized = [model.prepare_image(read_image(dataset.load(i).image_path)) for i in ids]

    # -- encoder: warm-up, bare forwards, the embed step, bare forwards again (drift on shared machines) --
    def bare_pass() -> List[float]:
        times = []
        for img in resized:
            _sync(device)
            t = time.perf_counter()
            with autocast(precision, device):
                model.encode([img], device=device)
            _sync(device)
            times.append(time.perf_counter() - t)
        return times

    with autocast(precision, device):
        model.encode(resized[:1], device=device)
    times = bare_pass()
    _reset_gpu(device)
    embed = run_embed(cfg, progress=False)
    out["embed_s_per_img"] = embed["seconds"] / max(embed["embedded"], 1)
    times += bare_pass()
    out["encoder_s_per_img"] = statistics.mean(times)
    out["embed_ratio"] = out["embed_s_per_img"] / out["encoder_s_per_img"]
    cache = EmbeddingCache(cfg.cache_dir, key=key)
    out["cache_bytes_per_img"] = statistics.mean(cache.nbytes(i) for i in ids)
    out["peak_gpu_mb_embed"] = _gpu_mb(device)
    out["peak_rss_mb_after_embed"] = _rss_mb()
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()

    # -- train: the real loop, then the logic share from a paired measurement -------------------------
    _reset_gpu(device)
    summary = run_train(cfg, progress=False)
    second_epoch = summary["step_seconds"][len(ids):] or summary["step_seconds"]
    out["train_s_per_img"] = statistics.median(second_epoch) / summary["batch_size"]
    for phase, seconds in summary["phase_seconds"].items():  # where a step's time goes, host side
        out[f"step_{phase}_share"] = statistics.median(seconds[len(ids):] or seconds) / statistics.median(second_epoch)
    out["prepare_s_per_img"] = summary["prepare_seconds"] / summary["images"]
    train_seconds = sum(summary["step_seconds"])
    out["prepare_share_of_train"] = summary["prepare_seconds"] / (summary["prepare_seconds"] + train_seconds)
    out["peak_gpu_mb_train"] = _gpu_mb(device)

    model, key = load_model(cfg.model, device=device)
    model.image_encoder = None
    params = freeze_for_decoder_training(model)
    runner = DecoderRunner(model, device=device, precision=precision)
    lowres = key.lowres_size
    inputs = ImageInputs.from_config(cfg)
    logic, plain, decoder_fwd, objects = [], [], [], []
    for image_id in ids:
        ann = dataset.load(image_id)
        prepared = prepare_image(ann, inputs=inputs, encoder_size=key.encoder_size, lowres=lowres, padded=key.padded)
        constraints = compile_constraints(ann, prepared, inputs=inputs).to(device)
        emb = cache.load(image_id, device=device)
        objects.append(prepared.objects.num_objects)
        for r in range(repeats + 1):  # the first round is a warm-up
            # Decoder forward + backward with a trivial loss: the step without the logic.
            for p in params:
                p.grad = None
            _sync(device)
            t = time.perf_counter()
            logits = runner.object_logits(prepared, emb)
            logits.float().mean().backward()
            _sync(device)
            if r:
                plain.append(time.perf_counter() - t)
            # The logic alone, forward + backward down to the logits (a leaf here).
            leaf = logits.detach().requires_grad_(True)
            _sync(device)
            t = time.perf_counter()
            loss, _ = constraints.loss_and_truths(lowres_log_distribution(prepared, leaf))
            loss.backward()
            _sync(device)
            if r:
                logic.append(time.perf_counter() - t)
            with torch.inference_mode():
                _sync(device)
                t = time.perf_counter()
                runner.object_logits(prepared, emb)
                _sync(device)
                if r:
                    decoder_fwd.append(time.perf_counter() - t)
    out["objects_per_img"] = statistics.mean(objects)
    t_logic, t_plain = statistics.median(logic), statistics.median(plain)
    out["logic_s_per_img"] = t_logic
    out["logic_share_of_train_step"] = t_logic / (t_logic + t_plain)
    out["decoder_fwd_bwd_s_per_img"] = t_plain
    out["decoder_fwd_s_per_img"] = statistics.median(decoder_fwd)
    out["train_step_vs_bare"] = out["train_s_per_img"] / (t_logic + t_plain)

    # -- generate from the cache -----------------------------------------------------------------------
    _reset_gpu(device)
    gen = run_generate(cfg, zero_shot=False, progress=False)
    out["generate_s_per_img"] = gen["seconds"] / max(gen["written"], 1)
    out["generate_ratio"] = out["generate_s_per_img"] / out["decoder_fwd_s_per_img"]
    out["peak_gpu_mb_generate"] = _gpu_mb(device)
    out["peak_rss_mb"] = _rss_mb()
    out["cache_mb_per_img"] = out["cache_bytes_per_img"] / 2**20
    for k in ("encoder", "embed", "train", "generate"):
        out[f"{k}_img_per_s"] = 1.0 / out[f"{k}_s_per_img"]
    bench_decoder_batching(cfg, batch=min(decoder_batch or images, images), steps=repeats, repeats=3 * repeats,
                           out=out)
    out["masks"] = str(cfg.output_path(zero_shot=False))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2, help="images per measurement (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of the decoder measurements")
    parser.add_argument("--models", default="vit_b,vit_t,sam2.1_hiera_tiny,hq_vit_b",
                        help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--precisions", default="fp32,bf16", help="fp32,bf16,fp16 (fp16 is slow on a CPU)")
    parser.add_argument("--reduced", action="store_true", help="the tests' reduced model sizes (smoke run)")
    parser.add_argument("--devices", default="cpu,cuda", help="cuda is skipped where unavailable")
    parser.add_argument("--data", type=Path, help="VOC-layout folder (default: synthetic scenes of VOC-like size)")
    parser.add_argument("--decoder-batch", type=int, default=0, dest="decoder_batch",
                        help="images per train step / decoder call for the cross-image batching rows "
                             "(default: all --images)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.ERROR)
    results: List[Dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="bench_stage1_") as tmp:
        data = args.data
        if data is None:
            from wsss.core.synthetic import write_dataset

            data = write_dataset(Path(tmp) / "data", domain="target", num_train=args.images, num_val=1, seed=0,
                                 size_range=(300, 500))
        for device in args.devices.split(","):
            if device.startswith("cuda") and not torch.cuda.is_available():
                print(f"[{device}] not available: skipped")
                continue
            for name in args.models.split(","):
                fp32 = None
                for precision in args.precisions.split(","):
                    print(f"[{name} {precision} on {device}] running ({args.images} image(s), torch threads "
                          f"{torch.get_num_threads()})...", flush=True)
                    r = bench_one(name, device, data=data, images=args.images, repeats=args.repeats,
                                  work=Path(tmp) / f"{name}_{device}_{precision}", precision=precision,
                                  reduced=args.reduced, decoder_batch=args.decoder_batch)
                    if precision == "fp32":
                        fp32 = r["masks"]
                    r["agreement_vs_fp32"] = mask_agreement(r["masks"], fp32) if fp32 else float("nan")
                    results.append({"model": name, "device": device, "precision": precision, **r})
    keys = [
        ("encoder_img_per_s", "encoder img/s", "{:.3f}"),
        ("embed_img_per_s", "embed img/s", "{:.3f}"),
        ("train_img_per_s", "train step img/s", "{:.3f}"),
        ("generate_img_per_s", "generate img/s", "{:.3f}"),
        ("decoder_batch_images", "decoder batch: images per call", "{:d}"),
        ("decoder_fwd_bwd_per_image_img_per_s", "  dec. fwd+bwd img/s, 1 img/call", "{:.2f}"),
        ("decoder_fwd_bwd_batched_img_per_s", "  dec. fwd+bwd img/s, batched", "{:.2f}"),
        ("decoder_fwd_per_image_img_per_s", "  dec. fwd img/s, 1 img/call", "{:.2f}"),
        ("decoder_fwd_batched_img_per_s", "  dec. fwd img/s, batched", "{:.2f}"),
        ("train_per_image_img_per_s", "  train step img/s, 1 img/call", "{:.3f}"),
        ("train_batched_img_per_s", "  train step img/s, batched", "{:.3f}"),
        ("generate_per_image_img_per_s", "  generate img/s, 1 img/call", "{:.3f}"),
        ("generate_batched_img_per_s", "  generate img/s, batched", "{:.3f}"),
        ("generate_decode_per_image_img_per_s", "  gen. decode img/s, 1 img/call", "{:.2f}"),
        ("generate_decode_batched_img_per_s", "  gen. decode img/s, batched", "{:.2f}"),
        ("encoder_s_per_img", "encoder s/img", "{:.3f}"),
        ("embed_s_per_img", "embed s/img", "{:.3f}"),
        ("embed_ratio", "embed / encoder (<=1.10)", "{:.3f}"),
        ("train_s_per_img", "train step s/img", "{:.3f}"),
        ("logic_s_per_img", "logic fwd+bwd s/img", "{:.4f}"),
        ("decoder_fwd_bwd_s_per_img", "decoder fwd+bwd s/img", "{:.4f}"),
        ("logic_share_of_train_step", "logic share of train step", "{:.1%}"),
        ("train_step_vs_bare", "step/(dec.fwd+bwd+logic) <=1.3", "{:.2f}"),
        ("step_fetch_share", "  step: fetch share", "{:.1%}"),
        ("step_forward_backward_share", "  step: fwd+loss+bwd share", "{:.1%}"),
        ("step_optimizer_share", "  step: clip+AdamW share", "{:.1%}"),
        ("step_read_share", "  step: read (waits on device)", "{:.1%}"),
        ("prepare_s_per_img", "prepare s/img (before step 1)", "{:.4f}"),
        ("prepare_share_of_train", "prepare share of prep + train", "{:.1%}"),
        ("decoder_fwd_s_per_img", "bare decoder fwd s/img", "{:.4f}"),
        ("generate_s_per_img", "generate s/img", "{:.4f}"),
        ("generate_ratio", "generate / decoder fwd (<=1.5)", "{:.3f}"),
        ("objects_per_img", "objects per image", "{:.1f}"),
        ("cache_bytes_per_img", "cache bytes/img", "{:.0f}"),
        ("cache_mb_per_img", "cache MB/img", "{:.2f}"),
        ("agreement_vs_fp32", "pixel agreement with fp32", "{:.2%}"),
        ("peak_rss_mb", "peak RSS MB (process)", "{:.0f}"),
        ("peak_gpu_mb_embed", "peak GPU MB embed", "{:.0f}"),
        ("peak_gpu_mb_train", "peak GPU MB train", "{:.0f}"),
        ("peak_gpu_mb_generate", "peak GPU MB generate", "{:.0f}"),
    ]
    header = f"{'':34s}" + "".join(f"{r['model'] + '/' + r['precision'] + '/' + r['device']:>30s}" for r in results)
    print("\n" + header)
    for k, label, fmt in keys:
        print(f"{label:34s}" + "".join(f"{fmt.format(r[k]):>30s}" for r in results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
