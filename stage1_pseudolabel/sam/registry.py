"""Building SAM models by variant name, with official or reduced sizes, random or checkpointed weights.

Variants
--------
``vit_h``, ``vit_l``, ``vit_b``
    The official SAM image encoders, built with ``segment_anything``'s own modules and exactly the
    hyper-parameters of ``segment_anything.build_sam`` (so an official checkpoint loads strictly).
``vit_t``
    MobileSAM's TinyViT encoder. It needs the optional ``mobile_sam`` package (not on PyPI at the time
    of writing: install it from its repository); without it :func:`build_sam` says so. For speed
    measurements :data:`VIT_T_SIZED` gives a plain-ViT encoder of MobileSAM's size and cost class,
    which is *not* TinyViT and cannot load MobileSAM weights.
``proxy``
    The project's own small SAM-architecture stand-in (``make proxy-sam``), resolved lazily from
    ``stage1_pseudolabel.sam.proxy:build_proxy_sam`` and loaded through the same strict path.

Reduced sizes for tests and benchmarks are keyword overrides of the same builder, e.g.
``build_sam("vit_b", image_size=256, encoder_depth=2, encoder_embed_dim=64, encoder_num_heads=2)``;
any override makes the model a *custom* architecture that official checkpoints do not fit.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from stage1_pseudolabel.sam.modeling import sam_modeling

PathLike = Union[str, Path]

PROXY_BUILDER = "stage1_pseudolabel.sam.proxy:build_proxy_sam"
OFFICIAL_CHECKPOINTS_URL = "https://github.com/facebookresearch/segment-anything#model-checkpoints"
MOBILE_SAM_URL = "https://github.com/ChaoningZhang/MobileSAM"


@dataclass(frozen=True)
class SamArchitecture:
    """Hyper-parameters of a ``segment_anything`` SAM (image encoder ViT + prompt encoder + decoder).

    Attributes:
        encoder_embed_dim: ViT width (1280 / 1024 / 768 for vit_h / vit_l / vit_b).
        encoder_depth: number of ViT blocks.
        encoder_num_heads: attention heads per block.
        encoder_global_attn_indexes: blocks with global attention (the others use windows).
        image_size: side of the square encoder input (1024 for SAM).
        patch_size: ViT patch size; the embedding is ``image_size // patch_size`` square.
        window_size: window attention size.
        prompt_embed_dim: channels of the image embedding and of prompt tokens (256).
        decoder_depth: two-way transformer depth of the mask decoder.
        decoder_mlp_dim: MLP width of the two-way transformer.
    """

    encoder_embed_dim: int
    encoder_depth: int
    encoder_num_heads: int
    encoder_global_attn_indexes: Tuple[int, ...]
    image_size: int = 1024
    patch_size: int = 16
    window_size: int = 14
    prompt_embed_dim: int = 256
    decoder_depth: int = 2
    decoder_mlp_dim: int = 2048

    @property
    def embedding_size(self) -> int:
        """Side of the image embedding (64 for SAM)."""
        return self.image_size // self.patch_size

    @property
    def lowres_size(self) -> int:
        """Side of the decoder's low-res mask logits (256 for SAM: 4x the embedding)."""
        return 4 * self.embedding_size


@dataclass(frozen=True)
class SamVariant:
    """An official variant: its architecture and the file name of its published checkpoint."""

    name: str
    architecture: SamArchitecture
    checkpoint_file: str
    checkpoint_url: str


_DL = "https://dl.fbaipublicfiles.com/segment_anything/"

SAM_VARIANTS: Dict[str, SamVariant] = {
    "vit_h": SamVariant("vit_h", SamArchitecture(1280, 32, 16, (7, 15, 23, 31)), "sam_vit_h_4b8939.pth", _DL + "sam_vit_h_4b8939.pth"),
    "vit_l": SamVariant("vit_l", SamArchitecture(1024, 24, 16, (5, 11, 17, 23)), "sam_vit_l_0b3195.pth", _DL + "sam_vit_l_0b3195.pth"),
    "vit_b": SamVariant("vit_b", SamArchitecture(768, 12, 12, (2, 5, 8, 11)), "sam_vit_b_01ec64.pth", _DL + "sam_vit_b_01ec64.pth"),
}

