"""Per-image preparation shared by train and generate: weak labels -> objects, prompts, constraints.

Every conversion between frames goes through :class:`wsss.core.frames.SamFrame`: prompts
to the SAM input frame (:meth:`~SamFrame.boxes_to_sam`, :meth:`~SamFrame.points_to_sam`), and the
loss's weak labels to the low-res frame once per image (:meth:`~SamFrame.boxes_to_lowres`,
:meth:`~SamFrame.label_map_to_lowres` with ``keep_thin`` for scribbles,
:meth:`~SamFrame.image_to_lowres` for the superpixels, :meth:`~SamFrame.valid_lowres`).

Channels of the class distribution are ``[background, classes of the image's objects]``
(:mod:`stage1_pseudolabel.sam.class_distribution`); scribble pixels and clicks are mapped to those
channels (a click is a one-cell scribble). Scribbles of a class that has no object are left out of
the loss (the image's boxes say there is no such object), with a debug message.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from logic.constraints import CompiledConstraints, ConstraintConfig
from logic.superpixels import compute_superpixels
from wsss.core.frames import SamFrame
from stage1_pseudolabel.pipeline.cache import atomic_torch_save
from stage1_pseudolabel.pipeline.config import Stage1Config
from stage1_pseudolabel.pipeline.config_sections import PromptSection, SuperpixelSection
from stage1_pseudolabel.sam.class_distribution import image_classes, object_channels
from stage1_pseudolabel.sam.prompts import ImageObjects, ObjectPrompts, build_prompts, image_objects
from wsss.core.weak_labels.annotation import ImageAnnotation, select_weak_labels
from wsss.core.weak_labels.classes import IGNORE_INDEX
from wsss.core.datasets import DescribedDataset, dataset_class_names, open_described
from wsss.core.weak_labels.classes import VOC_CLASSES

log = logging.getLogger(__name__)


def open_dataset(cfg: Stage1Config) -> DescribedDataset:
    """The configured dataset (images are only header-read until needed): the one ``cfg.data.dataset``
    describes (VOC 2012's by default), with its root at ``cfg.data.root`` when that is set.

    The formulas of ``cfg.constraints`` are bound to the description's class names.
    """
    data = cfg.data
    dataset = open_described(data.dataset, root=data.root, split=data.split)
    cfg.constraints = cfg.constraints.with_class_names(dataset.classes)
    if data.max_images is not None:
        dataset.ids = dataset.ids[: data.max_images]
    return dataset


@dataclass
class PreparedImage:
    """One image ready for the decoder (and, for training, for the loss).

    Attributes:
        image_id: dataset id.
        frame: the image's SAM frames.
        objects: its objects in the pixel frame.
        classes: ``int64 [K]`` distinct object classes; channel ``k + 1`` is ``classes[k]``.
        channels: ``int64 [N]`` channel of each object.
        prompts: decoder prompts in the SAM input frame.
        constraints: compiled constraints in the low-res frame (training only), or None.
    """

    image_id: str
    frame: SamFrame
    objects: ImageObjects
    classes: torch.Tensor
    channels: torch.Tensor
    prompts: ObjectPrompts
    constraints: Optional[CompiledConstraints] = None
    _device_prompts: Optional[Tuple[str, List]] = field(default=None, init=False, repr=False, compare=False)

    @property
    def num_channels(self) -> int:
        return 1 + len(self.classes)

    def prompt_tensors(self, device) -> List[Tuple[torch.Tensor, int, Tuple]]:
        """The prompt groups (:meth:`~stage1_pseudolabel.sam.prompts.ObjectPrompts.groups`) as
        ``(int64 object indices, number of objects, (boxes, point_coords, point_labels))``, tensors on
        ``device`` (None kept), made once per device: a decoder call on a prepared image copies
        nothing from the host."""
        key = str(torch.device(device))
        if self._device_prompts is None or self._device_prompts[0] != key:
            groups = [(torch.as_tensor(idx, device=device), p.num_objects, p.to_tensors(device))
                      for idx, p in self.prompts.groups()]
            self._device_prompts = (key, groups)
        return self._device_prompts[1]

    def to(self, device) -> "PreparedImage":
        """A copy whose class table, channels and prompt tensors are on ``device``."""
        moved = replace(self, classes=self.classes.to(device), channels=self.channels.to(device))
        moved.prompt_tensors(device)
        return moved


@dataclass(frozen=True)
class ImageInputs:
    """What :func:`prepare_image` and :func:`compile_constraints` read of the config, taken once per run.

    These run once per image, in the main process and in the training pool's worker processes: they
    take this bundle rather than the whole :class:`Stage1Config`, so that their signatures say which
    keys an image's objects, prompts and constraints depend on, and a worker is sent these few
    picklable values. The runners (train, generate) build it once with :meth:`from_config`.

    Attributes:
        prompts: how objects are made and prompted (``cfg.prompts``).
        weak_labels: the weak-label kinds the run uses (``cfg.data.weak_labels``).
        seed: seed of the prompt sampling (``cfg.seed``).
        constraints: the loss's constraints (``cfg.constraints``, whose formulas' class atoms are
            checked against a described dataset's names once :func:`open_dataset` has read it).
        class_names: names of labels ``0..C``, background first (:func:`class_names`).
        superpixels: the SLIC settings (``cfg.superpixels``).
        superpixel_dir: where low-res superpixels are cached (``cfg.lowres_dir``).
        durable_writes: fsync each cached superpixel file (``cfg.durable_writes``).
    """

    prompts: PromptSection
    weak_labels: Tuple[str, ...]
    seed: int
    constraints: ConstraintConfig
    class_names: Tuple[str, ...]
    superpixels: SuperpixelSection
    superpixel_dir: Path
    durable_writes: bool

    @classmethod
    def from_config(cls, cfg: Stage1Config) -> "ImageInputs":
        """The inputs of ``cfg`` (its class names read from the dataset description)."""
        return cls(prompts=cfg.prompts, weak_labels=tuple(cfg.data.weak_labels), seed=cfg.seed,
                   constraints=cfg.constraints, class_names=class_names(cfg), superpixels=cfg.superpixels,
                   superpixel_dir=cfg.lowres_dir, durable_writes=cfg.durable_writes)


def has_objects(ann: ImageAnnotation, *, prompts: PromptSection, weak_labels: Sequence[str]) -> bool:
    """True if the image has an object to prompt for with ``prompts`` and the ``weak_labels`` kinds
    (no prompts are built)."""
    return _objects(select_weak_labels(ann, weak_labels), prompts).num_objects > 0


def _objects(ann: ImageAnnotation, prompts: PromptSection) -> ImageObjects:
    return image_objects(ann, min_box_size=prompts.min_box_size, boxless_objects=prompts.boxless_objects,
                         tag_objects=prompts.tag_objects)


def prepare_image(ann: ImageAnnotation, *, inputs: ImageInputs, encoder_size: int, lowres: int,
                  padded: bool = True) -> PreparedImage:
    """Objects, class channels and prompts of one image (no constraints), from its weak labels of
    ``inputs.weak_labels`` with ``inputs.prompts`` and ``inputs.seed``; ``padded=False`` is SAM 2's
    square geometry (:class:`~wsss.core.frames.SamFrame`, the cache key's ``padded``)."""
    ann = select_weak_labels(ann, inputs.weak_labels)
    frame = SamFrame(height=ann.height, width=ann.width, encoder_size=encoder_size, lowres=lowres, padded=padded)
    settings = inputs.prompts
    objects = _objects(ann, settings)
    classes_t = image_classes(torch.as_tensor(objects.classes))
    prompts = build_prompts(
        ann, objects, frame, mode=settings.mode, num_positive=settings.num_positive,
        num_negative=settings.num_negative, seed=inputs.seed,
    )
    return PreparedImage(
        image_id=ann.image_id, frame=frame, objects=objects, classes=classes_t,
        channels=object_channels(torch.as_tensor(objects.classes), classes_t), prompts=prompts,
    )


def _class_to_channel(classes: torch.Tensor, num_classes: int) -> np.ndarray:
    """Lookup ``uint8 [256]``: label value -> channel (0 -> 0, object classes -> 1..K, else 255)."""
    lut = np.full(256, IGNORE_INDEX, np.uint8)
    lut[0] = 0
    for ch, c in enumerate(classes.tolist(), start=1):
        lut[c] = ch
    return lut


def lowres_scribbles(ann: ImageAnnotation, frame: SamFrame, classes: torch.Tensor) -> Optional[np.ndarray]:
    """Scribbles and clicks in the low-res frame as channel labels (``uint8 [L, L]``, 255 none)."""
    if ann.scribbles is None and len(ann.points) == 0:
        return None
    lut = _class_to_channel(classes, 255)
    # Clicks are drawn into the pixel-frame label map as one-pixel scribbles, so that the one
    # pixel -> low-res conversion (keep_thin keeps them) is SamFrame's.
    merged = (ann.scribbles.copy() if ann.scribbles is not None
              else np.full((ann.height, ann.width), IGNORE_INDEX, np.uint8))
    if len(ann.points):
        xy = np.floor(ann.points).astype(np.int64)
        ok = (xy[:, 0] >= 0) & (xy[:, 0] < ann.width) & (xy[:, 1] >= 0) & (xy[:, 1] < ann.height)
        merged[xy[ok, 1], xy[ok, 0]] = ann.point_classes[ok].astype(np.uint8)
    out = frame.label_map_to_lowres(merged, keep_thin=True)
    mapped = lut[out]
    dropped = (out != IGNORE_INDEX) & (mapped == IGNORE_INDEX)
    if dropped.any():
        log.debug("%s: %d scribble cell(s) of classes %s without an object left out of the loss", ann.image_id,
                  int(dropped.sum()), sorted(set(out[dropped].tolist())))
    return mapped


def superpixel_cache_path(*, cache_dir: Path, image_id: str) -> Path:
    """The cache file of an image's low-res superpixels in ``cache_dir``."""
    return cache_dir / f"{image_id}.pt"


def lowres_superpixels(ann: ImageAnnotation, frame: SamFrame, *, settings: SuperpixelSection, cache_dir: Path,
                       durable: bool) -> np.ndarray:
    """SLIC superpixels (``settings``) of the image in the low-res frame (``int32 [L, L]``, -1 none),
    cached in ``cache_dir`` (each file fsync'ed when ``durable``), reused while settings and frame match."""
    # slic: the valid rectangle is segmented as a crop (logic.superpixels), not through a mask
    slic_settings = dataclasses.asdict(settings)
    stamp = json.dumps(dict(slic_settings, slic="crop", lowres=frame.lowres, encoder_size=frame.encoder_size,
                            hw=[frame.height, frame.width], **({} if frame.padded else {"padded": False})),
                       sort_keys=True)
    path = superpixel_cache_path(cache_dir=cache_dir, image_id=ann.image_id)
    if path.is_file():
        obj = torch.load(path, map_location="cpu", weights_only=True)
        if obj.get("settings") == stamp:
            return obj["superpixels"].numpy()
    image = frame.image_to_lowres(ann.read_image())
    valid = frame.valid_lowres().numpy()
    sp = compute_superpixels(image, valid=valid, **slic_settings).astype(np.int32)
    atomic_torch_save({"superpixels": torch.from_numpy(sp), "settings": stamp}, path, durable=durable)
    return sp


def lowres_box_cover(prepared: PreparedImage) -> torch.Tensor:
    """``bool [L, L]``: low-res cells inside at least one object box (valid cells only)."""
    frame = prepared.frame
    cover = torch.zeros(frame.lowres, frame.lowres, dtype=torch.bool)
    boxed = prepared.objects.boxes[prepared.objects.boxed]
    for x0, y0, x1, y1 in frame.boxes_to_lowres(boxed).tolist() if len(boxed) else []:
        cover[y0:y1, x0:x1] = True
    return cover & frame.valid_lowres()


def compile_constraints(ann: ImageAnnotation, prepared: PreparedImage, *, inputs: ImageInputs,
                        zero_shot_log_probs: Optional[torch.Tensor] = None) -> CompiledConstraints:
    """The image's logic constraints (``inputs.constraints``) over ``[1 + K, L, L]`` in the low-res frame,
    from its weak labels of ``inputs.weak_labels``; formulas' class atoms name ``inputs.class_names``.

    Only the inputs some active constraint needs are computed (superpixels, the image downsampled to
    the low-res frame by :meth:`SamFrame.image_to_lowres`). ``zero_shot_log_probs`` (``[1 + K, L, L]``,
    the untrained decoder's class distribution) feeds the zero-shot anchor. The box constraints see
    the annotated boxes only: without any (objects prompted by scribbles or clicks) they are left out
    (the boxes are None); the classes of box-less objects are passed as ``unboxed_labels``, which the
    background constraint allows outside the boxes.
    """
    ann = select_weak_labels(ann, inputs.weak_labels)
    frame = prepared.frame
    config = inputs.constraints
    need = config.needed_inputs
    boxes = box_channels = object_boxes = None
    boxed = prepared.objects.boxed
    if boxed.any():
        boxes = frame.boxes_to_lowres(prepared.objects.boxes[boxed])
        box_channels = prepared.channels.numpy()[boxed]
        # Instance-aware types index the object distribution [background, objects...] by box: only
        # when every object has a box (a box-less object has no box to be tight in).
        object_boxes = boxes if "objects" in need and boxed.all() else None
    unboxed = sorted(set(prepared.channels.numpy()[~boxed].tolist()))  # never a boxed class (image_objects)
    tags = None
    if ann.tags is not None:  # channels tagged present; an object's class missing from the tags is untagged
        tags = np.isin(np.concatenate([[0], prepared.classes.numpy()]), ann.tags)
    superpixels = (lowres_superpixels(ann, frame, settings=inputs.superpixels, cache_dir=inputs.superpixel_dir,
                                      durable=inputs.durable_writes) if "superpixels" in need else None)
    image = frame.image_to_lowres(ann.read_image()) if "image" in need else None
    return CompiledConstraints.build(
        num_labels=prepared.num_channels,
        boxes=boxes,
        box_classes=box_channels,
        valid=frame.valid_lowres(),
        scribbles=lowres_scribbles(ann, frame, prepared.classes),
        superpixels=superpixels,
        image=image,
        zero_shot_log_probs=None if zero_shot_log_probs is None else zero_shot_log_probs.detach().cpu(),
        object_boxes=object_boxes,
        unboxed_labels=unboxed,
        tags=tags,
        class_names=channel_names(prepared.classes, class_names=inputs.class_names),
        config=config,
    )


def channel_names(classes: torch.Tensor, *, class_names: Sequence[str]) -> Tuple[str, ...]:
    """Name of each channel ``[background, *classes]`` (formulas' class atoms), ``class_names`` naming
    labels ``0..C``."""
    return ("background",) + tuple(class_names[int(c)] for c in classes.tolist())


def class_names(cfg: Stage1Config) -> Tuple[str, ...]:
    """Names of labels ``0..C`` (background first): the dataset description's (VOC 2012's by default)."""
    return _described_class_names(cfg.data.dataset, cfg.data.root)


@functools.lru_cache(maxsize=4)
def _described_class_names(description: Optional[str], root: Optional[str]) -> Tuple[str, ...]:
    """A description's class list, read once per process (``{from: coco}`` parses the COCO file)."""
    if description is None:
        return tuple(VOC_CLASSES)
    return tuple(dataset_class_names(description, root=root))
