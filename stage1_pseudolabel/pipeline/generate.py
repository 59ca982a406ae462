"""Stage 1, step 3: write one pseudo-mask PNG per image (VOC palette, or the dataset description's
colours), from cached embeddings.

Fine-tuned (``<work_dir>/decoder/final.pth``) or ``--zero-shot``; resumable, sharded, atomic; the
folder records what made its masks (:data:`RECORD_FILE`). Instances, diagnostics, the CRF:
docs/method.md, "Train and generate, in detail".
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch
from tqdm import tqdm

from logic.constraints import CompiledConstraints
from wsss.core.crf import require_crf
from wsss.core import instances as inst
from wsss.core.masks import write_mask
from wsss.core.atomic import atomic_write, remove_stale_temp_files, write_json
from stage1_pseudolabel.pipeline.cache import EmbeddingCache
from stage1_pseudolabel.pipeline.config import Stage1Config, add_common_arguments, config_from_args
from stage1_pseudolabel.pipeline.io import BackgroundWriter, OrderedProcessPool, default_workers, prefetch
from stage1_pseudolabel.pipeline.model import load_decoder, load_model, resolve_device
from stage1_pseudolabel.pipeline.predict import (
    DecoderRunner, lowres_log_distribution, lowres_object_distribution, pseudo_mask, pseudo_mask_and_instances,
)
from stage1_pseudolabel.pipeline.prepare import (
    ImageInputs, PreparedImage, compile_constraints, open_dataset, prepare_image,
)
from stage1_pseudolabel.sam.backends.base import FeaturesLike
from stage1_pseudolabel.sam.precision import autocast
from stage1_pseudolabel.sam.checkpoint import checkpoint_fingerprint
from wsss.core.cli import UserError, add_shard_arguments, finish, rank_shard_ids, run_cli, setup_logging, world
from wsss.core.weak_labels.annotation import ImageAnnotation
from wsss.core.weak_labels.errors import WeakLabelError

log = logging.getLogger(__name__)

#: seconds between two rewrites of a shard's instance file (a killed run redoes the objects of the
#: images decoded since the last one; their PNGs are kept)
INSTANCE_FLUSH_SECONDS = 60.0
#: the record, in a mask folder, of what made its masks
RECORD_FILE = ".generated_by.json"
#: config keys that change a pseudo-mask (besides the decoder and the model)
MASK_KEYS = ("data.weak_labels", "data.dataset", "prompts.mode", "prompts.num_positive", "prompts.num_negative",
             "prompts.multimask_output", "prompts.min_box_size", "prompts.boxless_objects", "prompts.tag_objects",
             "seed", "model.precision", "crf", "generate.confidence_threshold")


class OutputMismatchError(UserError, RuntimeError):
    """A mask folder holds masks that another decoder or other settings made."""


def mask_record(cfg: Stage1Config, key, *, zero_shot: bool) -> Dict[str, object]:
    """What the masks of this run depend on (the decoder file by its fingerprint)."""
    decoder = "zero-shot" if zero_shot else checkpoint_fingerprint(cfg.decoder_path())
    return json.loads(json.dumps({"decoder": decoder, "model": key.as_dict(),
                                  "config": {k: cfg.get(k) for k in MASK_KEYS}}))


def check_mask_record(out_dir, record: Dict[str, object]) -> None:
    """Refuse a folder whose masks were made otherwise; record this run in a new one (module docstring)."""
    path = out_dir / RECORD_FILE
    if path.is_file():
        found = json.loads(path.read_text())
        if found != record:
            diff = sorted(k for k in set(found) | set(record) if found.get(k) != record.get(k))
            if "config" in diff:
                diff.remove("config")
                diff += [f"config.{k}" for k in MASK_KEYS if found.get("config", {}).get(k) != record["config"].get(k)]
            raise OutputMismatchError(
                f"{out_dir} holds masks made by another run (differs in: {', '.join(diff)}; see {path}); generate only "
                "resumes the same run: pass another --output-dir, or delete the folder to make its masks again")
        return
    if any(out_dir.glob("*.png")):
        log.warning("%s holds masks with no record of what made them (an older version); they are kept, and "
                    "recorded as this run's", out_dir)
    with atomic_write(path, durable=False) as handle:
        handle.write((json.dumps(record, indent=1, sort_keys=True) + "\n").encode())


class InstanceFile:
    """A shard's COCO instances JSON, grown image by image and rewritten atomically at most every
    :data:`INSTANCE_FLUSH_SECONDS` (and by :meth:`flush`); images already in it are kept."""

    def __init__(self, path, *, dataset, info: Dict[str, object]) -> None:
        self.path, self.dataset = path, dataset
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(path.parent)
        self.doc = inst.read_document(path) if path.is_file() else inst.new_document(classes=dataset.classes)
        self.doc["info"] = info
        self.done = {im["name"] for im in self.doc["images"]}
        self.ids = {im["id"] for im in self.doc["images"]}
        self.position = {image_id: k for k, image_id in enumerate(dataset.ids)}
        self.pending, self.last_flush = 0, time.monotonic()

    def add(self, image_id: str, mask: np.ndarray, objects=None, weak_boxes=None) -> None:
        """Record ``image_id`` (``mask [H, W]``, 255 ignored) and its ``objects`` (None: it has none)."""
        k = self.position[image_id] + 1
        if k in self.ids:  # decoded again (its PNG was missing): its old entry goes
            self.doc["images"] = [im for im in self.doc["images"] if im["id"] != k]
            self.doc["annotations"] = [a for a in self.doc["annotations"] if a["image_id"] != k]
        self.ids.add(k)
        self.doc["images"].append(inst.image_entry(k - 1, image_id, mask.shape[0], mask.shape[1], ignore=mask == 255,
                                                   file_name=self.dataset.image_path(image_id).name))
        if objects is not None:
            self.doc["annotations"] += inst.object_annotations(k, objects.masks, objects.classes, objects.scores,
                                                               weak_boxes[objects.objects])
        self.pending += 1
        if time.monotonic() - self.last_flush >= INSTANCE_FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            inst.write_document(self.path, self.doc)
        self.pending, self.last_flush = 0, time.monotonic()


class _Found(NamedTuple):
    """What :meth:`_Generation.read` found for one image, and what its step needs.

    ``what``: ``existing`` (its outputs are there: nothing), ``no_objects`` (``ann``), ``decode``
    (``prepared``, the cached ``embedding [1, C, h, w]``, an ``ImageFeatures`` where the backend has
    more maps) or ``embed`` (``prepared``, ``ann``: not cached).
    ``image``: ``uint8 [H, W, 3]`` where it is needed (to embed it, or for the CRF); ``constraints``:
    compiled for the diagnostics only.
    """

    what: str
    prepared: Optional[PreparedImage] = None
    ann: Optional[ImageAnnotation] = None
    embedding: Optional[FeaturesLike] = None
    image: Optional[np.ndarray] = None
    constraints: Optional[CompiledConstraints] = None


class _Queued(NamedTuple):
    """An image waiting for its decoder call: its ``embedding`` on the device, the rest as :class:`_Found`'s."""

    image_id: str
    prepared: PreparedImage
    embedding: FeaturesLike
    image: Optional[np.ndarray]
    constraints: Optional[CompiledConstraints]


