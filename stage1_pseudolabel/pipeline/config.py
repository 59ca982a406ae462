"""Stage-1 configuration: one YAML file per experiment, in typed sections, with command-line overrides.

:class:`Stage1Config` holds the run-wide keys and the sections
(:mod:`~stage1_pseudolabel.pipeline.config_sections`, each checked when the config is built);
:func:`build_config` merges the defaults, the YAML file after its ``_base_`` files, the flags and
``--cfg-options``. Keys, precedence and inheritance: docs/config.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import yaml

from logic.constraints import ConstraintConfig
from wsss.core.atomic import atomic_write
from wsss.core.cli import add_config_arguments, parse_cfg_options
from wsss.core.crf import CRFParams, crf_params
from wsss.core.yaml_config import load_yaml_with_bases, merge_config
from wsss.core.weak_labels.classes import VOC_CLASSES
from stage1_pseudolabel.pipeline.config_sections import (
    DataSection, EmbedSection, GenerateSection, ModelSection, PromptSection, SuperpixelSection, TrainSection,
    build_section, coerce,
)
from stage1_pseudolabel.sam.backends.variants import MODEL_TYPES
from stage1_pseudolabel.sam.prompts import PROMPT_MODES

#: the sections of a config, by key
SECTIONS: Dict[str, type] = {
    "data": DataSection, "model": ModelSection, "prompts": PromptSection, "superpixels": SuperpixelSection,
    "embed": EmbedSection, "train": TrainSection, "generate": GenerateSection,
}

#: the sectioned spelling of each flat key (a flat key is refused with this spelling named)
RENAMED: Dict[str, str] = {
    **{k: f"data.{k}" for k in ("dataset", "split", "max_images", "weak_labels", "no_label_policy")},
    "model_type": "model.type", "checkpoint": "model.checkpoint", "model_kwargs": "model.kwargs",
    "model_seed": "model.seed", "precision": "model.precision", "tf32": "model.tf32",
    "attention": "model.attention", "compile_encoder": "model.compile_encoder",
    "decoder_batch_images": "model.decoder_batch_images",
    "prompt_mode": "prompts.mode",
    **{k: f"prompts.{k}" for k in ("num_positive", "num_negative", "multimask_output", "min_box_size",
                                   "boxless_objects", "tag_objects")},
    "embed_batch_size": "embed.batch_size",
    **{k: f"train.{k}" for k in ("epochs", "max_steps", "batch_size", "lr", "weight_decay", "warmup_steps",
                                 "grad_clip", "checkpoint_every", "prepare_workers", "preload_embeddings",
                                 "lora_rank", "lora_alpha")},
    "train_heads": "train.heads", "train_params": "train.params", "train_precision": "train.precision",
    **{k: f"generate.{k}" for k in ("confidence_threshold", "output_dir", "decoder_checkpoint", "embed_missing",
                                    "crf_workers", "instances", "diagnostics")},
}


@dataclass(kw_only=True)
class Stage1Config:
    """Every knob of stage 1 (see ``configs/stage1/*.yaml`` for annotated examples)."""

    # -- run ---------------------------------------------------------------------------------------
    work_dir: str = "work_dirs/stage1"  #: where caches, checkpoints, logs and masks go
    device: str = "auto"  #: auto | cpu | cuda | cuda:N
    #: seed of the prompt sampling (train and generate) and of each epoch's image order (train)
    seed: int = 0
    #: fsync every bulk output (cached embeddings, superpixels, pseudo-mask PNGs) and its folder, so
    #: that it survives a power loss; false: each is still renamed into place complete (a killed job
    #: leaves no partial file), without two fsyncs per file. Checkpoints are always fsync'ed
    durable_writes: bool = False
    custom_imports: List[str] = field(default_factory=list)  #: modules (or .py files) registering constraint types

    # -- sections ----------------------------------------------------------------------------------
    data: DataSection = field(default_factory=DataSection)
    model: ModelSection = field(default_factory=ModelSection)
    prompts: PromptSection = field(default_factory=PromptSection)
    #: the logic constraints of the loss in the low-res frame: weights, options and formulas by
    #: name, and ``normalisation`` / ``eps`` (logic.constraints.ConstraintConfig; parsed into ``constraints``)
    loss: Dict[str, Any] = field(default_factory=dict)
    superpixels: SuperpixelSection = field(default_factory=SuperpixelSection)
    embed: EmbedSection = field(default_factory=EmbedSection)
    train: TrainSection = field(default_factory=TrainSection)
    generate: GenerateSection = field(default_factory=GenerateSection)
    #: dense-CRF refinement of the pixel class distribution before the argmax (generate): null (off),
    #: or a mapping of :class:`wsss.core.crf.CRFParams` fields (``{}``: DeepLab's VOC defaults)
    crf: Optional[CRFParams] = None
    #: the parsed ``loss`` (formulas checked against the class names; a described dataset's are bound
    #: when :func:`~stage1_pseudolabel.pipeline.prepare.open_dataset` reads it)
    constraints: ConstraintConfig = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        import_custom_modules(self.custom_imports)
        if not isinstance(self.loss, dict):
            raise ValueError(f"config key loss must be a mapping of constraint weights and options, got {self.loss!r}")
        names = None if self.data.dataset else VOC_CLASSES  # a description's are checked when it is opened
        try:  # refuses unknown names and bad formulas before any work
            self.constraints = ConstraintConfig.from_dict(self.loss, class_names=names)
        except ValueError as exc:
            raise ValueError(f"config key loss: {exc}") from None

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
        if self.generate.output_dir:
            return Path(self.generate.output_dir)
        return self.work_path / (f"zeroshot_{self.prompts.mode}" if zero_shot else "pseudo_masks")

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
        checkpoint = self.generate.decoder_checkpoint
        return Path(checkpoint) if checkpoint else self.decoder_dir / "final.pth"

    # -- as a mapping --------------------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        """The config as its YAML reads: sections as mappings, ``crf`` as its parameters."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self) if f.init}

    def get(self, key: str) -> Any:
        """The plain value of a key, sections' keys dotted (``"train.lr"``, ``"crf"``)."""
        value: Any = self.to_dict()
        for part in key.split("."):
            value = value[part]
        return value

    def updated(self, **changes: Any) -> "Stage1Config":
        """A checked copy with ``changes`` merged over this config as ``--cfg-options`` are: dotted keys
        (``**{"train.lr": 1e-4}``) or section mappings (``generate={"diagnostics": True}``)."""
        return config_from_dict(merge_config(self.to_dict(), checked_layer(changes, where="updated()")))

    def save(self, path: Path) -> None:
        with atomic_write(path, durable=False) as handle:
            handle.write(yaml.safe_dump(self.to_dict(), sort_keys=False).encode())


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    return value


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
    """Defaults <- YAML file (with its bases) <- ``overrides`` (flags) <- ``cfg_options`` (``key=value``).

    ``overrides`` is a mapping as the YAML is (``{"train": {"lr": 1e-4}}``) or with dotted keys
    (``{"train.lr": 1e-4}``); its None values are left out (flags not given). A layer that names
    ``data.dataset`` without ``data.root`` clears the root of the layers below (that folder was another
    dataset's).
    """
    layers = [checked_layer(load_yaml_config(Path(config_file)), where=str(config_file))] if config_file else []
    layers += [checked_layer(_without_none(overrides or {}), where="overrides"),
               checked_layer(parse_cfg_options(cfg_options), where="--cfg-options")]
    values = Stage1Config().to_dict()
    for layer in layers:
        data = layer.get("data") or {}
        if "dataset" in data and "root" not in data:  # a folder given below belongs to another dataset
            values["data"]["root"] = None
        values = merge_config(values, layer)
    return config_from_dict(values)


def _without_none(values: Mapping[str, Any]) -> Dict[str, Any]:
    return {k: _without_none(v) if isinstance(v, dict) else v for k, v in values.items() if v is not None}


def checked_layer(values: Mapping[str, Any], *, where: str) -> Dict[str, Any]:
    """A layer of keys (a YAML file, flags, ``--cfg-options``) with dotted keys expanded into their
    sections; a flat key of a section is refused with its section's spelling, an unknown key with
    the valid ones."""
    out: Dict[str, Any] = {}
    for key, value in values.items():
        parts = key.split(".")
        if parts[0] == "data" and len(parts) == 1 and not isinstance(value, Mapping):
            raise ValueError(f"{where}: config key 'data' is a section; the dataset folder is spelled 'data.root'")
        if parts[0] in DataSection.DESCRIBED:
            build_section(DataSection, {parts[0]: value}, "data")  # refused, naming where the key belongs
        if parts[0] in RENAMED:
            new = RENAMED[parts[0]]
            raise ValueError(f"{where}: config key {parts[0]!r} is spelled {new!r} (in YAML: "
                             f"{new.split('.')[0]}: {{{new.split('.')[1]}: ...}})")
        if parts[0] not in _TOP_KEYS:
            raise ValueError(f"{where}: unknown stage-1 config key {parts[0]!r}; valid keys: {', '.join(_TOP_KEYS)}")
        nested: Any = value
        for part in reversed(parts[1:]):
            nested = {part: nested}
        out = merge_config(out, {parts[0]: nested})
    return out


_TOP_KEYS = [f.name for f in dataclasses.fields(Stage1Config) if f.init]


def config_from_dict(values: Mapping[str, Any]) -> Stage1Config:
    """The checked config of a complete mapping (every key present, as :meth:`Stage1Config.to_dict`)."""
    hints = typing.get_type_hints(Stage1Config)
    kwargs: Dict[str, Any] = {}
    for name in _TOP_KEYS:
        value = values[name]
        if name in SECTIONS:
            kwargs[name] = build_section(SECTIONS[name], value, name)
        elif name == "crf":
            if value is not None and not isinstance(value, Mapping):
                raise ValueError(f"config key crf must be null or a mapping of CRF parameters, got {value!r}")
            kwargs[name] = None if value is None else crf_params(value, where="config key crf")
        else:
            kwargs[name] = coerce(name, hints[name], value)
    return Stage1Config(**kwargs)


#: the config key each flag of :func:`add_common_arguments` sets (by the flag's dest)
COMMON_FLAGS: Dict[str, str] = {
    "data": "data.root", "dataset": "data.dataset", "split": "data.split", "work_dir": "work_dir",
    "model_type": "model.type", "checkpoint": "model.checkpoint", "prompt_mode": "prompts.mode", "device": "device",
}


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags every stage-1 CLI shares (those of the Makefile's ``STAGE1_COMMON``)."""
    add_config_arguments(parser, config_help="YAML config (configs/stage1/*.yaml)")
    parser.add_argument("--data", help="the dataset's folder (data.root); alone: a VOC2012 folder")
    parser.add_argument("--dataset", help="dataset description YAML (configs/datasets/*.yaml); default: VOC 2012's")
    parser.add_argument("--split", help="a split of the dataset ('all': every annotated image)")
    parser.add_argument("--work-dir", dest="work_dir", help="where caches, checkpoints, logs and masks go")
    parser.add_argument("--model-type", dest="model_type", help=" | ".join(MODEL_TYPES))
    parser.add_argument("--checkpoint", help="SAM checkpoint file ('none': random weights, for tests only)")
    parser.add_argument("--prompt-mode", dest="prompt_mode", choices=PROMPT_MODES)
    parser.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    # Every step takes it, so one STAGE1_ARGS=--resume serves `make stage1`: embed and generate always
    # resume (what exists is kept); train continues from <work_dir>/decoder/last.pth.
    parser.add_argument("--resume", action="store_true",
                        help="train: continue from <work_dir>/decoder/last.pth; embed/generate always resume")


def config_from_args(args: argparse.Namespace, extra: Optional[Dict[str, Any]] = None) -> Stage1Config:
    """The config of a CLI call: ``--config`` file, then the flags, then ``--cfg-options`` / ``--set``.

    ``extra``: the values of a step's own flags by config key (``{"train.lr": args.lr}``).
    """
    flags = {key: getattr(args, dest, None) for dest, key in COMMON_FLAGS.items()}
    cfg = build_config(config_file=args.config, overrides={**flags, **(extra or {})},
                       cfg_options=args.cfg_options or ())
    if cfg.data.split == "all":
        cfg.data.split = None
    return cfg
