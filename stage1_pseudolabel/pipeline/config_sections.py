"""The sections of the stage-1 config, one typed dataclass each, and how a YAML mapping becomes one.

A section is written in YAML as a mapping (``train: {lr: 1.0e-4, epochs: 4}``); :func:`build_section`
turns it into the section's dataclass, refusing an unknown key (the known keys listed) and a value of
the wrong type, and the section's ``check`` refuses values out of range. Keys are named
``section.key`` in messages, in ``--cfg-options`` and in docs/config.md.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from logic.superpixels import DEFAULT_COMPACTNESS, DEFAULT_N_SEGMENTS, DEFAULT_SIGMA
from wsss.core.weak_labels.annotation import DEFAULT_WEAK_LABELS, WEAK_LABEL_KINDS
from stage1_pseudolabel.sam.backends.variants import MODEL_TYPES
from stage1_pseudolabel.sam.precision import PRECISIONS
from stage1_pseudolabel.sam.prompts import PROMPT_MODES


def _choice(where: str, value: Any, choices: typing.Sequence[Any]) -> None:
    if value not in choices:
        raise ValueError(f"config key {where} must be one of {list(choices)}, got {value!r}")


def _at_least(where: str, value: Optional[float], low: float, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if value is None or value < low:
        raise ValueError(f"config key {where} must be >= {low:g}{' or null' if optional else ''}, got {value!r}")


@dataclass(kw_only=True)
class DataSection:
    """Which images and weak labels a run reads."""

    #: dataset description YAML (configs/datasets/*.yaml): images, class list, weak-label sources,
    #: ground truth and splits; null: PASCAL VOC 2012 (configs/datasets/voc2012.yaml)
    dataset: Optional[str] = None
    #: the dataset's folder, in place of the description's ``root`` (``--data DIR``); null: the description's
    root: Optional[str] = None
    #: a split the description names (VOC: train, val, trainval, train_aug, test); null: every annotated image
    split: Optional[str] = "train"
    max_images: Optional[int] = None  #: only the first N ids of the split (smoke runs)
    weak_labels: List[str] = field(default_factory=lambda: list(DEFAULT_WEAK_LABELS))  #: which annotations the run uses
    no_label_policy: str = "background"  #: images without weak labels: "background" mask or "skip"

    #: keys a dataset description holds, and where
    DESCRIBED: typing.ClassVar[Dict[str, str]] = {
        **{k: "a weak-label source of the dataset description (sources: [{format: ..., path: ...}])"
           for k in ("scribble_dir", "points_dir", "tags_dir")},
        "num_foreground": "the dataset description's class list (classes: [...])",
    }

    def check(self) -> None:
        bad = [k for k in self.weak_labels if k not in WEAK_LABEL_KINDS]
        if bad:
            raise ValueError(f"config key data.weak_labels: unknown kind(s) {bad}; choose from {list(WEAK_LABEL_KINDS)}")
        _choice("data.no_label_policy", self.no_label_policy, ("background", "skip"))
        _at_least("data.max_images", self.max_images, 0, optional=True)


@dataclass(kw_only=True)
class ModelSection:
    """The SAM variant, its weights and how it runs."""

    #: the SAM variant and its backend: a row of the variant table
    #: (``python -m stage1_pseudolabel.sam.backends.variants --list`` prints them)
    type: str = "vit_h"
    checkpoint: Optional[str] = "data/checkpoints/sam_vit_h_4b8939.pth"  #: null/"none": random weights (tests)
    kwargs: Dict[str, Any] = field(default_factory=dict)  #: architecture overrides (reduced test models)
    seed: int = 0  #: seed of random weights when there is no checkpoint
    #: autocast precision of the encoder and decoder in embed / train / generate: fp32 | bf16 | fp16
    #: (the logic loss always runs in fp32; cached embeddings are fp16 whatever this is)
    precision: str = "fp32"
    #: CUDA fp32 matmuls and convolutions in TF32 (10-bit mantissa; Ampere and later): true | false.
    #: Matters for fp32 runs and for what bf16 autocast leaves in fp32; off by default (exact fp32)
    tf32: bool = False
    #: attention of SAM 1 / HQ-SAM's ViT encoder: "eager" (segment_anything's own) or "sdpa"
    #: (torch's scaled_dot_product_attention, the relative-position bias as an attention mask)
    attention: str = "eager"
    compile_encoder: bool = False  #: torch.compile the image encoder (embed / generate; first batch compiles)
    #: images whose objects go through one mask-decoder call (each object attends to its own image's
    #: features; prompt groups of different token counts still make separate calls): train decodes
    #: the images of an optimizer step in calls of up to this many (the default, 8 >= train.batch_size
    #: 4: one call per step; the frozen zero-shot pass too), generate groups up to this many
    #: consecutive images. 1: one call per image (per prompt kind). Larger keeps a GPU busy with small
    #: images; costs the activation memory of all their objects at once
    decoder_batch_images: int = 8

    @property
    def checkpoint_path(self) -> Optional[Path]:
        """The checkpoint file; None for random weights (``checkpoint`` null or "none")."""
        if self.checkpoint in (None, "", "none", "None", "null"):
            return None
        return Path(self.checkpoint)

    def check(self) -> None:
        _choice("model.type", self.type, MODEL_TYPES)
        _choice("model.precision", self.precision, PRECISIONS)
        _choice("model.attention", self.attention, ("eager", "sdpa"))
        _at_least("model.decoder_batch_images", self.decoder_batch_images, 1)


@dataclass(kw_only=True)
class PromptSection:
    """How an image's objects are found and prompted."""

    mode: str = "both"  #: box | points | both
    #: most positive points per object: its clicks, then scribble pixels of its class in its box
    num_positive: int = 3
    #: most negative points per object: clicks and scribble pixels of other labels in its box
    num_negative: int = 2
    multimask_output: bool = False  #: decode SAM's three masks per object and keep the one of highest predicted IoU
    min_box_size: float = 1.0  #: boxes smaller than this (pixels, after clipping) are dropped
    #: scribbles / clicks of a class with no box become an object of that class, prompted by points
    #: (boxes for the large objects, clicks for the small ones); false: they are left out of the loss
    boxless_objects: bool = True
    #: with ``tags`` in data.weak_labels: the one tagged class of an image that is no other object (no
    #: box, and no scribble or click, or those not made objects: boxless_objects false) becomes an
    #: object prompted by nothing (SAM's no-prompt mask); images with several such classes leave them
    #: out (a prompt could not tell them apart), with a warning
    tag_objects: bool = True

    def check(self) -> None:
        _choice("prompts.mode", self.mode, PROMPT_MODES)
        _at_least("prompts.num_positive", self.num_positive, 0)
        _at_least("prompts.num_negative", self.num_negative, 0)


