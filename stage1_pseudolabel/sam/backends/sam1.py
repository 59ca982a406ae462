"""SAM 1: ``segment_anything`` (vit_h / vit_l / vit_b), MobileSAM (vit_t) and the project's proxy SAM.

Building (:func:`build_sam`, like ``segment_anything.build_sam``): the ViT variants are built from
their row of the variant table (:mod:`~stage1_pseudolabel.sam.backends.variants`) with
``segment_anything``'s own modules and exactly the hyper-parameters of ``segment_anything.build_sam``,
so an official checkpoint loads strictly. ``vit_t`` needs the optional ``mobile_sam`` package (not on
PyPI; :func:`build_sam` says where to get it); ``proxy`` is
:func:`stage1_pseudolabel.sam.proxy.build_proxy_sam` (``make proxy-sam``), loaded through the same
strict path. Reduced sizes for tests and benchmarks are keyword overrides of the same builder, e.g.
``build_sam("vit_b", image_size=256, encoder_depth=2, encoder_embed_dim=64, encoder_num_heads=2)``;
any override makes the model a *custom* architecture that official checkpoints do not fit.

Geometry: the longest side is resized to ``S`` (1024) with PIL bilinear and the image zero-padded
at the bottom and right (``ResizeLongestSide`` + ``Sam.preprocess``); low-res logits ``S/4`` (256)
over the padded square. Cached per image: the ``256 x 64 x 64`` embedding only. Trained: the whole
mask decoder, or (``train_heads="single"``) all of it but the three multimask hyper-network MLPs and
the IoU head, which the single-mask output never uses.
"""

from __future__ import annotations