class _Generation:
    """One run of generate over a shard: reads ahead (:meth:`read`, in a thread), decodes
    ``decoder_batch_images`` images a call, finishes masks (the CRF in worker processes) and writes
    them behind (:class:`~stage1_pseudolabel.pipeline.io.BackgroundWriter`)."""

    def __init__(self, cfg: Stage1Config, *, model, key, cache: EmbeddingCache, device: torch.device, dataset,
                 out_dir, crf, instances: Optional[InstanceFile], zero_shot: bool) -> None:
        self.cfg, self.model, self.key, self.cache, self.device = cfg, model, key, cache, device
        self.dataset, self.out_dir, self.crf, self.instances = dataset, out_dir, crf, instances
        self.palette = dataset.palette
        self.inputs = ImageInputs.from_config(cfg)
        self.runner = DecoderRunner(model, device=device, multimask_output=cfg.prompts.multimask_output,
                                    precision=cfg.model.precision)
        self.diag_dir = cfg.diagnostics_path(zero_shot=zero_shot) if cfg.generate.diagnostics else None
        self.counts = {"written": 0, "existing": 0, "diagnostics": 0, "no_labels_background": 0,
                       "no_labels_skipped": 0, "embedded_now": 0, "instances": 0, "instances_added": 0}
        self.problems: List[Dict[str, str]] = []
        self.decode_seconds = 0.0
        # images waiting for their decoder call: up to decoder_batch_images consecutive ones share it
        self.to_decode: List[_Queued] = []
        self.writer: Optional[BackgroundWriter] = None
        self.masks_pool: Optional[OrderedProcessPool] = None

    def read(self, image_id: str) -> _Found:
        """File work for one image, run ahead in a thread: what to do and its inputs."""
        png_exists = (self.out_dir / f"{image_id}.png").is_file()
        diag_exists = self.diag_dir is None or (self.diag_dir / f"{image_id}.npz").is_file()
        if png_exists and diag_exists and (self.instances is None or image_id in self.instances.done):
            return _Found("existing")
        cfg, key = self.cfg, self.key
        ann = self.dataset.load(image_id)
        prepared = prepare_image(ann, inputs=self.inputs, encoder_size=key.encoder_size, lowres=key.lowres_size,
                                 padded=key.padded)
        if prepared.objects.num_objects == 0:
            return _Found("no_objects", ann=ann)
        constraints = compile_constraints(ann, prepared, inputs=self.inputs) if self.diag_dir is not None else None
        if self.cache.has(image_id):
            image = ann.read_image() if self.crf is not None else None
            embedding = self.cache.load(image_id, height=ann.height, width=ann.width)
            return _Found("decode", prepared=prepared, embedding=embedding, image=image, constraints=constraints)
        if not cfg.generate.embed_missing:  # the main loop says so
            return _Found("embed", prepared=prepared, ann=ann)
        # an unreadable image raises a WeakLabelError here, which run() reports for the image
        return _Found("embed", prepared=prepared, ann=ann, image=ann.read_image(), constraints=constraints)

    def run(self, ids: Sequence[str], *, progress: bool, desc: str) -> None:
        bar = tqdm(total=len(ids), desc=desc, unit="img", disable=not progress, dynamic_ncols=True)
        crf_workers = self.cfg.generate.crf_workers
        crf_workers = (default_workers() if crf_workers is None else crf_workers) if self.crf else 0
        with BackgroundWriter(max_pending=4) as self.writer, OrderedProcessPool(crf_workers) as self.masks_pool:
            for image_id, item, error in prefetch(self.read, ids, ahead=4):
                bar.update(1)
                if error is not None:
                    if not isinstance(error, WeakLabelError):
                        raise error
                    self.problems.append({"image_id": image_id, "error": str(error)})
                    log.warning("no mask for %s: %s", image_id, error)
                    continue
                self.take(image_id, item)
            self.decode_queued()
            self.masks_pool.close()  # the last masks, before the writer's last writes
        bar.close()
        if self.instances is not None:
            self.instances.flush()

    def take(self, image_id: str, found: _Found) -> None:
        """Act on what :meth:`read` found for ``image_id``."""
        if found.what == "existing":
            self.counts["existing"] += 1
        elif found.what == "no_objects":
            self.no_objects(image_id, found.ann)
        else:
            embedding = (self.embed(image_id, found.image, ann=found.ann) if found.what == "embed"
                         else found.embedding.to(self.device, non_blocking=True))
            self.to_decode.append(_Queued(image_id, found.prepared, embedding, found.image, found.constraints))
            if len(self.to_decode) >= self.cfg.model.decoder_batch_images:
                self.decode_queued()

    def write(self, out_path, mask: np.ndarray) -> None:
        """Write ``mask [H, W]`` as a palette PNG, behind the loop."""
        self.writer.submit(write_mask, out_path, mask, num_foreground=self.dataset.num_foreground,
                           palette=self.palette, durable=self.cfg.durable_writes)

    def no_objects(self, image_id: str, ann) -> None:
        if self.cfg.data.no_label_policy == "skip":
            self.counts["no_labels_skipped"] += 1
            log.info("%s has no object label: skipped (data.no_label_policy=skip)", image_id)
            return
        empty = np.zeros((ann.height, ann.width), np.uint8)
        if self.instances is not None:
            self.instances.add(image_id, empty)
        out_path = self.out_dir / f"{image_id}.png"
        if not out_path.is_file():
            self.write(out_path, empty)
        self.counts["no_labels_background"] += 1
        log.info("%s has no object label: all-background mask (data.no_label_policy=background)", image_id)

    def embed(self, image_id: str, image: Optional[np.ndarray], *, ann) -> torch.Tensor:
        """The embedding of an image the cache lacks (``embed_missing``), cached on the way."""
        if not self.cfg.generate.embed_missing:
            raise FileNotFoundError(f"no cached embedding for {image_id} in {self.cache.root}: run stage1-embed "
                                    "first (or set generate.embed_missing: true)")
        with autocast(self.cfg.model.precision, self.device):
            emb = self.model.encode([self.model.prepare_image(image)], device=self.device)
        self.cache.save(image_id, emb, height=ann.height, width=ann.width)
        self.counts["embedded_now"] += 1
        return self.cache.load(image_id, height=ann.height, width=ann.width, device=self.device)

    def decode_queued(self) -> None:
        """One decoder call for the queued images; each mask is then finished, here or in a worker."""
        if not self.to_decode:
            return
        t0 = time.perf_counter()
        with torch.inference_mode():
            logits_list = self.runner.batch_object_logits([q.prepared for q in self.to_decode],
                                                          [q.embedding for q in self.to_decode])
        for q, logits in zip(self.to_decode, logits_list):
            args = (q.prepared, logits, q.image, self.crf, self.cfg.generate.confidence_threshold,
                    self.instances is not None)
            if self.crf is None:  # no CPU work worth a process: at once, on the device
                self.complete(q.image_id, q.prepared, logits, q.constraints, finished_mask(*args))
            else:
                self.masks_pool.submit(finished_mask, (q.prepared, logits.cpu(), *args[2:]),
                                       lambda done, q=q, x=logits: self.complete(q.image_id, q.prepared, x,
                                                                                 q.constraints, done))
        self.decode_seconds += time.perf_counter() - t0
        self.to_decode.clear()

    def complete(self, image_id: str, prepared, logits: torch.Tensor, constraints,
                 done: Tuple[np.ndarray, object]) -> None:
        mask, objects = done
        out_path = self.out_dir / f"{image_id}.png"
        if constraints is not None and not (self.diag_dir / f"{image_id}.npz").is_file():
            write_violation_maps(self.diag_dir / f"{image_id}.npz", constraints, logits, prepared)
            self.counts["diagnostics"] += 1
        if self.instances is not None:
            self.instances.add(image_id, mask, objects, prepared.objects.boxes)
            self.counts["instances"] += len(objects.classes)
        if out_path.is_file():  # decoded again for its objects (or its diagnostics) only
            self.counts["instances_added"] += int(self.instances is not None)
            return
        self.write(out_path, mask)
        self.counts["written"] += 1


