"""The training images, prepared once before the first step: objects, prompts, compiled constraints.

Preparing an image (decode it, build objects and prompts, SLIC superpixels, compile its constraints)
is CPU work, a few tenths of a second per image: inside the step loop it would keep a GPU waiting.
:func:`prepare_images` runs it for every image of the run in a pool of worker processes, and
:class:`TrainImages` keeps the results for the whole run (about 0.5 MB of compiled constraints per
image in SAM's 256 x 256 low-res frame: 5 GB for VOC train_aug, on the training device), so a step
only reads embeddings. Constraints that read the untrained decoder's distribution (the zero-shot
anchor) are compiled after the zero-shot pass, in the main process.

The zero-shot pass (the frozen, untrained decoder on every image, batched in the groups of
:func:`zero_shot_groups`) also gives ``fg_in_boxes_zero_shot``, the training log's reference line.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from tqdm import tqdm

from logic.constraints import CompiledConstraints, ConstraintConfig
from wsss.core.frames import SamFrame
from stage1_pseudolabel.pipeline.cache import EmbeddingCache
from stage1_pseudolabel.pipeline.config import Stage1Config
from stage1_pseudolabel.pipeline.io import OrderedProcessPool
from stage1_pseudolabel.pipeline.prepare import (
    ImageInputs,
    PreparedImage,
    compile_constraints,
    lowres_box_cover,
    lowres_superpixels,
    open_dataset,
    prepare_image,
)

log = logging.getLogger(__name__)

ZeroShot = Callable[[List[PreparedImage], List[torch.Tensor]], List[torch.Tensor]]


@dataclass
class TrainItem:
    """One image of a step: its objects, constraints and embedding, all on the training device."""

    prepared: PreparedImage
    constraints: CompiledConstraints
    embedding: torch.Tensor  #: float32 ``[1, C, h, w]`` (an ``ImageFeatures`` where the backend caches more)
    box_cover: torch.Tensor  #: bool ``[L, L]`` cells inside the objects' boxes
    box_cells: int  #: how many (the denominator of fg_in_boxes)
    fg_zero_shot: float  #: foreground fraction of box_cover under the untrained decoder (NaN: none)


@dataclass
class _Prepared:
    prepared: PreparedImage
    constraints: Optional[CompiledConstraints]  # None: compiled after the zero-shot pass
    box_cover: torch.Tensor
    box_cells: int


def reads_zero_shot(*, constraints: ConstraintConfig) -> bool:
    """Whether an active constraint of ``constraints`` reads the untrained decoder's class distribution."""
    return any("zero_shot" in constraints.requires(name) for name in constraints.active)


# -- the pool ----------------------------------------------------------------------------------------
_WORKER: Dict[str, object] = {}


def _init_worker(cfg: Stage1Config, inputs: ImageInputs, encoder_size: int, lowres: int, padded: bool) -> None:
    _WORKER.update(inputs=inputs, dataset=open_dataset(cfg), encoder_size=encoder_size, lowres=lowres,
                   padded=padded)


def _prepare_one(image_id: str) -> Tuple[str, _Prepared]:
    inputs: ImageInputs = _WORKER["inputs"]
    ann = _WORKER["dataset"].load(image_id)
    prepared = prepare_image(ann, inputs=inputs, encoder_size=_WORKER["encoder_size"], lowres=_WORKER["lowres"],
                             padded=_WORKER["padded"])
    after_zero_shot = reads_zero_shot(constraints=inputs.constraints)  # compiled in the main process
    constraints = None if after_zero_shot else compile_constraints(ann, prepared, inputs=inputs)
    cover = lowres_box_cover(prepared)
    return image_id, _Prepared(prepared, constraints, cover, int(cover.sum()))


def _superpixels_one(image_id: str) -> Tuple[str, None]:
    ann = _WORKER["dataset"].load(image_id)
    frame = SamFrame(height=ann.height, width=ann.width, encoder_size=_WORKER["encoder_size"],
                     lowres=_WORKER["lowres"], padded=_WORKER["padded"])
    inputs: ImageInputs = _WORKER["inputs"]
    lowres_superpixels(ann, frame, settings=inputs.superpixels, cache_dir=inputs.superpixel_dir,
                       durable=inputs.durable_writes)
    return image_id, None


