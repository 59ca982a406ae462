"""Stage 1, step 2: fine-tune SAM's mask decoder on cached embeddings with the logic loss.

The image and prompt encoders are frozen; every image is prepared before the first step
(:mod:`stage1_pseudolabel.pipeline.train_images`) and a step reads the device back once. Outputs,
resuming and determinism: docs/method.md, "Train and generate, in detail".
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import os
import sys
import time
from contextlib import nullcontext
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist
from tqdm import tqdm

from stage1_pseudolabel.pipeline.cache import EmbeddingCache, atomic_torch_save
from stage1_pseudolabel.pipeline.config import Stage1Config, add_common_arguments, config_from_args
from stage1_pseudolabel.pipeline.logs import JsonLinesLog
from stage1_pseudolabel.pipeline.model import freeze_for_decoder_training, load_model, resolve_device, save_decoder
from stage1_pseudolabel.pipeline.predict import DecoderRunner, lowres_log_distribution, lowres_object_distribution
from stage1_pseudolabel.pipeline.config_sections import TrainSection
from stage1_pseudolabel.pipeline.prepare import PreparedImage, has_objects, open_dataset
from stage1_pseudolabel.pipeline.io import default_workers
from stage1_pseudolabel.pipeline.train_images import TrainImages, TrainItem, foreground_cells, prepare_superpixels
from wsss.core.cli import run_cli, setup_logging, world
from wsss.core.weak_labels.errors import WeakLabelError

log = logging.getLogger(__name__)


# -- data ------------------------------------------------------------------------------------------
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
def _train_state(*, decoder, optimizer, scaler, step: int, epoch: int, batch_in_epoch: int, key_meta: Dict,
                 run: Dict[str, int]) -> Dict:
    return {
        "mask_decoder": {k: v.detach().cpu() for k, v in decoder.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),  # empty unless precision is fp16
        "progress": {"step": step, "epoch": epoch, "batch_in_epoch": batch_in_epoch, "run": run},
        "meta": key_meta,
    }


def _lr_at(step: int, train: TrainSection) -> float:
    if train.warmup_steps > 0 and step < train.warmup_steps:
        return train.lr * (step + 1) / train.warmup_steps
    return train.lr


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


# -- one step --------------------------------------------------------------------------------------
def _step_losses(items: List[TrainItem], *, runner: DecoderRunner, decoder, names: Sequence[str], per_call: int,
                 ddp: bool, scaler: torch.amp.GradScaler) -> torch.Tensor:
    """Forward and backward of one optimizer step's images, ``per_call`` images a decoder call (one
    backward per call; DDP's all-reduce with the last), the loss scaled by ``scaler`` (fp16; a
    disabled scaler leaves it as it is).

    Returns the step's sums, a float64 vector on the device, read once per step: ``[loss, (sum of
    mean log-truths, images) per constraint of names, fg_in_boxes, images with a box fraction,
    images, fg_in_boxes_zero_shot]``. Nothing here waits for the device.
    """
    device = items[0].box_cover.device
    sums = torch.zeros(1 + 2 * len(names) + 4, dtype=torch.float64, device=device)
    sums[-2] = len(items)
    chunks = [range(c, min(c + per_call, len(items))) for c in range(0, len(items), per_call)]
    for c, members in enumerate(chunks):
        sync = decoder.no_sync() if ddp and c < len(chunks) - 1 else nullcontext()
        with sync:
            logits_list = runner.batch_object_logits([items[j].prepared for j in members],
                                                     [items[j].embedding for j in members], mask_decoder=decoder)
            total = None
            for j, logits in zip(members, logits_list):
                item = items[j]
                log_probs = lowres_log_distribution(item.prepared, logits)
                objects = lowres_object_distribution(logits) if item.constraints.needs_objects else None
                loss, truths = item.constraints.loss_and_truths(log_probs, objects)
                if not truths:
                    loss = logits.sum() * 0.0  # keeps every rank's backward in step
                part = loss / len(items)
                total = part if total is None else total + part
                sums[0] += loss.detach()
                groundings = item.constraints.num_groundings
                for k, name in enumerate(names):
                    if name in truths:
                        sums[1 + 2 * k] += truths[name].detach().double() / groundings[name]
                        sums[2 + 2 * k] += 1
                if item.box_cells and not math.isnan(item.fg_zero_shot):
                    sums[-4] += foreground_cells(log_probs, item.box_cover).double() / item.box_cells
                    sums[-3] += 1
                    sums[-1] += item.fg_zero_shot
            scaler.scale(total).backward()
    return sums


def _log_record(totals: List[float], *, names: Sequence[str], step: int, epoch: int, lr: float) -> Dict:
    """The training log's line of a step from its (all-reduced) sums (layout of :func:`_step_losses`)."""
    fg, with_fg, images, fg_zero_shot = totals[-4:]
    record = {"step": step, "epoch": epoch, "loss": totals[0] / images, "lr": lr, "images": int(images),
              "log_truth": {}, "truth": {}}
    for k, name in enumerate(names):
        if totals[2 + 2 * k] > 0:
            mean_log = totals[1 + 2 * k] / totals[2 + 2 * k]
            record["log_truth"][name] = mean_log
            record["truth"][name] = math.exp(mean_log)
    if with_fg > 0:
        record["fg_in_boxes"] = fg / with_fg
        record["fg_in_boxes_zero_shot"] = fg_zero_shot / with_fg
    return record