def run_generate(
    cfg: Stage1Config,
    *,
    zero_shot: bool = False,
    shard_index: int = 0,
    num_shards: int = 1,
    progress: bool = True,
) -> Dict[str, object]:
    """Write this shard's pseudo-masks; returns a summary (also written as JSON under ``<work_dir>/logs``)."""
    device = resolve_device(cfg.device)
    model, key = load_model(cfg.model, device=device)
    cache = EmbeddingCache(cfg.cache_dir, key=key, durable=cfg.durable_writes)
    if not zero_shot:
        load_decoder(cfg.decoder_path(), model=model, key=key)
    model.eval()
    if cfg.crf is not None:  # fail before any work, not on the first image
        require_crf()
    out_dir = cfg.output_path(zero_shot=zero_shot)
    out_dir.mkdir(parents=True, exist_ok=True)
    check_mask_record(out_dir, mask_record(cfg, key, zero_shot=zero_shot))
    for stale in remove_stale_temp_files(out_dir):
        log.info("removed %s (a temporary file of a killed run)", stale)
    dataset = open_dataset(cfg)
    ids = rank_shard_ids(dataset.ids, shard_index=shard_index, num_shards=num_shards)
    instances = None
    if cfg.generate.instances:
        rank, size = world()
        instances = InstanceFile(
            cfg.instances_path(zero_shot=zero_shot, shard_index=shard_index, num_shards=num_shards, rank=rank,
                               world_size=size), dataset=dataset,
            info={"description": "instance pseudo-labels (wsss-generate)", "masks": str(out_dir),
                  "zero_shot": zero_shot, "shard_index": shard_index, "num_shards": num_shards,
                  "score": "mean probability of the object's class over its mask"})
    t_start = time.time()
    gen = _Generation(cfg, model=model, key=key, cache=cache, device=device, dataset=dataset, out_dir=out_dir,
                      crf=cfg.crf, instances=instances, zero_shot=zero_shot)
    gen.run(ids, progress=progress, desc="generate" + (" (zero-shot)" if zero_shot else ""))
    summary: Dict[str, object] = {
        "step": "generate", "zero_shot": zero_shot, "output_dir": str(out_dir), "shard_index": shard_index,
        "num_shards": num_shards, "images": len(ids), **gen.counts, "problems": gen.problems,
        "decode_seconds_per_image": round(gen.decode_seconds / max(gen.counts["written"], 1), 5),
        "seconds": round(time.time() - t_start, 3),
        "instances_file": str(instances.path) if instances is not None else None,
    }
    tag = "zeroshot_" + cfg.prompts.mode if zero_shot else "finetuned"
    summary["problems_file"] = str(cfg.work_path / "logs" / f"generate_{tag}_shard{shard_index}of{num_shards}.json")
    write_json(summary["problems_file"], summary, sort_keys=True)
    return summary


