"""Stage 1, step 2: fine-tune SAM's mask decoder on cached embeddings with the logic loss.

    python -m stage1_pseudolabel.pipeline.train --config configs/stage1/voc_box_scribble.yaml \\
        --data ... --split train --work-dir work_dirs/stage1 --model-type vit_h --checkpoint ... [--resume]
    torchrun --nproc-per-node 4 -m stage1_pseudolabel.pipeline.train <same flags>   # DDP

Only mask-decoder parameters train (AdamW); the image and prompt encoders are frozen and never run
here (their outputs are cached / cheap). For each image the decoder predicts all objects in one call,
the object logits become a class distribution over ``[background, classes of the image]``
(:mod:`stage1_pseudolabel.sam.class_distribution`), and the compiled constraints of the image (built
once, in the 256x256 low-res frame) give the loss. A step averages the loss of ``batch_size`` images;
their objects go through the decoder together, ``decoder_batch_images`` images per call
(:meth:`~stage1_pseudolabel.pipeline.predict.DecoderRunner.batch_object_logits`; 1: one call per image).

Outputs in ``<work_dir>``: ``decoder/last.pth`` (full state for ``--resume``, every
``checkpoint_every`` steps and at each epoch end), ``decoder/step_NNNNNN.pth`` (decoder weights),
``decoder/final.pth`` (what ``generate`` loads), ``train_log.jsonl`` (one line per step: loss, lr,
each constraint type's truth, and ``fg_in_boxes``: the fraction of low-res cells inside the objects'
boxes that the decoder labels foreground (argmax not background), next to ``fg_in_boxes_zero_shot``,
the same fraction for the untrained decoder on the same images; a fine-tuned decoder that paints its
boxes as background shows up there at once), ``config.yaml``.

The untrained decoder is kept (a frozen copy) to compute, once per image, its class distribution in
the low-res frame: the zero-shot anchor constraint reads it, and the log compares against it. Those
zero-shot passes are batched too, always over the same images (:func:`zero_shot_groups`: the
decoder-call chunks of the first epoch's steps), so that an image's anchor does not depend on when it
was first needed (a resumed run computes the same anchors as an uninterrupted one).

Determinism: the image order of epoch ``e`` is a permutation seeded by ``seed + e``, so a resumed run
continues exactly where the checkpoint was taken and ends with the same weights as an uninterrupted
one (on the same device and world size).
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import os
import sys
import time
from collections import OrderedDict
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist
from tqdm import tqdm

from logic.constraints import CompiledConstraints
from stage1_pseudolabel.pipeline.cache import EmbeddingCache, atomic_torch_save
from stage1_pseudolabel.pipeline.config import Stage1Config, add_common_arguments, config_from_args
from stage1_pseudolabel.pipeline.logs import JsonLinesLog
from stage1_pseudolabel.pipeline.model import freeze_for_decoder_training, load_model, resolve_device, save_decoder
from stage1_pseudolabel.pipeline.predict import DecoderRunner, lowres_log_distribution, lowres_object_distribution
from stage1_pseudolabel.pipeline.prepare import (
    PreparedImage,
    compile_constraints,
    constraint_config,
    has_objects,
    lowres_box_cover,
    open_dataset,
    prepare_image,
)
from wsss.core.cli import run_cli, setup_logging, world
from wsss.core.weak_labels.errors import WeakLabelError

log = logging.getLogger(__name__)


# -- data ------------------------------------------------------------------------------------------
def foreground_fraction(log_probs: torch.Tensor, inside: torch.Tensor) -> float:
    """Fraction of the cells ``inside`` (``bool [L, L]``) whose most probable channel is not background
    (``log_probs [1 + K, L, L]``); NaN without such cells."""
    n = int(inside.sum())
    if n == 0:
        return float("nan")
    fg = log_probs.detach().argmax(dim=0) != 0
    return float((fg & inside.to(fg.device)).sum()) / n


@dataclass
class TrainItem:
    prepared: PreparedImage
    constraints: CompiledConstraints
    embedding: torch.Tensor  # float32 [1, 256, h, w], on the training device
    box_cover: torch.Tensor  # bool [L, L] cells inside the objects' boxes
    fg_zero_shot: float  # foreground fraction of box_cover under the untrained decoder


ZeroShot = Callable[[List[PreparedImage], List[torch.Tensor]], List[torch.Tensor]]


class TrainImages:
    """The training images: prepared objects, prompts and compiled constraints, built once per image.

    Compiled constraints are kept in memory (an LRU of ``max_cached`` images) and superpixels on disk,
    so later epochs only read the embedding. ``zero_shot`` maps images (prepared, embedding) to the
    untrained decoder's ``[1 + K, L, L]`` log distributions, in one call for the images of a group:
    ``groups[i]`` (default: image ``i`` alone) are the indices whose zero-shot pass is made together
    with image ``i``'s, whenever it is needed (:meth:`warm`).
    """

    def __init__(self, cfg: Stage1Config, ids: List[str], *, dataset, cache: EmbeddingCache, encoder_size: int,
                 lowres: int, device: torch.device, max_cached: int = 4096, zero_shot: Optional[ZeroShot] = None,
                 groups: Optional[Dict[int, Tuple[int, ...]]] = None) -> None:
        self.cfg, self.ids, self.dataset, self.cache, self.device = cfg, ids, dataset, cache, device
        self.encoder_size, self.lowres = encoder_size, lowres
        self.max_cached = max_cached
        self.zero_shot = zero_shot
        self.groups = groups or {}
        self._index = {image_id: i for i, image_id in enumerate(ids)}
        self._memo: "OrderedDict[str, Tuple[PreparedImage, CompiledConstraints, torch.Tensor, float]]" = OrderedDict()

    def __len__(self) -> int:
        return len(self.ids)

    def _embedding(self, image_id: str, prepared: PreparedImage) -> torch.Tensor:
        return self.cache.load(image_id, height=prepared.frame.height, width=prepared.frame.width,
                               device=self.device, dtype=torch.float32)

    def warm(self, indices: Sequence[int]) -> None:
        """Prepare the images of ``indices`` that are not in memory, with the other images of their
        zero-shot groups (one zero-shot decoder call per group)."""
        done = set()
        for i in indices:
            if self.ids[i] in self._memo or i in done:
                continue
            group = self.groups.get(i, (i,))
            done.update(group)
            members = []  # (image_id, ann or None when in memory, prepared)
            for g in group:
                image_id = self.ids[g]
                if image_id in self._memo:
                    members.append((image_id, None, self._memo[image_id][0]))
                    continue
                ann = self.dataset.load(image_id)
                members.append((image_id, ann, prepare_image(ann, self.cfg, encoder_size=self.encoder_size,
                                                              lowres=self.lowres, padded=self.cache.key.padded)))
            zero_shots: Dict[str, torch.Tensor] = {}
            with_objects = [m for m in members if m[2].objects.num_objects]
            if self.zero_shot is not None and with_objects:
                with torch.no_grad():
                    dists = self.zero_shot([p for _, _, p in with_objects],
                                           [self._embedding(image_id, p) for image_id, _, p in with_objects])
                zero_shots = {image_id: d for (image_id, _, _), d in zip(with_objects, dists)}
            for image_id, ann, prepared in members:
                if ann is not None:
                    self._remember(image_id, ann, prepared, zero_shots.get(image_id))

    def _remember(self, image_id: str, ann, prepared: PreparedImage, zero_shot: Optional[torch.Tensor]) -> None:
        cover = lowres_box_cover(prepared)
        fg_zero_shot = float("nan") if zero_shot is None else foreground_fraction(zero_shot, cover)
        constraints = compile_constraints(ann, prepared, self.cfg, zero_shot_log_probs=zero_shot).to(self.device)
        self._memo[image_id] = (prepared, constraints, cover.to(self.device), fg_zero_shot)
        if len(self._memo) > self.max_cached:
            self._memo.popitem(last=False)

    def prepared(self, image_id: str) -> Tuple[PreparedImage, CompiledConstraints, torch.Tensor, float]:
        if image_id not in self._memo:
            self.warm([self._index[image_id]])
        self._memo.move_to_end(image_id)
        return self._memo[image_id]

    def __getitem__(self, index: int) -> TrainItem:
        image_id = self.ids[index]
        prepared, constraints, cover, fg_zero_shot = self.prepared(image_id)
        return TrainItem(prepared, constraints, self._embedding(image_id, prepared), cover, fg_zero_shot)


def epoch_order(n: int, *, seed: int, epoch: int, rank: int, world_size: int) -> List[int]:
    """This rank's image indices for ``epoch``: a seeded permutation, padded (wrapping) to a multiple of
    ``world_size`` so every rank takes the same number of steps, then every ``world_size``-th index."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(n, generator=g).tolist()
    total = math.ceil(n / world_size) * world_size
    order = (order * math.ceil(total / max(n, 1)))[:total]
    return order[rank::world_size]


