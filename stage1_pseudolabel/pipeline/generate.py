"""Stage 1, step 3: write one pseudo-mask PNG per image (VOC palette, or the dataset description's
colours), from cached embeddings.

    python -m stage1_pseudolabel.pipeline.generate --config ... --data ... --work-dir work_dirs/stage1 \\
        --model-type vit_h --checkpoint ... [--zero-shot] [--shard-index i --num-shards N]

* Fine-tuned (default): loads ``<work_dir>/decoder/final.pth`` into the model's mask decoder; writes
  ``<work_dir>/pseudo_masks/<id>.png``.
* ``--zero-shot``: the same code path with SAM's own (untrained) decoder; writes
  ``<work_dir>/zeroshot_<prompt_mode>/``, so zero-shot and fine-tuned masks cover the same images.

Masks are the argmax of the per-pixel class distribution in pixel space, refined first by a dense
CRF on the image when the config sets ``crf`` (:mod:`wsss.core.crf`); with
``confidence_threshold > 0`` pixels whose top class probability is lower become 255. Images whose
mask exists are skipped (a killed job is simply resubmitted), every PNG is written atomically, and
``--shard-index/--num-shards`` split the image list deterministically (``ids[i::N]``), so a SLURM
array covers a dataset. Images without any weak label get an all-background mask or are skipped
(``no_label_policy``), and are counted in the summary. An image whose files cannot be read is
reported and the rest goes on; any other error (e.g. a full disk) stops the run. Reading runs ahead
and writing behind in threads (:mod:`stage1_pseudolabel.pipeline.io`), so the decoder sets the pace;
up to ``decoder_batch_images`` consecutive images share one decoder call
(:meth:`~stage1_pseudolabel.pipeline.predict.DecoderRunner.batch_object_logits`).

``--instances`` (config ``instances: true``) also writes instance pseudo-labels: one COCO instances
JSON per shard, ``<work_dir>/instances/<mask folder>.shard<i>of<N>.json`` (merge the shards with
``wsss-merge-instances``), each object with its class, the tight box of its mask, its weak box, an RLE
mask and a score. A pixel belongs to the object, among those of the class the argmax gives it, whose
logit is highest there (:func:`~stage1_pseudolabel.pipeline.predict.pseudo_mask_and_instances`), so
objects do not overlap and rebuild the PNG exactly (:func:`wsss.core.instances.semantic_from_instances`).
The score is the mean probability of the object's class over its mask (not the decoder's predicted
IoU, whose head the logic loss does not train). The file is rewritten atomically at most every
``INSTANCE_FLUSH_SECONDS`` and at the end; on a rerun, images already in it are kept and an image
whose PNG exists but which is not in the file is decoded again for its objects (its PNG is kept).

What made the masks of a folder is recorded in it (``.generated_by.json``: the decoder file's
fingerprint, or ``zero-shot``, the model's cache key, and the config keys that change a mask). A run
whose record differs, say after training again with another loss into the same work dir, is refused
instead of keeping the other run's masks: write to another ``--output-dir`` or delete the folder.

``--diagnostics`` (config ``diagnostics: true``) also writes, per image, where each constraint of the
loss is violated: ``<work_dir>/diagnostics/<mask folder>/<id>.npz`` with one ``float16 [256, 256]``
map per constraint in the low-res frame (minus the log-truths of its groundings summed at their
cells; a map sums to minus the constraint's log-truth), read by the report.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from tqdm import tqdm

from wsss.core.crf import crf_params, require_crf
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
from stage1_pseudolabel.pipeline.prepare import compile_constraints, open_dataset, prepare_image
from stage1_pseudolabel.sam.precision import autocast
from stage1_pseudolabel.sam.checkpoint import checkpoint_fingerprint
from wsss.core.cli import UserError, add_shard_arguments, finish, rank_shard_ids, run_cli, setup_logging, world
from wsss.core.weak_labels.errors import WeakLabelError

log = logging.getLogger(__name__)

#: seconds between two rewrites of a shard's instance file (a killed run redoes the objects of the
#: images decoded since the last one; their PNGs are kept)
INSTANCE_FLUSH_SECONDS = 60.0
#: the record, in a mask folder, of what made its masks
RECORD_FILE = ".generated_by.json"
#: config keys that change a pseudo-mask (besides the decoder and the model)
MASK_KEYS = ("weak_labels", "prompt_mode", "num_positive", "num_negative", "multimask_output", "min_box_size",
             "boxless_objects", "tag_objects", "seed", "precision", "crf", "confidence_threshold", "num_foreground")


class OutputMismatchError(UserError, RuntimeError):
    """A mask folder holds masks that another decoder or other settings made."""


def mask_record(cfg: Stage1Config, key, *, zero_shot: bool) -> Dict[str, object]:
    """What the masks of this run depend on (the decoder file by its fingerprint)."""
    decoder = "zero-shot" if zero_shot else checkpoint_fingerprint(cfg.decoder_path())
    return json.loads(json.dumps({"decoder": decoder, "model": key.as_dict(),
                                  "config": {k: getattr(cfg, k) for k in MASK_KEYS}}))


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
    model, key = load_model(cfg, device=device)
    cache = EmbeddingCache(cfg.cache_dir, key=key, durable=cfg.durable_writes)
    if not zero_shot:
        load_decoder(cfg.decoder_path(), model=model, key=key)
    model.eval()
    crf = None
    if cfg.crf is not None:  # fail before any work, not on the first image
        require_crf()
        crf = crf_params(cfg.crf, where="stage-1 config key crf")
    runner = DecoderRunner(model, device=device, multimask_output=cfg.multimask_output, precision=cfg.precision)
    encoder_size, lowres = key.encoder_size, key.lowres_size
    out_dir = cfg.output_path(zero_shot=zero_shot)
    out_dir.mkdir(parents=True, exist_ok=True)
    check_mask_record(out_dir, mask_record(cfg, key, zero_shot=zero_shot))
    for stale in remove_stale_temp_files(out_dir):
        log.info("removed %s (a temporary file of a killed run)", stale)

    dataset = open_dataset(cfg)
    palette = getattr(dataset, "palette", None)  # a description's colours; None: the VOC colour map
    ids = rank_shard_ids(dataset.ids, shard_index=shard_index, num_shards=num_shards)
    position = {image_id: k for k, image_id in enumerate(dataset.ids)}
    doc, inst_path, done_instances = None, None, set()
    if cfg.instances:
        rank, size = world()
        inst_path = cfg.instances_path(zero_shot=zero_shot, shard_index=shard_index, num_shards=num_shards,
                                       rank=rank, world_size=size)
        inst_path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temp_files(inst_path.parent)
        doc = inst.read_document(inst_path) if inst_path.is_file() else inst.new_document(classes=dataset.classes)
        doc["info"] = {"description": "instance pseudo-labels (wsss-generate)", "masks": str(out_dir),
                       "zero_shot": zero_shot, "shard_index": shard_index, "num_shards": num_shards,
                       "score": "mean probability of the object's class over its mask"}
        done_instances = {im["name"] for im in doc["images"]}
    in_doc = {im["id"] for im in doc["images"]} if doc is not None else set()
    pending, last_flush = 0, time.monotonic()

    def add_instances(image_id: str, height: int, width: int, mask: np.ndarray, objects=None, weak_boxes=None):
        nonlocal pending
        k = position[image_id] + 1
        if k in in_doc:  # decoded again (its PNG was missing): its old entry goes
            doc["images"] = [im for im in doc["images"] if im["id"] != k]
            doc["annotations"] = [a for a in doc["annotations"] if a["image_id"] != k]
        in_doc.add(k)
        doc["images"].append(inst.image_entry(k - 1, image_id, height, width, ignore=mask == 255,
                                              file_name=dataset.image_path(image_id).name))
        if objects is not None:
            doc["annotations"] += inst.object_annotations(k, objects.masks, objects.classes, objects.scores,
                                                          weak_boxes[objects.objects])
        pending += 1
        if time.monotonic() - last_flush >= INSTANCE_FLUSH_SECONDS:
            flush_instances()

    def flush_instances():
        nonlocal pending, last_flush
        if doc is not None and pending:
            inst.write_document(inst_path, doc)
        pending, last_flush = 0, time.monotonic()
    counts = {"written": 0, "existing": 0, "diagnostics": 0, "no_labels_background": 0, "no_labels_skipped": 0, "embedded_now": 0,
              "instances": 0, "instances_added": 0}
    problems: List[Dict[str, str]] = []
    decode_seconds = 0.0
    t_start = time.time()

    diag_dir = cfg.diagnostics_path(zero_shot=zero_shot) if cfg.diagnostics else None

    def read(image_id: str) -> Tuple[str, object, object, Optional[np.ndarray], object]:
        """File work for one image, run ahead in a thread: what to do, its inputs, the RGB image
        where it is needed (to embed it, or for the CRF), and its constraints (diagnostics only)."""
        png_exists = (out_dir / f"{image_id}.png").is_file()
        diag_exists = diag_dir is None or (diag_dir / f"{image_id}.npz").is_file()
        if png_exists and diag_exists and (doc is None or image_id in done_instances):
            return "existing", None, None, None, None
        ann = dataset.load(image_id)
        prepared = prepare_image(ann, cfg, encoder_size=encoder_size, lowres=lowres, padded=key.padded)
        if prepared.objects.num_objects == 0:
            return "no_objects", ann, None, None, None
        constraints = compile_constraints(ann, prepared, cfg) if diag_dir is not None else None
        if cache.has(image_id):
            image = ann.read_image() if crf is not None else None
            return "decode", prepared, cache.load(image_id, height=ann.height, width=ann.width), image, constraints
        if not cfg.embed_missing:  # the main loop says so
            return "embed", prepared, ann, None, None
        return "embed", prepared, ann, ann.read_image(), constraints  # unreadable: a WeakLabelError, reported

    # Images waiting for their decoder call: up to decoder_batch_images consecutive ones share it.
    to_decode: List[Tuple[str, object, object, Optional[np.ndarray], object]] = []

    def decode_queued(writer: BackgroundWriter) -> None:
        nonlocal decode_seconds
        if not to_decode:
            return
        t0 = time.perf_counter()
        with torch.inference_mode():
            logits_list = runner.batch_object_logits([p[1] for p in to_decode], [p[2] for p in to_decode])
        decode_seconds += time.perf_counter() - t0
        for (image_id, prepared, _, image, constraints), logits in zip(to_decode, logits_list):
            finish_image(writer, image_id, prepared, logits, image, constraints)
        to_decode.clear()

    def finish_image(writer: BackgroundWriter, image_id: str, prepared, logits: torch.Tensor,
                     image: Optional[np.ndarray], constraints) -> None:
        nonlocal decode_seconds
        t0 = time.perf_counter()
        if crf is None:  # no CPU work worth a process: at once, on the device
            complete(writer, image_id, prepared, logits, constraints,
                     finished_mask(prepared, logits, image, crf, cfg.confidence_threshold, doc is not None))
        else:
            args = (prepared, logits.cpu(), image, crf, cfg.confidence_threshold, doc is not None)
            masks_pool.submit(finished_mask, args,
                              lambda done: complete(writer, image_id, prepared, logits, constraints, done))
        decode_seconds += time.perf_counter() - t0

    def complete(writer: BackgroundWriter, image_id: str, prepared, logits: torch.Tensor, constraints,
                 done: Tuple[np.ndarray, object]) -> None:
        mask, objects = done
        out_path = out_dir / f"{image_id}.png"
        if constraints is not None and not (diag_dir / f"{image_id}.npz").is_file():
            write_violation_maps(diag_dir / f"{image_id}.npz", constraints, logits, prepared)
            counts["diagnostics"] += 1
        if doc is not None:
            add_instances(image_id, mask.shape[0], mask.shape[1], mask, objects, prepared.objects.boxes)
            counts["instances"] += len(objects.classes)
        if out_path.is_file():  # decoded again for its objects (or its diagnostics) only
            counts["instances_added"] += int(doc is not None)
            return
        writer.submit(write_mask, out_path, mask, num_foreground=cfg.num_foreground, palette=palette,
                      durable=cfg.durable_writes)
        counts["written"] += 1

    bar = tqdm(total=len(ids), desc="generate" + (" (zero-shot)" if zero_shot else ""), unit="img",
               disable=not progress, dynamic_ncols=True)
    crf_workers = (default_workers() if cfg.crf_workers is None else cfg.crf_workers) if crf is not None else 0
    with BackgroundWriter(max_pending=4) as writer, OrderedProcessPool(crf_workers) as masks_pool:
        for image_id, item, error in prefetch(read, ids, ahead=4):
            bar.update(1)
            out_path = out_dir / f"{image_id}.png"
            if error is not None:
                if not isinstance(error, WeakLabelError):
                    raise error
                problems.append({"image_id": image_id, "error": str(error)})
                log.warning("no mask for %s: %s", image_id, error)
                continue
            what, a, b, image, constraints = item
            if what == "existing":
                counts["existing"] += 1
                continue
            if what == "no_objects":
                if cfg.no_label_policy == "skip":
                    counts["no_labels_skipped"] += 1
                    log.info("%s has no object label: skipped (no_label_policy=skip)", image_id)
                    continue
                empty = np.zeros((a.height, a.width), np.uint8)
                if doc is not None:
                    add_instances(image_id, a.height, a.width, empty)
                if not out_path.is_file():
                    writer.submit(write_mask, out_path, empty, num_foreground=cfg.num_foreground, palette=palette,
                                  durable=cfg.durable_writes)
                counts["no_labels_background"] += 1
                log.info("%s has no object label: all-background mask (no_label_policy=background)", image_id)
                continue
            prepared = a
            if what == "embed":
                if not cfg.embed_missing:
                    raise FileNotFoundError(f"no cached embedding for {image_id} in {cache.root}: run stage1-embed "
                                            "first (or set embed_missing: true)")
                with autocast(cfg.precision, device):
                    emb = model.encode([model.prepare_image(image)], device=device)
                cache.save(image_id, emb, height=b.height, width=b.width)
                embedding = cache.load(image_id, height=b.height, width=b.width, device=device)
                counts["embedded_now"] += 1
            else:
                embedding = b.to(device, non_blocking=True)
            to_decode.append((image_id, prepared, embedding, image, constraints))
            if len(to_decode) >= cfg.decoder_batch_images:
                decode_queued(writer)
        decode_queued(writer)
        masks_pool.close()  # the last masks, before the writer's last writes
    bar.close()
    flush_instances()
    decoded = counts["written"]
    summary: Dict[str, object] = {
        "step": "generate", "zero_shot": zero_shot, "output_dir": str(out_dir), "shard_index": shard_index,
        "num_shards": num_shards, "images": len(ids), **counts, "problems": problems,
        "decode_seconds_per_image": round(decode_seconds / max(decoded, 1), 5),
        "seconds": round(time.time() - t_start, 3),
        "instances_file": str(inst_path) if inst_path is not None else None,
    }
    tag = "zeroshot_" + cfg.prompt_mode if zero_shot else "finetuned"
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
        extra = {k: getattr(args, k) for k in ("output_dir", "decoder_checkpoint", "confidence_threshold", "instances",
                                               "diagnostics")}
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