def finished_mask(prepared, logits: torch.Tensor, image: Optional[np.ndarray], crf, confidence_threshold: float,
                  instances: bool) -> Tuple[np.ndarray, object]:
    """``(mask, objects)`` of one image (objects None without ``instances``): the dense CRF, when set,
    is the CPU work of generate (about 0.8 s per VOC image), so it runs in worker processes."""
    with torch.inference_mode():
        if not instances:
            return pseudo_mask(prepared, logits, confidence_threshold=confidence_threshold, crf=crf, image=image), None
        return pseudo_mask_and_instances(prepared, logits, crf=crf, image=image, confidence_threshold=confidence_threshold)


def write_violation_maps(path, constraints, logits: torch.Tensor, prepared) -> None:
    """Write ``{constraint name: float16 [L, L]}`` violation maps (minus the grounding log-truths summed
    per low-res cell, :meth:`~logic.constraints.CompiledConstraints.violation_maps`) of one image, and
    ``valid`` (the low-res cells of the image), atomically."""
    with torch.inference_mode():
        log_probs = lowres_log_distribution(prepared, logits)
        objects = lowres_object_distribution(logits) if constraints.needs_objects else None
        maps = constraints.to(log_probs.device).violation_maps(log_probs, objects)
    arrays = {name: m.float().cpu().numpy().astype(np.float16) for name, m in maps.items()}
    with atomic_write(path, durable=False) as handle:
        np.savez_compressed(handle, valid=prepared.frame.valid_lowres().numpy(), **arrays)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="wsss-generate", description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    add_shard_arguments(parser)
    parser.add_argument("--zero-shot", action="store_true", help="use SAM's own decoder (no fine-tuning)")
    parser.add_argument("--out-dir", dest="output_dir", help="output folder (default under the work dir)")
    parser.add_argument("--decoder", dest="decoder_checkpoint", help="fine-tuned decoder (default <work_dir>/decoder/final.pth)")
    parser.add_argument("--confidence-threshold", type=float, dest="confidence_threshold",
                        help="pixels whose top class probability is below become 255 (0: off)")
    parser.add_argument("--instances", action="store_true", default=None,
                        help="also write instance pseudo-labels (COCO JSON per shard under <work_dir>/instances)")
    parser.add_argument("--diagnostics", action="store_true", default=None,
                        help="also write where each constraint is violated (<work_dir>/diagnostics/<masks>/<id>.npz)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    setup_logging()

    def body() -> int:
        extra = {f"generate.{k}": getattr(args, k) for k in ("output_dir", "decoder_checkpoint", "confidence_threshold",
                                                             "instances", "diagnostics")}
        cfg = config_from_args(args, extra)
        s = run_generate(cfg, zero_shot=args.zero_shot, shard_index=args.shard_index, num_shards=args.num_shards,
                         progress=not args.no_progress)
        print(f"{s['written']} mask(s) written, {s['existing']} already there, "
              f"{s['no_labels_background']} all-background (no weak label), {s['no_labels_skipped']} skipped (no "
              f"weak label), {len(s['problems'])} problem(s) -> {s['output_dir']}")
        if s["instances_file"]:
            print(f"{s['instances']} object(s) of {s['written'] + s['instances_added']} image(s) added -> "
                  f"{s['instances_file']}")
        return finish([f"no mask for {p['image_id']}: {p['error']}" for p in s["problems"]],
                      what=f"wsss-generate (problems listed in {s['problems_file']})")

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