@dataclass(kw_only=True)
class SuperpixelSection:
    """SLIC settings of the superpixels the border-precision constraint reads (logic.superpixels)."""

    n_segments: int = DEFAULT_N_SEGMENTS  #: approximate number of superpixels over the image's low-res cells
    compactness: float = DEFAULT_COMPACTNESS  #: SLIC colour/space trade-off (higher: more regular segments)
    sigma: float = DEFAULT_SIGMA  #: Gaussian pre-smoothing width in low-res cells

    def check(self) -> None:
        _at_least("superpixels.n_segments", self.n_segments, 1)
        if self.compactness <= 0 or self.sigma < 0:
            raise ValueError(f"config key superpixels: compactness must be > 0 and sigma >= 0, got {self}")


@dataclass(kw_only=True)
class EmbedSection:
    """The image-encoder pass (wsss-embed)."""

    batch_size: int = 1  #: images per encoder call (``--batch-size`` of wsss-embed)

    def check(self) -> None:
        _at_least("embed.batch_size", self.batch_size, 1)


@dataclass(kw_only=True)
class TrainSection:
    """Fine-tuning of the mask decoder under the logic loss (wsss-train)."""

    epochs: int = 4  #: fine-tuning epochs over the split
    max_steps: Optional[int] = None  #: stop after this many optimizer steps (schedule unchanged)
    batch_size: int = 4  #: images per optimizer step (per process)
    lr: float = 1e-5  #: AdamW learning rate of the decoder
    weight_decay: float = 1e-4  #: AdamW weight decay
    warmup_steps: int = 0  #: linear learning-rate warm-up steps
    grad_clip: Optional[float] = 1.0  #: gradient-norm clip (null: off)
    checkpoint_every: int = 200  #: optimizer steps between checkpoints (and at every epoch end)
    #: processes that prepare the training images (objects, prompts, superpixels, compiled
    #: constraints) once, before the first step; null: one per core of this process's share of the
    #: machine (cores / local ranks, at most 16); 0 or 1: in the training process itself
    prepare_workers: Optional[int] = None
    #: keep the cached embeddings on the training device for the run (fp16): "auto" (on CUDA when
    #: they take at most half its free memory), "device" or "none" (read from disk at every step)
    preload_embeddings: str = "auto"
    heads: str = "single"  #: "single": train the single-mask head only; "all": every decoder param
    #: what trains: "decoder" (the mask decoder's parameters, per ``heads``) or "lora" (LoRA adapters
    #: of rank lora_rank on the decoder's attention projections; checkpoints then hold only the adapters)
    params: str = "decoder"
    lora_rank: int = 8  #: LoRA rank (with ``params: lora``)
    lora_alpha: float = 16.0  #: LoRA scaling alpha (with ``params: lora``)
    #: the decoder's autocast while it is fine-tuned; null: ``model.precision``. The encoder's share of
    #: the time is in embed and generate: fp32 here costs little on a GPU
    precision: Optional[str] = None

    def check(self) -> None:

        _at_least("train.epochs", self.epochs, 0)
        _at_least("train.max_steps", self.max_steps, 0, optional=True)
        _at_least("train.batch_size", self.batch_size, 1)
        _at_least("train.checkpoint_every", self.checkpoint_every, 1)
        _at_least("train.warmup_steps", self.warmup_steps, 0)
        _at_least("train.lr", self.lr, 0)
        _at_least("train.prepare_workers", self.prepare_workers, 0, optional=True)
        _at_least("train.lora_rank", self.lora_rank, 1)
        _choice("train.preload_embeddings", self.preload_embeddings, ("auto", "device", "none"))
        _choice("train.heads", self.heads, ("single", "all"))
        _choice("train.params", self.params, ("decoder", "lora"))
        _choice("train.precision", self.precision, (None, *PRECISIONS))