# -- training --------------------------------------------------------------------------------------
def make_optimizer(params: Sequence[torch.nn.Parameter], train: TrainSection) -> torch.optim.Optimizer:
    """AdamW, fused (one kernel over every parameter) where the device supports it: on SAM's decoder
    (4 M parameters, 120 tensors) a CPU step of AdamW + clipping takes 39 ms per tensor, 12 ms fused."""
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype in (torch.float32, torch.float16, torch.bfloat16)
                for p in params)
    return torch.optim.AdamW(params, lr=train.lr, weight_decay=train.weight_decay, fused=fused or None)


def training_ids(cfg: Stage1Config, dataset, cache: EmbeddingCache) -> Tuple[List[str], Dict[str, int]]:
    """The images of ``dataset`` that train (readable, with objects, embedded) and the counts of those
    skipped; raises when an image has no cached embedding or none trains."""
    ids, skipped = [], {"no_objects": 0, "no_embedding": 0, "problems": 0}
    for image_id in dataset.ids:
        try:
            ann = dataset.load(image_id)
        except WeakLabelError as exc:
            log.warning("skipping %s: %s", image_id, exc)
            skipped["problems"] += 1
            continue
        if not has_objects(ann, prompts=cfg.prompts, weak_labels=cfg.data.weak_labels):
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
        raise ValueError(f"no training image with weak labels in {cfg.data.root or cfg.data.dataset or 'VOC 2012'} "
                         f"(split {cfg.data.split})")
    return ids, skipped


def prepared_images(cfg: Stage1Config, ids: List[str], *, model, key, dataset, cache: EmbeddingCache,
                    device: torch.device, rank: int, world_size: int, progress: bool) -> TrainImages:
    """Every training image prepared (worker processes) and its zero-shot distribution computed by a
    frozen copy of the untrained decoder, before the first step; embeddings preloaded as configured."""
    frozen = copy.deepcopy(model.mask_decoder).eval()
    for p in frozen.parameters():
        p.requires_grad_(False)
    runner = DecoderRunner(model, device=device, multimask_output=cfg.prompts.multimask_output,
                           precision=training_precision(cfg))

    def zero_shot(prepared: List[PreparedImage], embeddings: List[torch.Tensor]) -> List[torch.Tensor]:
        logits = runner.batch_object_logits(prepared, embeddings, mask_decoder=frozen)
        return [lowres_log_distribution(p, x).detach() for p, x in zip(prepared, logits)]

    images = TrainImages(cfg, ids, dataset=dataset, cache=cache, encoder_size=key.encoder_size,
                         lowres=key.lowres_size, device=device, zero_shot=zero_shot,
                         groups=zero_shot_groups(len(ids), seed=cfg.seed, world_size=world_size,
                                                 batch_size=cfg.train.batch_size,
                                                 per_call=cfg.model.decoder_batch_images))
    workers = default_workers() if cfg.train.prepare_workers is None else cfg.train.prepare_workers
    if world_size > 1:  # every rank needs every image: each segments its share (SLIC, cached on disk) first
        prepare_superpixels(cfg, ids[rank::world_size], encoder_size=key.encoder_size, lowres=key.lowres_size,
                            padded=key.padded, workers=workers, progress=progress and rank == 0)
        dist.barrier()
    images.prepare(workers=workers, progress=progress and rank == 0)
    images.preload(cfg.train.preload_embeddings)
    if rank == 0:
        log.info("prepared %d image(s) in %.1f s (%d worker process(es))", len(ids), images.prepare_seconds, workers)
    return images


def training_precision(cfg: Stage1Config) -> str:
    """The decoder's autocast while it trains: ``train.precision``, else ``model.precision``."""
    return cfg.train.precision or cfg.model.precision