def _run_pool(job: Callable, cfg: Stage1Config, ids: Sequence[str], *, encoder_size: int, lowres: int, padded: bool,
              workers: int, progress: bool, desc: str) -> Dict[str, object]:
    bar = tqdm(total=len(ids), desc=desc, unit="img", disable=not progress, dynamic_ncols=True)
    out: Dict[str, object] = {}

    def keep(result: Tuple[str, object]) -> None:
        out[result[0]] = result[1]
        bar.update(1)

    initargs = (cfg, ImageInputs.from_config(cfg), encoder_size, lowres, padded)
    try:
        with OrderedProcessPool(workers, initializer=_init_worker, initargs=initargs) as pool:
            for image_id in ids:
                pool.submit(job, (image_id,), keep)
    finally:
        _WORKER.clear()  # this process's own, when it prepared in-process
        bar.close()
    return out


def prepare_images(cfg: Stage1Config, ids: Sequence[str], *, encoder_size: int, lowres: int, padded: bool,
                   workers: int, progress: bool = False) -> Dict[str, _Prepared]:
    """``{id: prepared}`` of every image, in ``workers`` processes (0 or 1: in this one)."""
    return _run_pool(_prepare_one, cfg, ids, encoder_size=encoder_size, lowres=lowres, padded=padded,
                     workers=workers, progress=progress, desc="prepare")


def prepare_superpixels(cfg: Stage1Config, ids: Sequence[str], *, encoder_size: int, lowres: int, padded: bool,
                        workers: int, progress: bool = False) -> int:
    """Segment ``ids`` into their low-res superpixels (the costly part of preparing an image: SLIC),
    cached on disk, where an active constraint reads them; returns how many images were looked at.
    DDP ranks each do their share, so that each rank's full :func:`prepare_images` reads them."""
    if "superpixels" not in cfg.constraints.needed_inputs:
        return 0
    return len(_run_pool(_superpixels_one, cfg, ids, encoder_size=encoder_size, lowres=lowres, padded=padded,
                         workers=workers, progress=progress, desc="superpixels"))


