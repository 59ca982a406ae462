"""Stage-1 configuration: one YAML file per experiment, with command-line overrides.

Precedence (lowest to highest): the dataclass defaults, the YAML file (``--config``), the dedicated
flags (``--data``, ``--model-type``, ``--epochs`` ...), then ``--set key=value`` (repeatable; values
are parsed as YAML, nested keys with dots: ``--set loss.weights.neighbourhood=0.5``). Unknown keys are
errors, so a typo never silently does nothing. The resolved config is written to the work dir.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import yaml

from stage1_pseudolabel.atomic import atomic_write

WEAK_LABEL_KINDS = ("boxes", "scribbles", "points")


@dataclass
class Stage1Config:
    """Every knob of stage 1 (see ``configs/stage1/*.yaml`` for annotated examples)."""

    # -- data ------------------------------------------------------------------------------------
    data: str = "data/VOCdevkit/VOC2012"  #: VOC-layout folder
    split: Optional[str] = "train"  #: ImageSets/Segmentation/<split>.txt; null: every JPEG
    max_images: Optional[int] = None  #: only the first N ids of the split (smoke runs)
    work_dir: str = "work_dirs/stage1"
    weak_labels: List[str] = field(default_factory=lambda: list(WEAK_LABEL_KINDS))  #: which annotations the run uses
    scribble_dir: str = "scribbles"
    points_dir: str = "points"
    no_label_policy: str = "background"  #: images without weak labels: "background" mask or "skip"
    num_classes: int = 20

    # -- model -----------------------------------------------------------------------------------
    model_type: str = "vit_h"
    checkpoint: Optional[str] = "data/checkpoints/sam_vit_h_4b8939.pth"  #: null/"none": random weights (tests)
    model_kwargs: Dict[str, Any] = field(default_factory=dict)  #: architecture overrides (reduced test models)
    model_seed: int = 0  #: seed of random weights when there is no checkpoint
    device: str = "auto"  #: auto | cpu | cuda | cuda:N

    # -- prompts ---------------------------------------------------------------------------------
    prompt_mode: str = "both"  #: box | points | both
    num_positive: int = 3
    num_negative: int = 2
    multimask_output: bool = False
    min_box_size: float = 1.0  #: boxes smaller than this (pixels, after clipping) are dropped

    # -- loss (logic constraints in the low-res frame) -------------------------------------------
    loss: Dict[str, Any] = field(default_factory=dict)  #: passed to the logic constraint builder
    superpixels: Dict[str, Any] = field(default_factory=dict)  #: passed to logic.superpixels

    # -- embed -----------------------------------------------------------------------------------
    embed_batch_size: int = 1

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
    train_heads: str = "single"  #: "single": train the single-mask head only; "all": every decoder param

    # -- generate --------------------------------------------------------------------------------
    confidence_threshold: float = 0.0  #: pixels whose top class probability is below -> 255 (0: off)
    output_dir: Optional[str] = None  #: default <work_dir>/pseudo_masks (zero-shot: zeroshot_<prompt_mode>)
    decoder_checkpoint: Optional[str] = None  #: default <work_dir>/decoder/final.pth
    embed_missing: bool = True  #: generate computes (and caches) embeddings that are missing
    #: dense-CRF refinement of the pixel class distribution before the argmax: null (off), or a
    #: mapping of :class:`stage1_pseudolabel.crf.CRFParams` fields (``{}``: DeepLab's VOC defaults)
    crf: Optional[Dict[str, Any]] = None

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

    def decoder_path(self) -> Path:
        return Path(self.decoder_checkpoint) if self.decoder_checkpoint else self.decoder_dir / "final.pth"

    @property
    def checkpoint_path(self) -> Optional[Path]:
        if self.checkpoint in (None, "", "none", "None", "null"):
            return None
        return Path(self.checkpoint)

    def validate(self) -> "Stage1Config":
        from stage1_pseudolabel.sam.prompts import PROMPT_MODES
        from stage1_pseudolabel.sam.registry import MODEL_TYPES

        bad = [k for k in self.weak_labels if k not in WEAK_LABEL_KINDS]
        if bad:
            raise ValueError(f"weak_labels: unknown kind(s) {bad}; choose from {WEAK_LABEL_KINDS}")
        if self.prompt_mode not in PROMPT_MODES:
            raise ValueError(f"prompt_mode must be one of {PROMPT_MODES}, got {self.prompt_mode!r}")
        if self.model_type not in MODEL_TYPES:
            raise ValueError(f"model_type must be one of {MODEL_TYPES}, got {self.model_type!r}")
        if self.no_label_policy not in ("background", "skip"):
            raise ValueError(f"no_label_policy must be 'background' or 'skip', got {self.no_label_policy!r}")
        if self.train_heads not in ("single", "all"):
            raise ValueError(f"train_heads must be 'single' or 'all', got {self.train_heads!r}")
        if not 0.0 <= self.confidence_threshold < 1.0:
            raise ValueError(f"confidence_threshold must be in [0, 1), got {self.confidence_threshold}")
        if self.batch_size < 1 or self.epochs < 0 or self.checkpoint_every < 1:
            raise ValueError("batch_size and checkpoint_every must be >= 1 and epochs >= 0")
        if self.crf is not None:
            from stage1_pseudolabel.crf import crf_params

            if not isinstance(self.crf, dict):
                raise ValueError(f"crf must be null or a mapping of CRF parameters, got {self.crf!r}")
            crf_params(self.crf, where="stage-1 config key crf")
        return self

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: Path) -> None:
        with atomic_write(path, durable=False) as handle:
            handle.write(yaml.safe_dump(self.to_dict(), sort_keys=False).encode())


def _set_nested(target: Dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    for key in keys[:-1]:
        target = target.setdefault(key, {})
        if not isinstance(target, dict):
            raise ValueError(f"--set {dotted}: {key} is not a mapping")
    target[keys[-1]] = value


def merge_config(base: Dict[str, Any], overrides: Dict[str, Any]) -> Dict[str, Any]:
    """Recursive dict merge (mappings merge, everything else replaces)."""
    out = dict(base)
    for k, v in overrides.items():
        out[k] = merge_config(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def build_config(
    *,
    config_file: Optional[str] = None,
    overrides: Optional[Dict[str, Any]] = None,
    sets: Sequence[str] = (),
) -> Stage1Config:
    """Defaults <- YAML file <- ``overrides`` (flags) <- ``sets`` (``key=value`` strings)."""
    values: Dict[str, Any] = dataclasses.asdict(Stage1Config())
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} not found")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: a stage-1 config must be a YAML mapping")
        values = merge_config(values, loaded)
    values = merge_config(values, {k: v for k, v in (overrides or {}).items() if v is not None})
    for item in sets:
        if "=" not in item:
            raise ValueError(f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        nested: Dict[str, Any] = {}
        _set_nested(nested, key.strip(), yaml.safe_load(raw))
        values = merge_config(values, nested)
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
    parser.add_argument("--config", help="YAML config (configs/stage1/*.yaml)")
    parser.add_argument("--data", help="VOC-layout dataset folder")
    parser.add_argument("--split", help="id list under ImageSets/Segmentation ('all' for every JPEG)")
    parser.add_argument("--work-dir", dest="work_dir", help="where caches, checkpoints, logs and masks go")
    parser.add_argument("--model-type", dest="model_type", help="vit_h | vit_l | vit_b | vit_t | proxy")
    parser.add_argument("--checkpoint", help="SAM checkpoint file ('none': random weights, for tests only)")
    parser.add_argument("--prompt-mode", dest="prompt_mode", choices=("box", "points", "both"))
    parser.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config key (YAML value; dotted keys for nested mappings); repeatable")


def add_shard_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--shard-index", type=int, default=0, help="this job's shard, 0..num_shards-1")
    parser.add_argument("--num-shards", type=int, default=1, help="how many shards split the image list")


def config_from_args(args: argparse.Namespace, extra: Optional[Dict[str, Any]] = None) -> Stage1Config:
    """The config of a CLI call: ``--config`` file, then the flags, then ``--set``."""
    keys = ("data", "split", "work_dir", "model_type", "checkpoint", "prompt_mode", "device")
    flags = {k: getattr(args, k, None) for k in keys}
    cfg = build_config(config_file=args.config, overrides={**flags, **(extra or {})}, sets=args.sets)
    if cfg.split == "all":
        cfg.split = None
    return cfg

