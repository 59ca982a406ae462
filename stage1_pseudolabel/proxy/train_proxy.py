"""Pretrain the proxy SAM (a stand-in for pretrained SAM) on synthetic *source* scenes, on CPU.

    python -m stage1_pseudolabel.proxy.train_proxy --out data/checkpoints/proxy_sam.pth   (make proxy-sam)

Like SAM's own training, the whole model (image encoder, prompt encoder, mask decoder) is trained
supervised on per-object masks from prompts: for each image, every visible object is prompted with
its box, its box plus positive / negative points sampled from the scribbles (stage 1's own
:func:`~stage1_pseudolabel.sam.prompts.build_prompts`, so the prompt distribution is the one stage 1
uses), or points only (then with SAM's three multimask outputs and the loss of the best one). Loss:
binary cross-entropy + dice on the low-res mask logits against the exact instance mask in the
low-res frame, plus the MSE of the IoU head, as SAM does. Scenes come from
:func:`wsss.core.synthetic.render_scene` with ``domain="source"``, rendered on the fly
(seeded); the target domain is never seen.

Output: a plain state dict (loadable with ``weights_only=True`` and ``strict=True`` through
``build_sam("proxy", checkpoint=...)``) and ``<out>.json`` with the config, seed and a training
summary (final losses, mean object IoU on held-out source and target scenes). Cached: if the file
exists and its sidecar's config matches, nothing is done (``--force`` retrains).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from wsss.core.atomic import atomic_write
from wsss.core.frames import SamFrame
from stage1_pseudolabel.sam.proxy import DEFAULT_CONFIG, build_proxy_sam
from stage1_pseudolabel.sam.encoder import preprocess, resize_for_encoder
from stage1_pseudolabel.sam.prompts import build_prompts, image_objects
from wsss.core.synthetic.scenes import DEFAULT_CLASSES, render_scene, scene_rng
from wsss.core.weak_labels.annotation import ImageAnnotation

FORMAT_VERSION = 1
STAND_IN = "proxy SAM (a small stand-in for pretrained SAM, trained by this project on synthetic source scenes)"


@dataclass
class ProxyTrainConfig:
    """Every knob of proxy pretraining (all recorded in the sidecar; a change retrains)."""

    seed: int = 0
    steps: int = 800
    batch_images: int = 4
    lr: float = 6e-4
    min_lr_fraction: float = 0.05
    warmup_steps: int = 50
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    size_range: Tuple[int, int] = (160, 240)
    classes: Tuple[int, ...] = tuple(DEFAULT_CLASSES)
    prompt_mix: Dict[str, float] = field(default_factory=lambda: {"both": 0.5, "box": 0.3, "points": 0.2})
    num_positive: Tuple[int, int] = (1, 3)
    num_negative: Tuple[int, int] = (0, 2)
    box_jitter: float = 0.03  #: box edges moved by up to this fraction of the box side (annotator noise)
    dice_weight: float = 1.0
    iou_weight: float = 1.0
    eval_scenes: int = 24  #: held-out scenes per domain for the summary
    model: Dict[str, object] = field(default_factory=lambda: dict(DEFAULT_CONFIG))

    def fingerprint(self) -> str:
        blob = json.dumps(_jsonable(dataclasses.asdict(self)), sort_keys=True)
        return hashlib.sha256(f"v{FORMAT_VERSION}:{blob}".encode()).hexdigest()[:16]


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


# -- data ----------------------------------------------------------------------------------------
@dataclass
class Sample:
    """One scene ready for the model: resized image, prompts, per-object low-res targets."""

    image: torch.Tensor  # uint8 [3, h', w'] (longest side = encoder size)
    boxes: Optional[torch.Tensor]
    coords: Optional[torch.Tensor]
    labels: Optional[torch.Tensor]
    targets: torch.Tensor  # float [N, L, L] in [0, 1]
    valid: torch.Tensor  # bool [L, L]
    multimask: bool


def lowres_targets(instances: np.ndarray, ids: Sequence[int], frame: SamFrame) -> np.ndarray:
    """Soft per-object masks ``float32 [N, L, L]`` in the low-res frame (area resampling, 0 on padding)."""
    import cv2

    vh, vw = frame.valid_lowres_hw
    rh, rw = frame.resized_hw
    s = frame.stride
    out = np.zeros((len(ids), frame.lowres, frame.lowres), np.float32)
    for k, i in enumerate(ids):
        m = (instances == i).astype(np.float32)
        m = cv2.resize(m, (rw, rh), interpolation=cv2.INTER_AREA)
        pad = np.zeros((vh * s, vw * s), np.float32)
        hh, ww = min(rh, vh * s), min(rw, vw * s)
        pad[:hh, :ww] = m[:hh, :ww]
        out[k, :vh, :vw] = cv2.resize(pad, (vw, vh), interpolation=cv2.INTER_AREA)
    return out


def make_sample(cfg: ProxyTrainConfig, *, domain: str, split: str, index: int, mode: Optional[str] = None) -> Optional[Sample]:
    """Render scene ``index`` and turn it into a :class:`Sample` (None if it has no object)."""
    size_rng = scene_rng(seed=cfg.seed + 7919, domain=domain, split=split, index=index)
    h, w = (int(v) for v in size_rng.integers(cfg.size_range[0], cfg.size_range[1] + 1, size=2))
    scene = render_scene(seed=cfg.seed, domain=domain, split=split, index=index, height=h, width=w, classes=cfg.classes)
    if not scene.objects:
        return None
    rng = np.random.default_rng([cfg.seed, 17, index, 0 if split == "train" else 1])
    boxes = np.array([o.box for o in scene.objects], np.float32)
    if cfg.box_jitter > 0 and split == "train":
        side = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]] * 2, 1)
        boxes = boxes + rng.uniform(-cfg.box_jitter, cfg.box_jitter, boxes.shape).astype(np.float32) * side
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
    ann = ImageAnnotation(
        image_id=f"proxy_{domain}_{split}_{index}", image_path=Path("."), height=h, width=w, boxes=boxes,
        box_classes=np.array([o.class_index for o in scene.objects], np.int64), scribbles=scene.scribbles,
    )
    image_size = int(cfg.model["image_size"])
    emb = image_size // int(cfg.model["encoder_stride"])
    frame = SamFrame(height=h, width=w, encoder_size=image_size, lowres=4 * emb)
    objects = image_objects(ann)
    if mode is None:
        names = list(cfg.prompt_mix)
        p = np.array([cfg.prompt_mix[n] for n in names], np.float64)
        mode = str(rng.choice(names, p=p / p.sum()))
    prompts = build_prompts(
        ann, objects, frame, mode=mode, seed=int(rng.integers(1 << 30)),
        num_positive=int(rng.integers(cfg.num_positive[0], cfg.num_positive[1] + 1)),
        num_negative=int(rng.integers(cfg.num_negative[0], cfg.num_negative[1] + 1)),
    )
    b, c, l = prompts.to_tensors()
    targets = lowres_targets(scene.instances, [o.instance_id for o in scene.objects], frame)
    return Sample(image=resize_for_encoder(scene.image, encoder_size=frame.encoder_size), boxes=b, coords=c, labels=l,
                  targets=torch.from_numpy(targets), valid=frame.valid_lowres(), multimask=(mode == "points"))


# -- loss ----------------------------------------------------------------------------------------
def mask_losses(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-mask BCE and dice over valid cells: logits/target ``[N, M, L, L]`` -> two ``[N, M]``."""
    v = valid.to(logits.dtype)
    denom = v.sum((-2, -1)).clamp(min=1)
    bce = (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * v).sum((-2, -1)) / denom
    p = torch.sigmoid(logits) * v
    t = target * v
    dice = 1 - (2 * (p * t).sum((-2, -1)) + 1) / (p.sum((-2, -1)) + t.sum((-2, -1)) + 1)
    return bce, dice