# -- the images of a run -----------------------------------------------------------------------------
class TrainImages:
    """Every training image of the run, prepared by :meth:`prepare` before the first step.

    ``zero_shot`` maps images (prepared, embedding) to the untrained decoder's ``[1 + K, L, L]`` log
    distributions, in one call for the images of a group: ``groups[i]`` (default: image ``i`` alone)
    are the indices whose zero-shot pass is made together with image ``i``'s.
    """

    def __init__(self, cfg: Stage1Config, ids: List[str], *, dataset, cache: EmbeddingCache, encoder_size: int,
                 lowres: int, device: torch.device, zero_shot: Optional[ZeroShot] = None,
                 groups: Optional[Dict[int, Tuple[int, ...]]] = None) -> None:
        self.cfg, self.ids, self.dataset, self.cache, self.device = cfg, ids, dataset, cache, device
        self.inputs = ImageInputs.from_config(cfg)
        self.encoder_size, self.lowres = encoder_size, lowres
        self.zero_shot = zero_shot
        self.groups = groups or {}
        self._items: Dict[str, Tuple[PreparedImage, CompiledConstraints, torch.Tensor, int, float]] = {}
        self._embeddings: Dict[str, object] = {}  # fp16, on the device, when preloaded
        self.prepare_seconds = 0.0

    def __len__(self) -> int:
        return len(self.ids)

    def _embedding(self, image_id: str, prepared: PreparedImage) -> torch.Tensor:
        kept = self._embeddings.get(image_id)
        if kept is not None:
            return kept.to(dtype=torch.float32)
        return self.cache.load(image_id, height=prepared.frame.height, width=prepared.frame.width,
                               device=self.device, dtype=torch.float32)

    def preload(self, mode: str) -> bool:
        """Keep every embedding on the training device in fp16 (as cached), so that a step reads no
        file: ``device`` always, ``none`` never, ``auto`` on CUDA when they take at most half of its
        free memory (VOC train_aug with ViT-H: 21 GB). Returns whether they were preloaded."""
        shapes = [self.cache.key.embedding_shape] + [shape for _, shape in self.cache.key.extra_shapes]
        need = len(self.ids) * sum(2 * math.prod(shape) for shape in shapes)
        if mode == "auto":
            free = torch.cuda.mem_get_info(self.device)[0] if self.device.type == "cuda" else 0
            if need > free // 2:
                if self.device.type == "cuda":
                    log.warning("embeddings not preloaded: %.1f GB would exceed half of the GPU's %.1f GB free; "
                                "each step reads them from %s", need / 1e9, free / 1e9, self.cache.root)
                return False
        elif mode != "device":
            return False
        for image_id in self.ids:
            prepared = self._items[image_id][0]
            self._embeddings[image_id] = self.cache.load(image_id, height=prepared.frame.height,
                                                         width=prepared.frame.width, device=self.device,
                                                         dtype=torch.float16)
        log.info("preloaded %d embeddings (%.2f GB) on %s", len(self.ids), need / 1e9, self.device)
        return True

    def prepare(self, *, workers: int, progress: bool = False) -> None:
        """Prepare every image (in ``workers`` processes), then run the zero-shot passes group by group."""
        start = time.perf_counter()
        done = prepare_images(self.cfg, self.ids, encoder_size=self.encoder_size, lowres=self.lowres,
                              padded=self.cache.key.padded, workers=workers, progress=progress)
        host = {image_id: item.prepared for image_id, item in done.items()}  # constraints compile from these
        for item in done.values():  # channels and prompt tensors on the device once, not per step
            item.prepared = item.prepared.to(self.device)
        seen = set()
        for i in range(len(self.ids)):
            group = [g for g in self.groups.get(i, (i,)) if g not in seen]
            seen.update(group)
            members = [(self.ids[g], done[self.ids[g]]) for g in group]
            zero_shots = self._zero_shots(members)
            for image_id, item in members:
                z = zero_shots.get(image_id)
                constraints = item.constraints
                if constraints is None:  # it reads the zero-shot distribution
                    constraints = compile_constraints(self.dataset.load(image_id), host[image_id],
                                                      inputs=self.inputs, zero_shot_log_probs=z)
                fg = float("nan") if z is None else foreground_fraction(z, item.box_cover)
                self._items[image_id] = (item.prepared, constraints.to(self.device), item.box_cover.to(self.device),
                                         item.box_cells, fg)
        self.prepare_seconds = time.perf_counter() - start

    def _zero_shots(self, members) -> Dict[str, torch.Tensor]:
        with_objects = [(image_id, item.prepared) for image_id, item in members if item.prepared.objects.num_objects]
        if self.zero_shot is None or not with_objects:
            return {}
        with torch.no_grad():
            dists = self.zero_shot([p for _, p in with_objects], [self._embedding(i, p) for i, p in with_objects])
        return {image_id: d for (image_id, _), d in zip(with_objects, dists)}

    def __getitem__(self, index: int) -> TrainItem:
        image_id = self.ids[index]
        if image_id not in self._items:
            raise KeyError(f"{image_id} was not prepared: call prepare() before the first step")
        prepared, constraints, cover, cells, fg_zero_shot = self._items[image_id]
        return TrainItem(prepared, constraints, self._embedding(image_id, prepared), cover, cells, fg_zero_shot)


def foreground_fraction(log_probs: torch.Tensor, inside: torch.Tensor) -> float:
    """Fraction of the cells ``inside`` (``bool [L, L]``) whose most probable channel is not background
    (``log_probs [1 + K, L, L]``); NaN without such cells."""
    n = int(inside.sum())
    if n == 0:
        return float("nan")
    return float(foreground_cells(log_probs, inside)) / n


def foreground_cells(log_probs: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    """How many cells ``inside`` the most probable channel labels foreground: a device scalar (no sync)."""
    fg = log_probs.detach().argmax(dim=0) != 0
    return (fg & inside.to(fg.device)).sum()