#: A plain ViT of MobileSAM's size class (about 5.5 M encoder parameters) for speed measurements only.
VIT_T_SIZED = SamArchitecture(192, 12, 3, (2, 5, 8, 11))

MODEL_TYPES: Tuple[str, ...] = ("vit_h", "vit_l", "vit_b", "vit_t", "proxy")


def default_global_attn_indexes(depth: int) -> Tuple[int, ...]:
    """Four evenly spaced global-attention blocks ending with the last one, as SAM's variants do."""
    step = max(1, depth // 4)
    return tuple(i for i in range(depth) if (i + 1) % step == 0)[-4:]


def sam_architecture(
    model_type: str,
    *,
    image_size: Optional[int] = None,
    patch_size: Optional[int] = None,
    window_size: Optional[int] = None,
    encoder_embed_dim: Optional[int] = None,
    encoder_depth: Optional[int] = None,
    encoder_num_heads: Optional[int] = None,
    encoder_global_attn_indexes: Optional[Sequence[int]] = None,
    prompt_embed_dim: Optional[int] = None,
    decoder_depth: Optional[int] = None,
    decoder_mlp_dim: Optional[int] = None,
) -> SamArchitecture:
    """The architecture of an official ``vit_h|vit_l|vit_b`` variant with optional overrides."""
    if model_type not in SAM_VARIANTS:
        raise ValueError(f"no ViT architecture for model type {model_type!r}; choose one of {sorted(SAM_VARIANTS)}")
    arch = SAM_VARIANTS[model_type].architecture
    overrides = dict(
        image_size=image_size, patch_size=patch_size, window_size=window_size, encoder_embed_dim=encoder_embed_dim,
        encoder_depth=encoder_depth, encoder_num_heads=encoder_num_heads, prompt_embed_dim=prompt_embed_dim,
        decoder_depth=decoder_depth,
        decoder_mlp_dim=decoder_mlp_dim,
    )
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if encoder_global_attn_indexes is not None:
        overrides["encoder_global_attn_indexes"] = tuple(int(i) for i in encoder_global_attn_indexes)
    elif "encoder_depth" in overrides:
        overrides["encoder_global_attn_indexes"] = default_global_attn_indexes(overrides["encoder_depth"])
    arch = replace(arch, **overrides)
    if arch.image_size % arch.patch_size:
        raise ValueError(f"image_size {arch.image_size} is not a multiple of patch_size {arch.patch_size}")
    if arch.prompt_embed_dim % 8:
        raise ValueError(f"prompt_embed_dim {arch.prompt_embed_dim} must be a multiple of 8 (decoder heads)")
    if arch.encoder_embed_dim % arch.encoder_num_heads:
        raise ValueError(f"encoder_embed_dim {arch.encoder_embed_dim} is not divisible by {arch.encoder_num_heads} heads")
    return arch


def build_sam_from_architecture(arch: SamArchitecture, *, encoder_device: Optional[str] = None) -> nn.Module:
    """A ``segment_anything.modeling.Sam`` with default (random) initialisation, in eval mode;
    ``encoder_device="meta"``: its image encoder without storage (weights assigned from a checkpoint)."""
    m = sam_modeling()
    with torch.device(encoder_device or "cpu"):
        encoder = m.ImageEncoderViT(
            depth=arch.encoder_depth,
            embed_dim=arch.encoder_embed_dim,
            img_size=arch.image_size,
            mlp_ratio=4,
            norm_layer=partial(nn.LayerNorm, eps=1e-6),
            num_heads=arch.encoder_num_heads,
            patch_size=arch.patch_size,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=arch.encoder_global_attn_indexes,
            window_size=arch.window_size,
            out_chans=arch.prompt_embed_dim,
        )
    sam = m.Sam(
        image_encoder=encoder,
        prompt_encoder=m.PromptEncoder(
            embed_dim=arch.prompt_embed_dim,
            image_embedding_size=(arch.embedding_size, arch.embedding_size),
            input_image_size=(arch.image_size, arch.image_size),
            mask_in_chans=16,
        ),
        mask_decoder=m.MaskDecoder(
            num_multimask_outputs=3,
            transformer=m.TwoWayTransformer(
                depth=arch.decoder_depth,
                embedding_dim=arch.prompt_embed_dim,
                mlp_dim=arch.decoder_mlp_dim,
                num_heads=8,
            ),
            transformer_dim=arch.prompt_embed_dim,
            iou_head_depth=3,
            iou_head_hidden_dim=256,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    return sam.eval()


def _build_mobile_sam() -> nn.Module:
    try:
        mobile_sam = importlib.import_module("mobile_sam")
    except ImportError as exc:
        raise ImportError(
            "model type 'vit_t' (MobileSAM) needs the optional 'mobile_sam' package, which is not installed "
            f"(it is not on PyPI: pip install git+{MOBILE_SAM_URL}). Use vit_b / vit_l / vit_h or 'proxy'."
        ) from exc
    return mobile_sam.sam_model_registry["vit_t"](checkpoint=None).eval()


def _build_proxy(**kwargs) -> nn.Module:
    module_name, func_name = PROXY_BUILDER.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(f"model type 'proxy' needs {module_name} (the project's proxy SAM): {exc}") from exc
    return getattr(module, func_name)(**kwargs).eval()


def build_sam(
    model_type: str,
    *,
    checkpoint: Optional[PathLike] = None,
    seed: Optional[int] = None,
    device: Union[str, torch.device] = "cpu",
    encoder: bool = True,
    **architecture_overrides,
) -> nn.Module:
    """Build a SAM of ``model_type``, with random weights or strictly loaded from ``checkpoint``.

    Args:
        model_type: ``vit_h``, ``vit_l``, ``vit_b``, ``vit_t`` or ``proxy`` (module docstring).
        checkpoint: a state-dict file; loaded with ``weights_only=True`` and ``strict=True``. A missing
            or truncated file, or one of another variant, raises
            :class:`stage1_pseudolabel.sam.checkpoint.CheckpointError` naming the variant it looks like.
        seed: seeds the random initialisation (the global RNG state is restored afterwards).
        device: where the model lives.
        encoder: False with a ``checkpoint`` of a ViT variant: the image encoder is built without
            initialising it and the file is mapped, so that its weights are never read as long as
            the encoder is not used (training needs only the cached embeddings): drop it before
            moving the model to a GPU.
        **architecture_overrides: keyword overrides of :class:`SamArchitecture` fields for ViT variants
            (``image_size``, ``encoder_depth``, ...), or the keyword arguments of ``build_proxy_sam``.

    Returns:
        A module with ``.image_encoder``, ``.prompt_encoder``, ``.mask_decoder`` (a
        ``segment_anything`` ``Sam`` for ViT variants), in eval mode, on ``device``.
    """
    from stage1_pseudolabel.sam.checkpoint import load_sam_checkpoint  # local: checkpoint imports registry

    if model_type not in MODEL_TYPES:
        raise ValueError(f"unknown SAM model type {model_type!r}; choose one of {', '.join(MODEL_TYPES)}")
    if checkpoint is not None and not Path(checkpoint).is_file():
        # Fail before spending time on building a large model.
        from stage1_pseudolabel.sam.checkpoint import missing_checkpoint_error

        raise missing_checkpoint_error(Path(checkpoint), model_type)
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        if model_type == "proxy":
            model = _build_proxy(**architecture_overrides)
        elif model_type == "vit_t":
            if architecture_overrides:
                raise ValueError("vit_t takes no architecture overrides (its TinyViT comes from mobile_sam)")
            model = _build_mobile_sam()
        else:
            lazy = checkpoint is not None and not encoder
            model = build_sam_from_architecture(sam_architecture(model_type, **architecture_overrides),
                                                encoder_device="meta" if lazy else None)
    if checkpoint is not None:
        load_sam_checkpoint(model, checkpoint, model_type=model_type, mmap=not encoder)
    return model.to(device).eval()


def encoder_input_size(model: nn.Module) -> int:
    """Side of the square image the model's encoder takes (1024 for SAM)."""
    return int(model.image_encoder.img_size)


def lowres_mask_size(model: nn.Module) -> int:
    """Side of the decoder's low-res mask logits: 4x the prompt encoder's embedding size (256 for SAM)."""
    return 4 * int(model.prompt_encoder.image_embedding_size[0])