def hard_iou(logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    pred = (logits > 0) & valid
    gt = (target > 0.5) & valid
    inter = (pred & gt).sum((-2, -1)).float()
    union = (pred | gt).sum((-2, -1)).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def decode_batch(model, embeddings: torch.Tensor, samples: Sequence[Sample], *, multimask: bool):
    """All objects of all ``samples`` through the mask decoder in one call (training speed-up).

    Same computation as ``MaskDecoder.predict_masks`` (the same modules, called in the same order),
    except that each object takes its own image's embedding instead of one image's embedding being
    repeated. Point prompts are padded to a common count with SAM's "not a point" label (-1).
    """
    pe = model.prompt_encoder
    dec = model.mask_decoder
    counts = [len(s.targets) for s in samples]
    img_index = torch.repeat_interleave(torch.arange(len(samples)), torch.tensor(counts))
    boxes = None if samples[0].boxes is None else torch.cat([s.boxes for s in samples])
    points = None
    if any(s.coords is not None for s in samples):
        p = max(0 if s.coords is None else s.coords.shape[1] for s in samples)
        coords = torch.zeros(sum(counts), p, 2)
        labels = torch.full((sum(counts), p), -1.0)
        row = 0
        for s, n in zip(samples, counts):
            if s.coords is not None:
                coords[row : row + n, : s.coords.shape[1]] = s.coords
                labels[row : row + n, : s.labels.shape[1]] = s.labels
            row += n
        points = (coords, labels)
    sparse, dense = pe(points=points, boxes=boxes, masks=None)
    output_tokens = torch.cat([dec.iou_token.weight, dec.mask_tokens.weight], dim=0)
    tokens = torch.cat((output_tokens.unsqueeze(0).expand(sparse.size(0), -1, -1), sparse), dim=1)
    src = embeddings[img_index] + dense
    pos_src = pe.get_dense_pe().expand(src.shape[0], -1, -1, -1)
    b, c, h, w = src.shape
    hs, src = dec.transformer(src, pos_src, tokens)
    iou_token_out = hs[:, 0, :]
    mask_tokens_out = hs[:, 1 : (1 + dec.num_mask_tokens), :]
    up = dec.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))
    hyper_in = torch.stack([dec.output_hypernetworks_mlps[i](mask_tokens_out[:, i, :]) for i in range(dec.num_mask_tokens)], dim=1)
    b, c, h, w = up.shape
    masks = (hyper_in @ up.view(b, c, h * w)).view(b, -1, h, w)
    iou_pred = dec.iou_prediction_head(iou_token_out)
    sl = slice(1, None) if multimask else slice(0, 1)
    return masks[:, sl], iou_pred[:, sl]