def zero_shot_groups(n: int, *, seed: int, world_size: int, batch_size: int,
                     per_call: int) -> Dict[int, Tuple[int, ...]]:
    """``{image index: the images whose zero-shot pass is one decoder call with it}``: the chunks of
    ``per_call`` images of every rank's first-epoch steps (what the first epoch needs, in the calls it
    makes), the first chunk an image appears in. Fixed by the run's settings, so an image's
    zero-shot logits do not depend on the run's history (resume, LRU eviction)."""
    groups: Dict[int, Tuple[int, ...]] = {}
    for rank in range(world_size):
        order = epoch_order(n, seed=seed, epoch=0, rank=rank, world_size=world_size)
        for s in range(0, len(order), batch_size):
            batch = order[s : s + batch_size]
            for c in range(0, len(batch), per_call):
                chunk = tuple(dict.fromkeys(batch[c : c + per_call]))
                for i in chunk:
                    groups.setdefault(i, chunk)
    return groups


# -- checkpoints -----------------------------------------------------------------------------------
def _train_state(*, decoder, optimizer, step: int, epoch: int, batch_in_epoch: int, key_meta: Dict,
                 run: Dict[str, int]) -> Dict:
    return {
        "mask_decoder": {k: v.detach().cpu() for k, v in decoder.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "progress": {"step": step, "epoch": epoch, "batch_in_epoch": batch_in_epoch, "run": run},
        "meta": key_meta,
    }


def _lr_at(step: int, cfg: Stage1Config) -> float:
    if cfg.warmup_steps > 0 and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    return cfg.lr


# -- distributed -----------------------------------------------------------------------------------
def init_distributed(device: torch.device) -> Tuple[int, int]:
    """Initialise the process group under torchrun (``WORLD_SIZE > 1``): nccl on GPU, gloo on CPU."""
    rank, size = world()
    if size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
        log.info("DDP: rank %d of %d (%s)", rank, size, backend)
    return rank, size


# -- training --------------------------------------------------------------------------------------
def run_train(cfg: Stage1Config, *, resume: bool = False, progress: bool = True) -> Dict[str, object]:
    """Fine-tune the decoder as configured; returns a summary (losses, steps, paths)."""
    device = resolve_device(cfg.device)
    rank, world_size = init_distributed(device)
    is_main = rank == 0
    torch.manual_seed(cfg.seed)
    model, key = load_model(cfg, device=torch.device("cpu"))
    model.image_encoder = None  # never used here (train reads cached embeddings): never moved to the GPU
    model.to(device)
    cache = EmbeddingCache(cfg.cache_dir, key=key)
    encoder_size, lowres = key.encoder_size, key.lowres_size
    params = freeze_for_decoder_training(model, train_heads=cfg.train_heads, lora_alpha=cfg.lora_alpha,
                                         lora_rank=cfg.lora_rank if cfg.train_params == "lora" else 0)

    dataset = open_dataset(cfg)
    ids, skipped = [], {"no_objects": 0, "no_embedding": 0, "problems": 0}
    for image_id in dataset.ids:
        try:
            ann = dataset.load(image_id)
        except WeakLabelError as exc:
            log.warning("skipping %s: %s", image_id, exc)
            skipped["problems"] += 1
            continue
        if not has_objects(ann, cfg):
            skipped["no_objects"] += 1
        elif not cache.has(image_id):
            skipped["no_embedding"] += 1
        else:
            ids.append(image_id)
    if skipped["no_embedding"]:
        raise FileNotFoundError(
            f"{skipped['no_embedding']} training image(s) have no cached embedding in {cache.root}: run the embed step "
            "(stage1-embed) first, with the same --model-type / --checkpoint"
        )
    if not ids:
        raise ValueError(f"no training image with weak labels in {cfg.data} (split {cfg.split})")
    if is_main:
        log.info("train: %d image(s) (%d without objects skipped, %d unreadable), %d trainable decoder parameters",
                 len(ids), skipped["no_objects"], skipped["problems"], sum(p.numel() for p in params))
    decoder = model.mask_decoder
    # The untrained decoder, frozen: its class distribution per image (computed once, when the image
    # is first prepared) feeds the zero-shot anchor and the fg_in_boxes_zero_shot log. On --resume the
    # copy is taken before the checkpoint is loaded, so it is still the untrained decoder.
    frozen = copy.deepcopy(decoder).eval()
    for p in frozen.parameters():
        p.requires_grad_(False)
    frozen_runner = DecoderRunner(model, device=device, multimask_output=cfg.multimask_output, precision=cfg.precision)

    def zero_shot(prepared: List[PreparedImage], embeddings: List[torch.Tensor]) -> List[torch.Tensor]:
        logits = frozen_runner.batch_object_logits(prepared, embeddings, mask_decoder=frozen)
        return [lowres_log_distribution(p, x).detach() for p, x in zip(prepared, logits)]

    per_call = cfg.decoder_batch_images
    images = TrainImages(cfg, ids, dataset=dataset, cache=cache, encoder_size=encoder_size, lowres=lowres,
                         device=device, zero_shot=zero_shot,
                         groups=zero_shot_groups(len(ids), seed=cfg.seed, world_size=world_size,
                                                 batch_size=cfg.batch_size, per_call=per_call))

    if world_size > 1:
        decoder_call = torch.nn.parallel.DistributedDataParallel(
            decoder, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=cfg.train_heads == "all",
        )
    else:
        decoder_call = decoder
    runner = DecoderRunner(model, device=device, multimask_output=cfg.multimask_output, precision=cfg.precision)
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    cfg.decoder_dir.mkdir(parents=True, exist_ok=True)
    last_path = cfg.decoder_dir / "last.pth"
    step, start_epoch, start_batch = 0, 0, 0
    train_log = JsonLinesLog(cfg.train_log)
    if resume and last_path.is_file():
        state = torch.load(last_path, map_location="cpu", weights_only=True)
        decoder.load_state_dict(state["mask_decoder"], strict=True)
        optimizer.load_state_dict(state["optimizer"])
        expected_run = {"batch_size": cfg.batch_size, "seed": cfg.seed, "world_size": world_size, "images": len(ids)}
        saved_run = state["progress"].get("run", expected_run)
        if saved_run != expected_run:
            raise ValueError(f"cannot --resume from {last_path}: it was made with {saved_run}, this run has "
                             f"{expected_run} (the image order would differ); use another --work-dir or drop --resume")
        step = int(state["progress"]["step"])
        start_epoch = int(state["progress"]["epoch"])
        start_batch = int(state["progress"]["batch_in_epoch"])
        if is_main:
            train_log.truncate_after(step)
            log.info("resumed from %s at step %d (epoch %d, batch %d)", last_path, step, start_epoch, start_batch)
    elif resume:
        log.warning("--resume: no checkpoint at %s, starting from the pretrained decoder", last_path)
    elif is_main and cfg.train_log.exists():
        cfg.train_log.unlink()  # a fresh run starts a fresh log
    if is_main:
        cfg.save(cfg.work_path / "config.yaml")

    steps_per_epoch = math.ceil(len(epoch_order(len(ids), seed=cfg.seed, epoch=0, rank=rank, world_size=world_size)) / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)
    key_meta = key.as_dict()
    run_id = {"batch_size": cfg.batch_size, "seed": cfg.seed, "world_size": world_size, "images": len(ids)}
    bar = tqdm(total=total_steps, initial=min(step, total_steps), desc="train", unit="step",
               disable=not (progress and is_main), dynamic_ncols=True)
    losses: List[float] = []
    step_times: List[float] = []
    logic_times: List[float] = []

    def checkpoint(epoch: int, batch_in_epoch: int, *, with_step_copy: bool) -> None:
        if not is_main:
            return
        atomic_torch_save(_train_state(decoder=decoder, optimizer=optimizer, step=step, epoch=epoch,
                                       batch_in_epoch=batch_in_epoch, key_meta=key_meta, run=run_id), last_path)
        if with_step_copy:
            save_decoder(cfg.decoder_dir / f"step_{step:06d}.pth", model=model, key=key, extra={"step": step})

    # The active constraints of the run, the same list on every rank (the log's columns).
    constraint_names = constraint_config(cfg).active
    done = step >= total_steps
    for epoch in range(start_epoch, cfg.epochs):
        if done:
            break
        order = epoch_order(len(ids), seed=cfg.seed, epoch=epoch, rank=rank, world_size=world_size)
        batches = [order[i : i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
        first = start_batch if epoch == start_epoch else 0
        for b in range(first, len(batches)):
            t_step = time.perf_counter()
            logic_seconds = 0.0
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(step, cfg)
            optimizer.zero_grad(set_to_none=True)
            batch = batches[b]
            sums = torch.zeros(1 + 2 * len(constraint_names), dtype=torch.float64)
            fg_sums = torch.zeros(3, dtype=torch.float64)  # fg fraction in boxes: fine-tuned, zero-shot, images
            images.warm(batch)  # new images: their zero-shot passes, batched
            items = [images[index] for index in batch]
            # The images' objects through the decoder, per_call images a call (1: object_logits per
            # image, as before, which batch_object_logits is for one image); one backward per call,
            # DDP's all-reduce with the last.
            chunks = [range(c, min(c + per_call, len(batch))) for c in range(0, len(batch), per_call)]
            for c, members in enumerate(chunks):
                sync = nullcontext() if (world_size == 1 or c == len(chunks) - 1) else decoder_call.no_sync()
                with sync:
                    logits_list = runner.batch_object_logits([items[j].prepared for j in members],
                                                             [items[j].embedding for j in members],
                                                             mask_decoder=decoder_call)
                    total = None
                    for j, logits in zip(members, logits_list):
                        item = items[j]
                        constraints = item.constraints
                        t_logic = time.perf_counter()
                        log_probs = lowres_log_distribution(item.prepared, logits)
                        objects = lowres_object_distribution(logits) if constraints.needs_objects else None
                        loss, truths = constraints.loss_and_truths(log_probs, objects)
                        fg = foreground_fraction(log_probs, item.box_cover)
                        if not (math.isnan(fg) or math.isnan(item.fg_zero_shot)):
                            fg_sums += torch.tensor([fg, item.fg_zero_shot, 1.0], dtype=torch.float64)
                        if not truths:
                            loss = logits.sum() * 0.0  # keeps every rank's backward in step
                        logic_seconds += time.perf_counter() - t_logic  # forward only
                        part = loss / len(batch)
                        total = part if total is None else total + part
                        sums[0] += float(loss.detach())
                        groundings = constraints.num_groundings
                        for k, name in enumerate(constraint_names):
                            if name in truths:
                                sums[1 + 2 * k] += float(truths[name].detach()) / groundings[name]
                                sums[2 + 2 * k] += 1
                    total.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            optimizer.step()
            step += 1
            step_times.append(time.perf_counter() - t_step)
            logic_times.append(logic_seconds)
            counts = torch.tensor([len(batch)], dtype=torch.float64)
            if world_size > 1:
                packed = torch.cat([sums, fg_sums, counts]).to(device)
                dist.all_reduce(packed)
                sums, fg_sums, counts = packed[:-4].cpu(), packed[-4:-1].cpu(), packed[-1:].cpu()
            mean_loss = float(sums[0] / counts[0])
            losses.append(mean_loss)
            if is_main:
                record = {"step": step, "epoch": epoch, "loss": mean_loss, "lr": _lr_at(step - 1, cfg),
                          "images": int(counts[0]), "log_truth": {}, "truth": {}}
                for k, name in enumerate(constraint_names):
                    if sums[2 + 2 * k] > 0:
                        mean_log = float(sums[1 + 2 * k] / sums[2 + 2 * k])
                        record["log_truth"][name] = mean_log
                        record["truth"][name] = math.exp(mean_log)
                if fg_sums[2] > 0:
                    record["fg_in_boxes"] = float(fg_sums[0] / fg_sums[2])
                    record["fg_in_boxes_zero_shot"] = float(fg_sums[1] / fg_sums[2])
                train_log.write(record)
                bar.set_postfix(loss=f"{mean_loss:.4f}", epoch=epoch)
            bar.update(1)
            done = step >= total_steps
            at_end_of_epoch = b == len(batches) - 1
            if step % cfg.checkpoint_every == 0 or at_end_of_epoch or done:
                next_epoch, next_batch = (epoch + 1, 0) if at_end_of_epoch else (epoch, b + 1)
                checkpoint(next_epoch, next_batch, with_step_copy=step % cfg.checkpoint_every == 0)
            if done:
                break
    bar.close()
    final_path = cfg.decoder_path()
    if is_main:
        save_decoder(final_path, model=model, key=key, extra={"step": step, "epochs": cfg.epochs})
        log.info("decoder after %d step(s) -> %s", step, final_path)
    if world_size > 1:
        dist.barrier()
    return {
        "step": "train", "steps": step, "images": len(ids), "losses": losses, "final": str(final_path),
        "step_seconds": step_times, "logic_forward_seconds": logic_times, "batch_size": cfg.batch_size, "skipped": skipped,
    }


def describe_constraints(cfg: Stage1Config) -> str:
    """The registered constraint types and the config's weights, as a table (``--list-constraints``)."""
    from logic.constraints import constraint_types

    config = constraint_config(cfg)
    lines = [f"{'constraint':18s} {'weight':>6s}  {'needs':24s} {'options':34s} formula"]
    for name, t in constraint_types().items():
        opts = ", ".join(f"{k}={v}" for k, v in config.options[name].items())
        lines.append(f"{name:18s} {config.weights[name]:6g}  {', '.join(sorted(t.requires)) or '-':24s} {opts or '-':34s} {t.doc}")
    for name, formula in config.formulas.items():
        lines.append(f"{name:18s} {config.weights[name]:6g}  {', '.join(sorted(formula.requires)) or '-':24s} {'-':34s} "
                     f"{formula.text}")
    return "\n".join(lines) + f"\nactive (weight > 0): {', '.join(config.active)}"


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="wsss-train", description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--max-steps", type=int, dest="max_steps")
    parser.add_argument("--batch-size", type=int, dest="batch_size", help="images per optimizer step (per process)")
    parser.add_argument("--lr", type=float)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--checkpoint-every", type=int, dest="checkpoint_every")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--list-constraints", action="store_true",
                        help="list the registered constraint types (with the config's custom_imports) and the "
                             "config's active constraints, then exit")
    args = parser.parse_args(argv)
    setup_logging()

    def body() -> int:
        extra = {k: getattr(args, k) for k in ("epochs", "max_steps", "batch_size", "lr", "seed", "checkpoint_every")}
        cfg = config_from_args(args, extra)
        if args.list_constraints:
            print(describe_constraints(cfg))
            return 0
        try:
            summary = run_train(cfg, resume=args.resume, progress=not args.no_progress)
        finally:
            if dist.is_initialized():
                dist.destroy_process_group()
        if int(os.environ.get("RANK", 0)) == 0:
            losses = summary["losses"]
            if losses:
                print(f"trained {summary['steps']} step(s) on {summary['images']} image(s): loss {losses[0]:.4f} -> "
                      f"{losses[-1]:.4f}; decoder -> {summary['final']}")
            else:
                print(f"nothing to do: already at step {summary['steps']}; decoder -> {summary['final']}")
        return 0

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