import importlib
from dataclasses import replace
from functools import partial
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from stage1_pseudolabel.sam.backends.base import EMBED, FeaturesLike, SamBackend, as_features
from stage1_pseudolabel.sam.backends.loading import build_strict
from stage1_pseudolabel.sam.backends.variants import VARIANTS, SamArchitecture, Variant, variant
from stage1_pseudolabel.sam.checkpoint import PathLike
from stage1_pseudolabel.sam.encoder import preprocess, resize_for_encoder
from stage1_pseudolabel.sam.modeling import sam_modeling
from stage1_pseudolabel.sam.proxy import build_proxy_sam


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
    """The ViT architecture of ``model_type`` (vit_h / vit_l / vit_b, hq_vit_h / ...) with optional overrides."""
    arch = variant(model_type).architecture
    if arch is None:
        vits = [v.name for v in VARIANTS.values() if v.architecture is not None]
        raise ValueError(f"no ViT architecture for model type {model_type!r}; choose one of {vits}")
    overrides = dict(
        image_size=image_size, patch_size=patch_size, window_size=window_size, encoder_embed_dim=encoder_embed_dim,
        encoder_depth=encoder_depth, encoder_num_heads=encoder_num_heads, prompt_embed_dim=prompt_embed_dim,
        decoder_depth=decoder_depth, decoder_mlp_dim=decoder_mlp_dim,
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


def _build_mobile_sam(**overrides) -> nn.Module:
    if overrides:
        raise ValueError("vit_t takes no architecture overrides (its TinyViT comes from mobile_sam)")
    try:
        mobile_sam = importlib.import_module("mobile_sam")
    except ImportError as exc:
        raise ImportError(
            "model type 'vit_t' (MobileSAM) needs the optional 'mobile_sam' package, which is not installed "
            f"(it is not on PyPI: pip install git+{VARIANTS['vit_t'].release.published_at}). "
            "Use vit_b / vit_l / vit_h or 'proxy'."
        ) from exc
    return mobile_sam.sam_model_registry[VARIANTS["vit_t"].config](checkpoint=None)


#: config -> builder of the SAM 1 model types without a ViT architecture
_BUILDERS = {"vit_t": _build_mobile_sam, "proxy": build_proxy_sam}


def build_sam(model_type: str, *, checkpoint: Optional[PathLike] = None, seed: Optional[int] = None,
              device: Union[str, torch.device] = "cpu", encoder: bool = True, **architecture_overrides) -> nn.Module:
    """A SAM 1 model of ``model_type``, with random weights or strictly loaded from ``checkpoint``.

    Args:
        model_type: a ``sam1`` model type of the variant table (``vit_h``, ``vit_l``, ``vit_b``,
            ``vit_t``, ``proxy``).
        checkpoint: a state-dict file; loaded with ``weights_only=True`` and ``strict=True``. A missing
            or truncated file, or one of another variant, raises
            :class:`stage1_pseudolabel.sam.checkpoint.CheckpointError` naming the variant it looks like.
        seed: seeds the random initialisation (the global RNG state is restored afterwards).
        device: where the model lives.
        encoder: False with a ``checkpoint``: the ViT image encoder is built without initialising
            it and the file is mapped, so that its weights are never read as long as the encoder is
            not used (training needs only the cached embeddings): drop it before moving the model
            to a GPU.
        **architecture_overrides: keyword overrides of :class:`SamArchitecture` fields for ViT
            variants (``image_size``, ``encoder_depth``, ...), or the keyword arguments of
            ``build_proxy_sam``.

    Returns:
        A ``segment_anything`` ``Sam`` (``.image_encoder`` with input ``[B, 3, S, S]``,
        ``.prompt_encoder``, ``.mask_decoder`` with low-res logits ``[N, M, S/4, S/4]``), in eval
        mode, on ``device``.
    """
    v = variant(model_type)
    if v.backend != Sam1Backend.backend:
        raise ValueError(f"{model_type!r} is a {v.backend} model type; build it with build_backend")
    lazy = checkpoint is not None and not encoder
    if v.architecture is not None:
        arch = sam_architecture(model_type, **architecture_overrides)
        build = partial(build_sam_from_architecture, arch, encoder_device="meta" if lazy else None)
    else:
        build = partial(_BUILDERS[v.config], **architecture_overrides)
    model = build_strict(build, model_type=model_type, checkpoint=checkpoint, seed=seed, mmap=lazy)
    return model.to(device).eval()


def encoder_input_size(model: nn.Module) -> int:
    """Side ``S`` of the square image ``[B, 3, S, S]`` the model's encoder takes (1024 for SAM)."""
    return int(model.image_encoder.img_size)


def lowres_mask_size(model: nn.Module) -> int:
    """Side of the decoder's low-res mask logits: 4x the prompt encoder's embedding size (256 for SAM)."""
    return 4 * int(model.prompt_encoder.image_embedding_size[0])


class Sam1Backend(SamBackend):
    """A ``segment_anything`` ``Sam`` (or a module with the same parts) behind the backend interface.

    Args:
        model_type: variant name.
        sam: the built model (``.image_encoder``, ``.prompt_encoder``, ``.mask_decoder``,
            ``.pixel_mean``, ``.pixel_std``); its modules are shared, not copied.
    """

    backend = "sam1"
    padded = True

    def __init__(self, *, model_type: str, sam: nn.Module) -> None:
        super().__init__(model_type=model_type, image_encoder=sam.image_encoder, prompt_encoder=sam.prompt_encoder,
                         mask_decoder=sam.mask_decoder, encoder_size=int(sam.image_encoder.img_size),
                         lowres=4 * int(sam.prompt_encoder.image_embedding_size[0]))
        self.__dict__["_official"] = sam  # not a child: the same modules, for the official predictor
        self.register_buffer("pixel_mean", sam.pixel_mean.detach().clone(), persistent=False)
        self.register_buffer("pixel_std", sam.pixel_std.detach().clone(), persistent=False)

    @classmethod
    def build(cls, v: Variant, *, checkpoint: Optional[PathLike] = None, seed: Optional[int] = None,
              encoder: bool = True, **overrides) -> "Sam1Backend":
        """:func:`build_sam` of ``v`` behind the interface (``encoder=False``: its weights are not even read)."""
        return cls(model_type=v.name, sam=build_sam(v.name, checkpoint=checkpoint, seed=seed, encoder=encoder,
                                                    **overrides))

    def prepare_image(self, image: np.ndarray) -> torch.Tensor:
        """``uint8 [3, h', w']``: the longest side resized to ``S`` (:func:`resize_for_encoder`)."""
        return resize_for_encoder(image, encoder_size=self.encoder_size)

    def preprocess(self, images: Sequence[torch.Tensor], *, device: torch.device) -> torch.Tensor:
        return preprocess(self, images, device=device)

    def encode_batch(self, batch: torch.Tensor) -> Dict[str, torch.Tensor]:
        return {EMBED: self.image_encoder(batch)}

    def encode_prompts(self, *, boxes, point_coords, point_labels) -> Tuple[torch.Tensor, torch.Tensor]:
        points = None if point_coords is None else (point_coords, point_labels)
        with torch.no_grad():
            return self.prompt_encoder(points=points, boxes=boxes, masks=None)

    def _decoder_kwargs(self, features) -> Dict[str, object]:
        return {}

    def decode(self, features: FeaturesLike, *, sparse_embeddings, dense_embeddings, dense_pe,
               mask_decoder: Optional[nn.Module] = None, multimask_output: bool = False):
        features = as_features(features)
        if sparse_embeddings.shape[0] == 0:
            return self._empty(features)
        masks, iou = (mask_decoder or self.mask_decoder)(
            image_embeddings=features.embedding,
            image_pe=dense_pe,
            sparse_prompt_embeddings=sparse_embeddings,
            dense_prompt_embeddings=dense_embeddings,
            multimask_output=multimask_output,
            **self._decoder_kwargs(features),
        )
        return self._select(masks, iou, multimask_output)

    def _decode_objects(self, features, counts, *, sparse_embeddings, dense_embeddings, dense_pe, mask_decoder,
                        multimask_output):
        """All objects of several images in one call of the official ``MaskDecoder.forward``.

        ``predict_masks`` computes ``repeat_interleave(image_embeddings, N) + dense_prompt_embeddings``
        and uses ``image_embeddings`` nowhere else, so a zero image embedding and, as the dense prompt
        embedding, each object's own image embedding plus its dense embedding give each object
        exactly its image's ``src`` (``0 + (e + d) == e + d``: float addition is commutative and
        adding zero exact); the rest of the decoder is per object.
        """
        emb = self._per_object(features, counts)
        masks, iou = (mask_decoder or self.mask_decoder)(
            image_embeddings=emb.new_zeros((1, *emb.shape[1:])),
            image_pe=dense_pe,
            sparse_prompt_embeddings=sparse_embeddings,
            dense_prompt_embeddings=emb + dense_embeddings,
            multimask_output=multimask_output,
        )
        return self._select(masks, iou, multimask_output)

    def _unused_by_single_mask(self) -> List[nn.Module]:
        d = self.mask_decoder
        return list(d.output_hypernetworks_mlps)[1:] + [d.iou_prediction_head]

    def trainable_parameters(self, *, train_heads: str = "single") -> List[nn.Parameter]:
        params = list(self.mask_decoder.parameters())
        if train_heads == "single":
            frozen = {id(p) for m in self._unused_by_single_mask() for p in m.parameters()}
            params = [p for p in params if id(p) not in frozen]
        return self._freeze_all_but(params)