def batch_loss(model, embeddings: torch.Tensor, samples: Sequence[Sample], cfg: ProxyTrainConfig) -> Tuple[torch.Tensor, Dict[str, float]]:
    """SAM-style loss of every object of the batch: BCE + dice of the (best) mask, MSE of the IoU head."""
    multimask = samples[0].multimask
    logits, iou_pred = decode_batch(model, embeddings, samples, multimask=multimask)  # [N, M, L, L], [N, M]
    target = torch.cat([s.targets for s in samples])[:, None].expand_as(logits)
    valid = torch.cat([s.valid.expand(len(s.targets), -1, -1) for s in samples])[:, None]
    bce, dice = mask_losses(logits, target, valid)
    per_mask = bce + cfg.dice_weight * dice
    if multimask:  # SAM: only the best of the three outputs is trained
        per_mask = per_mask.gather(1, per_mask.argmin(dim=1, keepdim=True))
    with torch.no_grad():
        iou = hard_iou(logits, target, valid)
    iou_loss = F.mse_loss(iou_pred, iou)
    loss = per_mask.mean() + cfg.iou_weight * iou_loss
    return loss, {"bce": float(bce.detach().mean()), "dice": float(dice.detach().mean()), "iou_mse": float(iou_loss.detach())}


@torch.no_grad()
def mean_object_iou(model, cfg: ProxyTrainConfig, *, domain: str, count: int, mode: str = "both") -> float:
    """Mean IoU (0..100) of single-output masks on ``count`` held-out ``val`` scenes of ``domain``."""
    model.eval()
    ious: List[float] = []
    for index in range(count):
        s = make_sample(cfg, domain=domain, split="val", index=index, mode=mode)
        if s is None:
            continue
        emb = model.image_encoder(preprocess(model, [s.image]))
        logits, _ = decode_batch(model, emb, [s], multimask=False)
        ious += hard_iou(logits[:, 0], s.targets, s.valid).tolist()
    return 100.0 * float(np.mean(ious)) if ious else float("nan")