class DecoderTrainer:
    """The optimisation state of a run: the decoder (DDP-wrapped over several ranks), AdamW, the fp16
    gradient scaler and the step count; a step is :meth:`forward_backward` then :meth:`update`."""

    def __init__(self, cfg: Stage1Config, *, model, key, params: List[torch.nn.Parameter], device: torch.device,
                 rank: int, world_size: int, run: Dict[str, int]) -> None:
        self.cfg, self.model, self.key, self.params, self.run = cfg, model, key, params, run
        self.train = cfg.train
        self.rank, self.world_size = rank, world_size
        decoder = model.mask_decoder
        self.decoder_call = decoder if world_size == 1 else torch.nn.parallel.DistributedDataParallel(
            decoder, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=self.train.heads == "all")
        precision = training_precision(cfg)
        self.runner = DecoderRunner(model, device=device, multimask_output=cfg.prompts.multimask_output,
                                    precision=precision)
        self.optimizer = make_optimizer(params, self.train)
        # fp16 gradients of a small loss underflow: scale the loss, skip steps whose gradients overflow
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        self.names = cfg.constraints.active  # the log's columns, the same on every rank
        self.last_path = cfg.decoder_dir / "last.pth"
        self.steps = 0

    def forward_backward(self, items: List[TrainItem]) -> torch.Tensor:
        """The gradients of one step on ``items``; returns its sums (:func:`_step_losses`), all-reduced,
        on the device."""
        for group in self.optimizer.param_groups:
            group["lr"] = _lr_at(self.steps, self.train)
        self.optimizer.zero_grad(set_to_none=True)
        sums = _step_losses(items, runner=self.runner, decoder=self.decoder_call, names=self.names,
                            per_call=self.cfg.model.decoder_batch_images, ddp=self.world_size > 1, scaler=self.scaler)
        if self.world_size > 1:
            dist.all_reduce(sums)
        return sums

    def update(self) -> None:
        """Clip the gradients (``train.grad_clip``) and take the optimizer step."""
        if self.train.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.params, self.train.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.steps += 1

    def save(self, epoch: int, batch_in_epoch: int, *, with_step_copy: bool) -> None:
        """``last.pth`` (the full state, at the position ``(epoch, batch_in_epoch)`` to continue from) and,
        with ``with_step_copy``, the decoder's weights as ``step_NNNNNN.pth``; rank 0 only."""
        if self.rank:
            return
        atomic_torch_save(_train_state(decoder=self.model.mask_decoder, optimizer=self.optimizer, scaler=self.scaler,
                                       step=self.steps, epoch=epoch, batch_in_epoch=batch_in_epoch,
                                       key_meta=self.key.as_dict(), run=self.run), self.last_path)
        if with_step_copy:
            save_decoder(self.cfg.decoder_dir / f"step_{self.steps:06d}.pth", model=self.model, key=self.key,
                         extra={"step": self.steps})

    def resume(self) -> Tuple[int, int]:
        """Load ``last.pth``; returns the ``(epoch, batch)`` to continue from (``(0, 0)`` without one)."""
        if not self.last_path.is_file():
            log.warning("--resume: no checkpoint at %s, starting from the pretrained decoder", self.last_path)
            return 0, 0
        state = torch.load(self.last_path, map_location="cpu", weights_only=True)
        saved_run = state["progress"].get("run", self.run)
        if saved_run != self.run:
            raise ValueError(f"cannot --resume from {self.last_path}: it was made with {saved_run}, this run has "
                             f"{self.run} (the image order would differ); use another --work-dir or drop --resume")
        self.model.mask_decoder.load_state_dict(state["mask_decoder"], strict=True)
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.steps = int(state["progress"]["step"])
        epoch, batch = int(state["progress"]["epoch"]), int(state["progress"]["batch_in_epoch"])
        if self.rank == 0:
            log.info("resumed from %s at step %d (epoch %d, batch %d)", self.last_path, self.steps, epoch, batch)
        return epoch, batch


#: what a step's time is spent on, host side (on CUDA the device's time shows in ``read``, where the
#: step's one copy from the device waits for it)
PHASES = ("fetch", "forward_backward", "optimizer", "read")