@dataclass(kw_only=True)
class GenerateSection:
    """Pseudo-mask generation (wsss-generate)."""

    confidence_threshold: float = 0.0  #: pixels whose top class probability is below -> 255 (0: off)
    output_dir: Optional[str] = None  #: default <work_dir>/pseudo_masks (zero-shot: zeroshot_<prompts.mode>)
    decoder_checkpoint: Optional[str] = None  #: default <work_dir>/decoder/final.pth
    embed_missing: bool = True  #: generate computes (and caches) embeddings that are missing
    #: processes that run the dense CRF (with ``crf`` set) and read its masks, in image order; null:
    #: one per core of this process's share of the machine (at most 16); 0 or 1: in generate itself
    crf_workers: Optional[int] = None
    #: also write instance pseudo-labels (COCO JSON with RLE masks, one file per shard under
    #: ``<work_dir>/instances/``; see :mod:`wsss.core.instances`)
    instances: bool = False
    diagnostics: bool = False  #: also write where each constraint is violated (low-res maps)

    def check(self) -> None:
        if not 0.0 <= self.confidence_threshold < 1.0:
            raise ValueError(f"config key generate.confidence_threshold must be in [0, 1), got {self.confidence_threshold}")
        _at_least("generate.crf_workers", self.crf_workers, 0, optional=True)


# -- building a section from a mapping ---------------------------------------------------------------
def build_section(cls: type, values: Any, where: str) -> Any:
    """The section ``cls`` from a YAML mapping: unknown keys and ill-typed values are refused, naming
    ``where.key`` and the section's known keys; the section's ``check`` then sees its values."""
    if isinstance(values, cls):
        values = dataclasses.asdict(values)
    if not isinstance(values, Mapping):
        raise ValueError(f"config key {where} is a section: a mapping of {', '.join(section_keys(cls))}; "
                         f"got {values!r}")
    unknown = sorted(set(values) - set(section_keys(cls)))
    described = [k for k in unknown if k in getattr(cls, "DESCRIBED", {})]
    if described:
        key = described[0]
        raise ValueError(f"config key {where}.{key} is {cls.DESCRIBED[key]}: write a description that inherits "
                         f"configs/datasets/voc2012.yaml (_base_: voc2012.yaml) and set {where}.dataset to it")
    if unknown:
        raise ValueError(f"unknown config key(s) {', '.join(f'{where}.{k}' for k in unknown)}; "
                         f"known keys of {where}: {', '.join(section_keys(cls))}")
    hints = typing.get_type_hints(cls)
    section = cls(**{k: coerce(f"{where}.{k}", hints[k], v) for k, v in values.items()})
    check = getattr(section, "check", None)
    if check is not None:
        check()
    return section


def section_keys(cls: type) -> List[str]:
    return [f.name for f in dataclasses.fields(cls)]


def coerce(where: str, hint: Any, value: Any) -> Any:
    """``value`` as the type ``hint`` says (a YAML 1.1 string like ``1e-4`` becomes the number; an int
    where a float goes becomes a float), or a ``ValueError`` naming ``where``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return coerce(where, inner[0], value)
    if hint is Any:
        return value
    if origin in (list, List):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"config key {where}: expected a list, got {value!r}")
        return [coerce(where, args[0], v) for v in value] if args else list(value)
    if origin in (dict, Dict):
        if not isinstance(value, Mapping):
            raise ValueError(f"config key {where}: expected a mapping, got {value!r}")
        return dict(value)
    return _scalar(where, hint, value)


def _scalar(where: str, hint: type, value: Any) -> Any:
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint in (int, float):
        if isinstance(value, str):
            try:
                value = hint(value)
            except ValueError:
                pass
        if isinstance(value, int) and not isinstance(value, bool):
            return hint(value)
        if isinstance(value, float) and (hint is float or value.is_integer()):
            return hint(value)
    elif hint is str:
        if isinstance(value, str):
            return value
    else:
        return value
    raise ValueError(f"config key {where}: expected {'an' if hint is int else 'a'} {hint.__name__}, got {value!r}")