# -- training -------------------------------------------------------------------------------------
def train(cfg: ProxyTrainConfig, *, log_every: int = 50, progress: bool = True) -> Tuple[Dict[str, torch.Tensor], dict]:
    """Pretrain the proxy SAM; returns its state dict and a summary."""
    torch.manual_seed(cfg.seed)
    model = build_proxy_sam(**cfg.model)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def lr_at(step: int) -> float:
        if step < cfg.warmup_steps:
            return cfg.lr * (step + 1) / cfg.warmup_steps
        t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return cfg.lr * (cfg.min_lr_fraction + (1 - cfg.min_lr_fraction) * 0.5 * (1 + math.cos(math.pi * t)))

    from tqdm import tqdm

    start = time.perf_counter()
    mode_rng = np.random.default_rng([cfg.seed, 99])
    index = 0
    history = []
    ema = None
    bar = tqdm(range(cfg.steps), desc="proxy SAM pretraining (stand-in for SAM)", unit="step", disable=not progress,
               dynamic_ncols=True)
    for step in bar:
        samples: List[Sample] = []
        names = list(cfg.prompt_mix)
        weights = np.array([cfg.prompt_mix[n] for n in names], np.float64)
        mode = str(mode_rng.choice(names, p=weights / weights.sum()))  # one prompt mode per step
        while len(samples) < cfg.batch_images:
            s = make_sample(cfg, domain="source", split="train", index=index, mode=mode)
            index += 1
            if s is not None:
                samples.append(s)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        emb = model.image_encoder(preprocess(model, [s.image for s in samples]))
        total, info = batch_loss(model, emb, samples, cfg)
        parts = [info]
        opt.zero_grad(set_to_none=True)
        total.backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        val = float(total.detach())
        ema = val if ema is None else 0.95 * ema + 0.05 * val
        bar.set_postfix(loss=f"{ema:.3f}")
        if (step + 1) % log_every == 0 or step == cfg.steps - 1:
            rec = {"step": step + 1, "loss": round(ema, 4), "seconds": round(time.perf_counter() - start, 1)}
            rec.update({k: round(float(np.mean([p[k] for p in parts])), 4) for k in parts[0]})
            history.append(rec)
            if not progress:
                print(json.dumps(rec), flush=True)
    seconds = time.perf_counter() - start
    model.eval()
    summary = {
        "steps": cfg.steps,
        "scenes_seen": index,
        "train_seconds": round(seconds, 1),
        "final_loss_ema": round(float(ema), 4) if ema is not None else None,
        "history": history,
        "val_object_iou_source": round(mean_object_iou(model, cfg, domain="source", count=cfg.eval_scenes), 2),
        "val_object_iou_target": round(mean_object_iou(model, cfg, domain="target", count=cfg.eval_scenes), 2),
    }
    return model.state_dict(), summary


def sidecar_path(out: Path) -> Path:
    return Path(str(out) + ".json")


def is_cached(out: Path, cfg: ProxyTrainConfig) -> bool:
    """True if ``out`` exists and its sidecar records the same config fingerprint."""
    side = sidecar_path(out)
    if not (out.is_file() and side.is_file()):
        return False
    try:
        meta = json.loads(side.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return meta.get("fingerprint") == cfg.fingerprint()


def save(out: Path, state: Dict[str, torch.Tensor], cfg: ProxyTrainConfig, summary: dict) -> None:
    """Write the state dict, then the sidecar that marks it up to date, each atomically."""
    with atomic_write(out) as handle:
        torch.save({k: v.detach().cpu().contiguous() for k, v in state.items()}, handle)
    meta = {
        "model_type": "proxy",
        "description": STAND_IN + ". It is NOT pretrained SAM; pass SAM_CHECKPOINT for official weights.",
        "builder": "stage1_pseudolabel.sam.proxy:build_proxy_sam",
        "build_kwargs": _jsonable(cfg.model),
        "fingerprint": cfg.fingerprint(),
        "train_config": _jsonable(dataclasses.asdict(cfg)),
        "seed": cfg.seed,
        "torch": torch.__version__,
        "summary": summary,
    }
    with atomic_write(sidecar_path(out)) as handle:
        handle.write((json.dumps(meta, indent=2) + "\n").encode())


def ensure_proxy_checkpoint(out: Path, cfg: Optional[ProxyTrainConfig] = None, *, force: bool = False,
                            progress: bool = True) -> Path:
    """Train and save the proxy SAM unless ``out`` is already there with the same config; returns ``out``."""
    cfg = cfg or ProxyTrainConfig()
    out = Path(out)
    if not force and is_cached(out, cfg):
        print(f"{STAND_IN}: {out} is up to date (config {cfg.fingerprint()}); nothing to do")
        return out
    print(f"training the {STAND_IN} -> {out} ({cfg.steps} steps of {cfg.batch_images} images, seed {cfg.seed})", flush=True)
    state, summary = train(cfg, progress=progress)
    save(out, state, cfg, summary)
    print(f"wrote {out} and {sidecar_path(out)} in {summary['train_seconds']:.0f} s; mean object IoU on held-out "
          f"scenes: source {summary['val_object_iou_source']:.1f}, target {summary['val_object_iou_target']:.1f}")
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wsss-proxy-sam", description="Pretrain the proxy SAM (a stand-in for pretrained SAM) on synthetic source scenes.")
    p.add_argument("--out", default="data/checkpoints/proxy_sam.pth")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--batch-images", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--threads", type=int, default=int(os.environ.get("PROXY_THREADS", "2")))
    p.add_argument("--force", action="store_true", help="retrain even if a matching checkpoint exists")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    cfg = ProxyTrainConfig()
    for name in ("steps", "batch_images", "seed"):
        if getattr(args, name) is not None:
            setattr(cfg, name, getattr(args, name))
    ensure_proxy_checkpoint(Path(args.out), cfg, force=args.force, progress=not args.no_progress)
    return 0


if __name__ == "__main__":
    sys.exit(main())
