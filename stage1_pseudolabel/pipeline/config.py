"""Stage-1 configuration: one YAML file per experiment, with command-line overrides.

Precedence (lowest to highest): the dataclass defaults, the YAML file (``--config``) after its
``_base_`` files, the dedicated flags (``--data``, ``--model-type``, ``--epochs`` ...), then
``--cfg-options key=value ...`` / ``--set key=value`` (values parsed as YAML, nested keys with dots:
``--set loss.neighbourhood=0.5``). Unknown keys are errors, so a typo never silently does nothing. The
resolved config is written to the work dir.

Inheritance, as mmengine configs do: ``_base_: voc_box_scribble.yaml`` (or a list, merged in order;
paths relative to the file) is loaded first and the file's own keys are merged over it (mappings
merge key by key, everything else replaces); ``_delete_: true`` inside a mapping replaces the base's
mapping instead of merging into it.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import yaml

from wsss.core.atomic import atomic_write
from wsss.core.cli import add_config_arguments, parse_cfg_options
from wsss.core.yaml_config import load_yaml_with_bases, merge_config
from wsss.core.weak_labels.annotation import DEFAULT_WEAK_LABELS, WEAK_LABEL_KINDS
from stage1_pseudolabel.sam.backends.variants import MODEL_TYPES



@dataclass
class Stage1Config:
    """Every knob of stage 1 (see ``configs/stage1/*.yaml`` for annotated examples)."""

    # -- data ------------------------------------------------------------------------------------
    data: str = "data/VOCdevkit/VOC2012"  #: VOC-layout folder (when no ``dataset`` is given)
    #: dataset description YAML (configs/datasets/*.yaml): images, class list, weak-label sources and
    #: splits of any dataset; when set, ``data``, ``scribble_dir``, ``points_dir``, ``tags_dir`` and
    #: ``num_foreground`` are not used (the description says them)
    dataset: Optional[str] = None
    split: Optional[str] = "train"  #: ImageSets/Segmentation/<split>.txt; null: every JPEG
    max_images: Optional[int] = None  #: only the first N ids of the split (smoke runs)
    work_dir: str = "work_dirs/stage1"
    weak_labels: List[str] = field(default_factory=lambda: list(DEFAULT_WEAK_LABELS))  #: which annotations the run uses
    scribble_dir: str = "scribbles"
    points_dir: str = "points"
    tags_dir: str = "tags"  #: <id>.txt image-level tags (wsss.core.weak_labels.tags), read with weak_labels: [tags]
    no_label_policy: str = "background"  #: images without weak labels: "background" mask or "skip"
    num_foreground: int = 20  #: foreground classes C (labels are 0..C and 255)

    # -- model -----------------------------------------------------------------------------------
    model_type: str = "vit_h"
    checkpoint: Optional[str] = "data/checkpoints/sam_vit_h_4b8939.pth"  #: null/"none": random weights (tests)
    model_kwargs: Dict[str, Any] = field(default_factory=dict)  #: architecture overrides (reduced test models)
    model_seed: int = 0  #: seed of random weights when there is no checkpoint
    device: str = "auto"  #: auto | cpu | cuda | cuda:N
    #: autocast precision of the encoder and decoder in embed / train / generate: fp32 | bf16 | fp16
    #: (the logic loss always runs in fp32; cached embeddings are fp16 whatever this is)
    precision: str = "fp32"
    #: the decoder's autocast while it is fine-tuned (train); null: ``precision``. The encoder's
    #: share of the time is in embed and generate: fp32 here costs little on a GPU
    train_precision: Optional[str] = None
    #: CUDA fp32 matmuls and convolutions in TF32 (10-bit mantissa; Ampere and later): true | false.
    #: Matters for fp32 runs and for what bf16 autocast leaves in fp32; off by default (exact fp32)
    tf32: bool = False
    #: attention of SAM 1 / HQ-SAM's ViT encoder: "eager" (segment_anything's own) or "sdpa"
    #: (torch's scaled_dot_product_attention, the relative-position bias as an attention mask)
    attention: str = "eager"
    compile_encoder: bool = False  #: torch.compile the image encoder (embed / generate; first batch compiles)
    #: images whose objects go through one mask-decoder call (each object attends to its own image's
    #: features; prompt groups of different token counts still make separate calls): train decodes
    #: the images of an optimizer step in calls of up to this many (the default, 8 >= batch_size 4: one
    #: call per step; the frozen zero-shot pass too), generate groups up to this many consecutive
    #: images. 1: one call per image (per prompt kind). Larger keeps a GPU busy with small
    #: images; costs the activation memory of all their objects at once
    decoder_batch_images: int = 8

    # -- prompts ---------------------------------------------------------------------------------
    prompt_mode: str = "both"  #: box | points | both
    num_positive: int = 3
    num_negative: int = 2
    multimask_output: bool = False
    min_box_size: float = 1.0  #: boxes smaller than this (pixels, after clipping) are dropped
    #: scribbles / clicks of a class with no box become an object of that class, prompted by points
    #: (boxes for the large objects, clicks for the small ones); false: they are left out of the loss
    boxless_objects: bool = True
    #: with ``tags`` in weak_labels: the one tagged class of an image that is no other object (no box,
    #: and no scribble or click, or those not made objects: boxless_objects false) becomes an object
    #: prompted by nothing (SAM's no-prompt mask); images with several such classes
    #: leave them out (a prompt could not tell them apart), with a warning
    tag_objects: bool = True

    # -- loss (logic constraints in the low-res frame) -------------------------------------------
    loss: Dict[str, Any] = field(default_factory=dict)  #: weights, options and formulas (logic.constraints.ConstraintConfig)
    custom_imports: List[str] = field(default_factory=list)  #: modules (or .py files) registering constraint types
    superpixels: Dict[str, Any] = field(default_factory=dict)  #: passed to logic.superpixels

    # -- embed -----------------------------------------------------------------------------------
    embed_batch_size: int = 1
    #: fsync every bulk output (cached embeddings, superpixels, pseudo-mask PNGs) and its folder, so
    #: that it survives a power loss; false: each is still renamed into place complete (a killed job
    #: leaves no partial file), without two fsyncs per file. Checkpoints are always fsync'ed
    durable_writes: bool = False

    # -- train -----------------------------------------------------------------------------------
    epochs: int = 4
    max_steps: Optional[int] = None  #: stop after this many optimizer steps (schedule unchanged)
    batch_size: int = 4  #: images per optimizer step (per process)
    lr: float = 1e-5
    weight_decay: float = 1e-4
    warmup_steps: int = 0
    grad_clip: Optional[float] = 1.0
    seed: int = 0
    checkpoint_every: int = 200  #: optimizer steps between checkpoints (and at every epoch end)
    #: processes that prepare the training images (objects, prompts, superpixels, compiled
    #: constraints) once, before the first step; null: one per core of this process's share of the
    #: machine (cores / local ranks, at most 16); 0 or 1: in the training process itself
    prepare_workers: Optional[int] = None
    #: keep the cached embeddings on the training device for the run (fp16): "auto" (on CUDA when
    #: they take at most half its free memory), "device" or "none" (read from disk at every step)
    preload_embeddings: str = "auto"
    train_heads: str = "single"  #: "single": train the single-mask head only; "all": every decoder param
    #: what trains: "decoder" (the mask decoder's parameters, per train_heads) or "lora" (LoRA adapters
    #: of rank lora_rank on the decoder's attention projections; checkpoints then hold only the adapters)
    train_params: str = "decoder"
    lora_rank: int = 8
    lora_alpha: float = 16.0

    # -- generate --------------------------------------------------------------------------------
    confidence_threshold: float = 0.0  #: pixels whose top class probability is below -> 255 (0: off)
    output_dir: Optional[str] = None  #: default <work_dir>/pseudo_masks (zero-shot: zeroshot_<prompt_mode>)
    decoder_checkpoint: Optional[str] = None  #: default <work_dir>/decoder/final.pth
    embed_missing: bool = True  #: generate computes (and caches) embeddings that are missing
    #: processes that run the dense CRF (with ``crf`` set) and read its masks, in image order; null:
    #: one per core of this process's share of the machine (at most 16); 0 or 1: in generate itself
    crf_workers: Optional[int] = None
    #: dense-CRF refinement of the pixel class distribution before the argmax: null (off), or a
    #: mapping of :class:`wsss.core.crf.CRFParams` fields (``{}``: DeepLab's VOC defaults)
    crf: Optional[Dict[str, Any]] = None
    #: also write instance pseudo-labels (COCO JSON with RLE masks, one file per shard under
    #: ``<work_dir>/instances/``; see :mod:`wsss.core.instances`)
    instances: bool = False
    diagnostics: bool = False  #: generate also writes where each constraint is violated (low-res maps)

    # -- derived paths ----------------------------------------------------------------------------
    @property
    def work_path(self) -> Path:
        return Path(self.work_dir)

    @property
    def cache_dir(self) -> Path:
        return self.work_path / "embeddings"

    @property
    def lowres_dir(self) -> Path:
        return self.work_path / "lowres_labels"

    @property
    def decoder_dir(self) -> Path:
        return self.work_path / "decoder"

    @property
    def train_log(self) -> Path:
        return self.work_path / "train_log.jsonl"

    def output_path(self, *, zero_shot: bool) -> Path:
        if self.output_dir:
            return Path(self.output_dir)
        return self.work_path / (f"zeroshot_{self.prompt_mode}" if zero_shot else "pseudo_masks")

    def diagnostics_path(self, *, zero_shot: bool) -> Path:
        """Per-image violation maps: ``<work_dir>/diagnostics/<mask folder name>/<id>.npz``."""
        return self.work_path / "diagnostics" / self.output_path(zero_shot=zero_shot).name

    def instances_path(self, *, zero_shot: bool, shard_index: int = 0, num_shards: int = 1, rank: int = 0,
                       world_size: int = 1) -> Path:
        """This shard's instance file: ``<work_dir>/instances/<mask folder name>.shard<i>of<N>.json``
        (``.rank<r>of<W>`` added under torchrun, where each rank writes its own)."""
        name = f"{self.output_path(zero_shot=zero_shot).name}.shard{shard_index}of{num_shards}"
        if world_size > 1:
            name += f".rank{rank}of{world_size}"
        return self.work_path / "instances" / f"{name}.json"

    def decoder_path(self) -> Path:
        return Path(self.decoder_checkpoint) if self.decoder_checkpoint else self.decoder_dir / "final.pth"

    @property
    def checkpoint_path(self) -> Optional[Path]:
        if self.checkpoint in (None, "", "none", "None", "null"):
            return None
        return Path(self.checkpoint)

    def validate(self) -> "Stage1Config":
        from logic.constraints import ConstraintConfig
        from stage1_pseudolabel.sam.prompts import PROMPT_MODES
        from stage1_pseudolabel.sam.precision import PRECISIONS

        import_custom_modules(self.custom_imports)
        if not isinstance(self.loss, dict):
            raise ValueError(f"loss must be a mapping of constraint weights and options, got {self.loss!r}")
        try:
            ConstraintConfig.from_dict(self.loss)  # refuses unknown names and bad formulas before any work
        except ValueError as exc:
            raise ValueError(f"config key loss: {exc}") from None

        bad = [k for k in self.weak_labels if k not in WEAK_LABEL_KINDS]
        if bad:
            raise ValueError(f"weak_labels: unknown kind(s) {bad}; choose from {WEAK_LABEL_KINDS}")
        if self.prompt_mode not in PROMPT_MODES:
            raise ValueError(f"prompt_mode must be one of {PROMPT_MODES}, got {self.prompt_mode!r}")
        if self.model_type not in MODEL_TYPES:
            raise ValueError(f"model_type must be one of {MODEL_TYPES}, got {self.model_type!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.train_precision not in (None, *PRECISIONS):
            raise ValueError(f"train_precision must be null or one of {PRECISIONS}, got {self.train_precision!r}")
        if self.attention not in ("eager", "sdpa"):
            raise ValueError(f"attention must be 'eager' or 'sdpa', got {self.attention!r}")
        if self.preload_embeddings not in ("auto", "device", "none"):
            raise ValueError(f"preload_embeddings must be 'auto', 'device' or 'none', got {self.preload_embeddings!r}")
        for name in ("prepare_workers", "crf_workers"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 or null, got {getattr(self, name)}")
        if self.no_label_policy not in ("background", "skip"):
            raise ValueError(f"no_label_policy must be 'background' or 'skip', got {self.no_label_policy!r}")
        if self.train_params not in ("decoder", "lora") or self.lora_rank < 1:
            raise ValueError(f"train_params must be 'decoder' or 'lora' (lora_rank >= 1), got {self.train_params!r}")
        if self.train_heads not in ("single", "all"):
            raise ValueError(f"train_heads must be 'single' or 'all', got {self.train_heads!r}")
        if not 0.0 <= self.confidence_threshold < 1.0:
            raise ValueError(f"confidence_threshold must be in [0, 1), got {self.confidence_threshold}")
        if self.decoder_batch_images < 1:
            raise ValueError(f"decoder_batch_images must be >= 1, got {self.decoder_batch_images}")
        if self.batch_size < 1 or self.epochs < 0 or self.checkpoint_every < 1:
            raise ValueError("batch_size and checkpoint_every must be >= 1 and epochs >= 0")
        if self.crf is not None:
            from wsss.core.crf import crf_params

            if not isinstance(self.crf, dict):
                raise ValueError(f"crf must be null or a mapping of CRF parameters, got {self.crf!r}")
            crf_params(self.crf, where="stage-1 config key crf")
        return self

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: Path) -> None:
        with atomic_write(path, durable=False) as handle:
            handle.write(yaml.safe_dump(self.to_dict(), sort_keys=False).encode())


def import_custom_modules(names: Sequence[str]) -> None:
    """Import the config's ``custom_imports`` (module names, or paths of ``.py`` files), so that the
    constraint types they register (:func:`logic.constraints.register_constraint`) can be named in
    ``loss``; as mmengine's ``custom_imports``. Importing twice is a no-op."""
    for name in names:
        try:
            if name.endswith(".py"):
                path = Path(name).resolve()
                if not path.is_file():
                    raise FileNotFoundError(f"no such file {path}")
                module_name = f"wsss_custom_{path.stem}_{abs(hash(str(path))) % 10**8}"
                if module_name in sys.modules:
                    continue
                spec = importlib.util.spec_from_file_location(module_name, path)
                module = importlib.util.module_from_spec(spec)
                sys.modules[module_name] = module
                spec.loader.exec_module(module)  # type: ignore[union-attr]
            else:
                importlib.import_module(name)
        except Exception as exc:  # any failure of the user's module is a config error naming it
            sys.modules.pop(locals().get("module_name", ""), None)
            raise ImportError(f"custom_imports: cannot import {name!r}: {type(exc).__name__}: {exc}") from exc


def load_yaml_config(path: Path) -> Dict[str, Any]:
    """A stage-1 YAML file with its ``_base_`` files merged under it (bases first, in list order)."""
    return load_yaml_with_bases(
        path, kind="a stage-1 config",
        missing=lambda p: FileNotFoundError(f"config file {p} not found"),
        error=lambda p, message: ValueError(f"{p}: {message}"),
    )


def build_config(
    *,
    config_file: Optional[str] = None,
    overrides: Optional[Dict[str, Any]] = None,
    cfg_options: Sequence[str] = (),
) -> Stage1Config:
    """Defaults <- YAML file (with its bases) <- ``overrides`` (flags) <- ``cfg_options`` (``key=value``)."""
    values: Dict[str, Any] = dataclasses.asdict(Stage1Config())
    if config_file:
        values = merge_config(values, load_yaml_config(Path(config_file)))
    values = merge_config(values, {k: v for k, v in (overrides or {}).items() if v is not None})
    values = merge_config(values, parse_cfg_options(cfg_options))
    names = {f.name for f in dataclasses.fields(Stage1Config)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"unknown stage-1 config key(s): {', '.join(unknown)}; valid keys: {', '.join(sorted(names))}")
    for f in dataclasses.fields(Stage1Config):
        values[f.name] = _coerce(f.name, str(f.type), values[f.name])
    return Stage1Config(**values).validate()


def _coerce(name: str, annotation: str, value: Any) -> Any:
    """YAML 1.1 reads ``1e-4`` as a string: turn numeric strings into the field's number type."""
    if isinstance(value, str) and value.lower() not in ("none", "null"):
        for kind, cast in (("float", float), ("int", int)):
            if kind in annotation and "str" not in annotation:
                try:
                    return cast(value)
                except ValueError:
                    raise ValueError(f"config key {name}: expected a {kind}, got {value!r}") from None
    return value


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags every stage-1 CLI shares (those of the Makefile's ``STAGE1_COMMON``)."""
    add_config_arguments(parser, config_help="YAML config (configs/stage1/*.yaml)")
    parser.add_argument("--data", help="VOC-layout dataset folder")
    parser.add_argument("--dataset", help="dataset description YAML (configs/datasets/*.yaml); replaces --data")
    parser.add_argument("--split", help="id list under ImageSets/Segmentation ('all' for every JPEG)")
    parser.add_argument("--work-dir", dest="work_dir", help="where caches, checkpoints, logs and masks go")
    parser.add_argument("--model-type", dest="model_type", help=" | ".join(MODEL_TYPES))
    parser.add_argument("--checkpoint", help="SAM checkpoint file ('none': random weights, for tests only)")
    parser.add_argument("--prompt-mode", dest="prompt_mode", choices=("box", "points", "both"))
    parser.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    # Every step takes it, so one STAGE1_ARGS=--resume serves `make stage1`: embed and generate always
    # resume (what exists is kept); train continues from <work_dir>/decoder/last.pth.
    parser.add_argument("--resume", action="store_true",
                        help="train: continue from <work_dir>/decoder/last.pth; embed/generate always resume")


def config_from_args(args: argparse.Namespace, extra: Optional[Dict[str, Any]] = None) -> Stage1Config:
    """The config of a CLI call: ``--config`` file, then the flags, then ``--cfg-options`` / ``--set``."""
    keys = ("data", "dataset", "split", "work_dir", "model_type", "checkpoint", "prompt_mode", "device")
    flags = {k: getattr(args, k, None) for k in keys}
    cfg = build_config(config_file=args.config, overrides={**flags, **(extra or {})},
                       cfg_options=args.cfg_options or ())
    if cfg.split == "all":
        cfg.split = None
    return cfg