def fit(trainer: DecoderTrainer, images: TrainImages, *, start: Tuple[int, int], total_steps: int,
        train_log: JsonLinesLog, progress: bool) -> Tuple[List[float], Dict[str, List[float]]]:
    """The epochs from ``start`` (epoch, batch) until ``total_steps``; returns each step's mean loss and
    the seconds of each of its :data:`PHASES` (their sum is the step's time)."""
    train, seed, is_main = trainer.train, trainer.cfg.seed, trainer.rank == 0
    bar = tqdm(total=total_steps, initial=min(trainer.steps, total_steps), desc="train", unit="step",
               disable=not (progress and is_main), dynamic_ncols=True)
    losses: List[float] = []
    phases: Dict[str, List[float]] = {name: [] for name in PHASES}
    for epoch in range(start[0], train.epochs):
        if trainer.steps >= total_steps:
            break
        order = epoch_order(len(images), seed=seed, epoch=epoch, rank=trainer.rank, world_size=trainer.world_size)
        batches = [order[i : i + train.batch_size] for i in range(0, len(order), train.batch_size)]
        for b in range(start[1] if epoch == start[0] else 0, len(batches)):
            t0 = time.perf_counter()
            items = [images[index] for index in batches[b]]
            t1 = time.perf_counter()
            sums = trainer.forward_backward(items)
            t2 = time.perf_counter()
            trainer.update()
            t3 = time.perf_counter()
            totals = sums.tolist()  # the step's one read from the device: everything the log needs
            t4 = time.perf_counter()
            for name, seconds in zip(PHASES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                phases[name].append(seconds)
            losses.append(totals[0] / totals[-2])
            if is_main:
                train_log.write(_log_record(totals, names=trainer.names, step=trainer.steps, epoch=epoch,
                                            lr=_lr_at(trainer.steps - 1, train)))
                bar.set_postfix(loss=f"{losses[-1]:.4f}", epoch=epoch)
            bar.update(1)
            done, at_end_of_epoch = trainer.steps >= total_steps, b == len(batches) - 1
            if trainer.steps % train.checkpoint_every == 0 or at_end_of_epoch or done:
                trainer.save(*((epoch + 1, 0) if at_end_of_epoch else (epoch, b + 1)),
                             with_step_copy=trainer.steps % train.checkpoint_every == 0)
            if done:
                break
    bar.close()
    return losses, phases


def run_train(cfg: Stage1Config, *, resume: bool = False, progress: bool = True) -> Dict[str, object]:
    """Fine-tune the decoder as configured; returns a summary (losses, steps, paths, seconds)."""
    device = resolve_device(cfg.device)
    rank, world_size = init_distributed(device)
    torch.manual_seed(cfg.seed)
    # train reads cached embeddings: no image encoder (SAM 1 does not even read its weights)
    model, key = load_model(cfg.model, device=torch.device("cpu"), encoder=False)
    model.to(device)
    cache = EmbeddingCache(cfg.cache_dir, key=key)
    train = cfg.train
    params = freeze_for_decoder_training(model, train_heads=train.heads, lora_alpha=train.lora_alpha,
                                         lora_rank=train.lora_rank if train.params == "lora" else 0)
    dataset = open_dataset(cfg)
    ids, skipped = training_ids(cfg, dataset, cache)
    if rank == 0:
        log.info("train: %d image(s) (%d without objects skipped, %d unreadable), %d trainable decoder parameters",
                 len(ids), skipped["no_objects"], skipped["problems"], sum(p.numel() for p in params))
    # The untrained decoder's distributions are taken before a resumed checkpoint is loaded.
    images = prepared_images(cfg, ids, model=model, key=key, dataset=dataset, cache=cache, device=device, rank=rank,
                             world_size=world_size, progress=progress)
    run = {"batch_size": train.batch_size, "seed": cfg.seed, "world_size": world_size, "images": len(ids)}
    cfg.decoder_dir.mkdir(parents=True, exist_ok=True)
    trainer = DecoderTrainer(cfg, model=model, key=key, params=params, device=device, rank=rank,
                             world_size=world_size, run=run)
    train_log = JsonLinesLog(cfg.train_log)
    start = (0, 0)
    if resume:
        start = trainer.resume()
        if rank == 0:
            train_log.truncate_after(trainer.steps)
    elif rank == 0 and cfg.train_log.exists():
        cfg.train_log.unlink()  # a fresh run starts a fresh log
    if rank == 0:
        cfg.save(cfg.work_path / "config.yaml")
    steps_per_epoch = math.ceil(len(epoch_order(len(ids), seed=cfg.seed, epoch=0, rank=rank,
                                                world_size=world_size)) / train.batch_size)
    total_steps = min(steps_per_epoch * train.epochs, train.max_steps if train.max_steps is not None else math.inf)
    losses, phases = fit(trainer, images, start=start, total_steps=total_steps, train_log=train_log,
                         progress=progress)
    final_path = cfg.decoder_path()
    if rank == 0:
        save_decoder(final_path, model=model, key=key, extra={"step": trainer.steps, "epochs": train.epochs})
        log.info("decoder after %d step(s) -> %s", trainer.steps, final_path)
    if world_size > 1:
        dist.barrier()
    step_seconds = [sum(parts) for parts in zip(*phases.values())]
    return {
        "step": "train", "steps": trainer.steps, "images": len(ids), "losses": losses, "final": str(final_path),
        "step_seconds": step_seconds, "phase_seconds": phases, "prepare_seconds": images.prepare_seconds,
        "batch_size": train.batch_size, "skipped": skipped,
    }


def describe_constraints(cfg: Stage1Config) -> str:
    """The registered constraint types and the config's weights, as a table (``--list-constraints``)."""
    from logic.constraints import constraint_types

    config = cfg.constraints
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
        extra = {f"train.{k}": getattr(args, k) for k in ("epochs", "max_steps", "batch_size", "lr", "checkpoint_every")}
        extra["seed"] = args.seed
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
