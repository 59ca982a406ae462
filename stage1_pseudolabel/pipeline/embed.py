"""Stage 1, step 1: run the frozen image encoder once per image and cache the embeddings.

    python -m stage1_pseudolabel.pipeline.embed --config configs/stage1/voc_box_scribble.yaml \\
        --data data/VOCdevkit/VOC2012 --split train --work-dir work_dirs/stage1 \\
        --model-type vit_h --checkpoint data/checkpoints/sam_vit_h_4b8939.pth [--shard-index i --num-shards N]

Resumable: images whose embedding is cached are skipped, entries are written atomically. Only images
with at least one object are embedded (the others get an all-background mask or are skipped by
``generate`` without a decoder call). Image decoding and resizing run in background threads, and
writing in another (:mod:`stage1_pseudolabel.pipeline.io`), so the encoder is the only thing on the
critical path; memory is bounded by a few batches whatever the dataset size.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple


import torch
from torch import nn
from tqdm import tqdm

from wsss.core.atomic import remove_stale_temp_files, write_json
from stage1_pseudolabel.pipeline.cache import EmbeddingCache
from stage1_pseudolabel.pipeline.config import Stage1Config, add_common_arguments, config_from_args
from stage1_pseudolabel.pipeline.io import BackgroundWriter, prefetch
from stage1_pseudolabel.pipeline.model import load_model, resolve_device
from stage1_pseudolabel.sam.precision import autocast
from stage1_pseudolabel.pipeline.prepare import has_objects, open_dataset
from wsss.core.cli import add_shard_arguments, finish, rank_shard_ids, run_cli, setup_logging
from wsss.core.weak_labels.errors import WeakLabelError
from wsss.core.weak_labels.images import read_image

log = logging.getLogger(__name__)


class ImageToEmbed(NamedTuple):
    """What embedding needs of an image, kept from the annotation pass (so it is read once)."""

    image_id: str
    image_path: Path
    height: int
    width: int
    orientation: str = "exif"  #: the annotation's (wsss.core.weak_labels.images.ORIENTATIONS)


def _load(item: ImageToEmbed, model: nn.Module) -> Tuple[str, int, int, torch.Tensor]:
    image = read_image(item.image_path, orientation=item.orientation)
    return item.image_id, item.height, item.width, model.prepare_image(image)


def images_to_embed(cfg: Stage1Config, ids: Iterable[str], dataset, *,
                    problems: List[Dict[str, str]]) -> Tuple[List[ImageToEmbed], int]:
    """The images (in order) that have at least one object; also the count of those without any."""
    keep, empty = [], 0
    for image_id in ids:
        try:
            ann = dataset.load(image_id)
        except WeakLabelError as exc:
            problems.append({"image_id": image_id, "error": str(exc)})
            log.warning("skipping %s: %s", image_id, exc)
            continue
        if has_objects(ann, prompts=cfg.prompts, weak_labels=cfg.data.weak_labels):
            keep.append(ImageToEmbed(image_id, Path(ann.image_path), ann.height, ann.width, ann.orientation))
        else:
            empty += 1
    return keep, empty


def embed_ids(
    model: nn.Module,
    cache: EmbeddingCache,
    images: Sequence[ImageToEmbed],
    *,
    device: torch.device,
    batch_size: int = 1,
    progress: bool = True,
    problems: Optional[List[Dict[str, str]]] = None,
    precision: str = "fp32",
) -> int:
    """Embed ``images`` (already filtered for cached ones) and store them; returns how many were written.

    Loading runs ahead in threads (two batches), writing behind in another; an image whose files
    cannot be read is recorded in ``problems`` and the rest goes on; any other error (a full disk ...)
    stops the run, and no partial cache entry remains.
    """
    written = 0
    bar = tqdm(total=len(images), desc="embed", unit="img", disable=not progress, dynamic_ncols=True)
    batch: List[Tuple[str, int, int, torch.Tensor]] = []

    def flush(writer: BackgroundWriter) -> None:
        with autocast(precision, device):
            features = model.encode([b[3] for b in batch], device=device).to("cpu", torch.float16)
        for k, (image_id, h, w, _) in enumerate(batch):
            writer.submit(cache.save, image_id, features.image(k), height=h, width=w)
        bar.update(len(batch))
        batch.clear()

    with BackgroundWriter(max_pending=2 * batch_size) as writer:
        loaded = prefetch(lambda item: _load(item, model), images, ahead=2 * batch_size)
        for image, item, error in loaded:
            if error is not None:
                if not isinstance(error, WeakLabelError):
                    raise error
                if problems is not None:
                    problems.append({"image_id": image.image_id, "error": str(error)})
                log.warning("skipping %s: %s", image.image_id, error)
                bar.update(1)
                continue
            batch.append(item)
            written += 1
            if len(batch) == batch_size:
                flush(writer)
        if batch:
            flush(writer)
    bar.close()
    return written


def run_embed(cfg: Stage1Config, *, shard_index: int = 0, num_shards: int = 1, progress: bool = True) -> Dict[str, object]:
    """Embed this shard's images; returns a summary (also written as JSON to the work dir)."""
    start = time.time()
    device = resolve_device(cfg.device)
    model, key = load_model(cfg.model, device=device)
    cache = EmbeddingCache(cfg.cache_dir, key=key, durable=cfg.durable_writes)
    for stale in remove_stale_temp_files(cache.root):
        log.info("removed %s (a temporary file of a killed run)", stale)
    dataset = open_dataset(cfg)
    ids = rank_shard_ids(dataset.ids, shard_index=shard_index, num_shards=num_shards)
    problems: List[Dict[str, str]] = []
    todo = [i for i in ids if not cache.has(i)]
    cached = len(ids) - len(todo)
    todo, empty = images_to_embed(cfg, todo, dataset, problems=problems)
    log.info("embed: %d image(s) in shard %d/%d, %d cached, %d without objects, %d to embed",
             len(ids), shard_index, num_shards, cached, empty, len(todo))
    t0 = time.time()
    written = embed_ids(model, cache, todo, device=device,
                        batch_size=cfg.embed.batch_size, progress=progress, problems=problems,
                        precision=cfg.model.precision)
    seconds = time.time() - t0
    problems_file = cfg.work_path / "logs" / f"embed_shard{shard_index}of{num_shards}.json"
    summary = {
        "problems_file": str(problems_file), "step": "embed", "shard_index": shard_index, "num_shards": num_shards, "images": len(ids),
        "embedded": written, "already_cached": cached, "without_objects": empty, "problems": problems,
        "seconds": round(seconds, 3), "seconds_per_image": round(seconds / max(written, 1), 4),
        "total_seconds": round(time.time() - start, 3), "cache": str(cache.root),
    }
    write_json(problems_file, summary, sort_keys=True)
    return summary


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="wsss-embed", description=__doc__.split("\n\n")[0])
    add_common_arguments(parser)
    add_shard_arguments(parser)
    parser.add_argument("--batch-size", type=int, dest="embed_batch_size", help="images per encoder call")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    setup_logging()

    def body() -> int:
        cfg = config_from_args(args, {"embed.batch_size": args.embed_batch_size})
        s = run_embed(cfg, shard_index=args.shard_index, num_shards=args.num_shards, progress=not args.no_progress)
        print(f"embedded {s['embedded']} image(s) ({s['seconds_per_image']} s/img), {s['already_cached']} already "
              f"cached, {s['without_objects']} without objects, {len(s['problems'])} problem(s) -> {s['cache']}")
        return finish([f"{p['image_id']}: {p['error']}" for p in s["problems"]],
                      what=f"wsss-embed (problems listed in {s['problems_file']})")

    return run_cli(body)


if __name__ == "__main__":
    sys.exit(main())
