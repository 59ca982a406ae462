"""HQ-SAM (``segment_anything_hq``, SysCV/sam-hq) behind the backend interface.

The architecture is the package's ``_build_sam`` (its ``ImageEncoderViT``, which also returns the
outputs of the global-attention blocks, and ``MaskDecoderHQ``), with SAM 1's hyper-parameters per
ViT variant, built here so that the official checkpoint loads with ``weights_only=True`` and
``strict=True`` (the package's own builder uses a plain ``torch.load`` and ``strict=False``).

Geometry: SAM 1's (longest side resized, zero padding). Cached per image: the ``256 x 64 x 64``
embedding and ``vit_early`` ``[C_vit, 64, 64]``, the output of the first global-attention block
(``interm_embeddings[0]``, the only one the HQ decoder reads). The decoder's output is
``masks_sam + masks_hq`` (the package's default ``hq_token_only=False``); with ``multimask_output``
the decoder itself adds the HQ mask to the best of SAM's three.

Trained: the whole HQ mask decoder; with ``train_heads="single"`` all of it but the multimask
hyper-network MLPs (tokens 1-3) and the IoU head.
"""

from __future__ import annotations

from functools import partial
from typing import Dict, List

import torch
from torch import nn

from stage1_pseudolabel.sam.backends.base import EMBED
from stage1_pseudolabel.sam.backends.sam1 import Sam1Backend
from stage1_pseudolabel.sam.modeling import sam_hq_package
from stage1_pseudolabel.sam.registry import sam_architecture

VIT_EARLY = "vit_early"


def build_hq_model(vit: str, **architecture_overrides) -> nn.Module:
    """An HQ-SAM ``Sam`` of ViT variant ``vit`` (``vit_h|vit_l|vit_b``) with random weights, eval mode.

    ``architecture_overrides`` are :class:`~stage1_pseudolabel.sam.registry.SamArchitecture` fields
    (reduced sizes for tests), as for SAM 1.
    """
    sam_hq_package()
    from segment_anything_hq.modeling import ImageEncoderViT, MaskDecoderHQ, PromptEncoder, Sam, TwoWayTransformer

    if vit == "vit_tiny":  # TinyViT (MobileSAM's encoder): the package's builder, whose TinyViT is 1024 px only
        if architecture_overrides:
            raise ValueError("hq_vit_tiny takes no architecture overrides (its TinyViT is written for 1024 px)")
        from segment_anything_hq.build_sam import build_sam_vit_t

        return build_sam_vit_t(checkpoint=None).eval()
    arch = sam_architecture(vit, **architecture_overrides)
    sam = Sam(
        image_encoder=ImageEncoderViT(
            depth=arch.encoder_depth, embed_dim=arch.encoder_embed_dim, img_size=arch.image_size, mlp_ratio=4,
            norm_layer=partial(nn.LayerNorm, eps=1e-6), num_heads=arch.encoder_num_heads, patch_size=arch.patch_size,
            qkv_bias=True, use_rel_pos=True, global_attn_indexes=arch.encoder_global_attn_indexes,
            window_size=arch.window_size, out_chans=arch.prompt_embed_dim,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=arch.prompt_embed_dim, image_embedding_size=(arch.embedding_size, arch.embedding_size),
            input_image_size=(arch.image_size, arch.image_size), mask_in_chans=16,
        ),
        mask_decoder=MaskDecoderHQ(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=arch.decoder_depth, embedding_dim=arch.prompt_embed_dim,
                                          mlp_dim=arch.decoder_mlp_dim, num_heads=8),
            transformer_dim=arch.prompt_embed_dim, iou_head_depth=3, iou_head_hidden_dim=256,
            vit_dim=arch.encoder_embed_dim,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    return sam.eval()


class HqSamBackend(Sam1Backend):
    """HQ-SAM: SAM 1's geometry and prompt encoder, the HQ decoder and its early ViT feature."""

    backend = "hq-sam"

    def feature_shapes(self) -> Dict[str, tuple]:
        shapes = super().feature_shapes()
        _, h, w = shapes[EMBED]
        vit_dim = int(self.mask_decoder.compress_vit_feat[0].in_channels)
        shapes[VIT_EARLY] = (vit_dim, h, w)
        return shapes

    def encode_batch(self, batch: torch.Tensor) -> Dict[str, torch.Tensor]:
        embedding, interm = self.image_encoder(batch)
        return {EMBED: embedding, VIT_EARLY: interm[0].permute(0, 3, 1, 2)}

    def _decoder_kwargs(self, features) -> Dict[str, object]:
        return {"hq_token_only": False, "interm_embeddings": [features[VIT_EARLY].permute(0, 2, 3, 1)]}

    def _unused_by_single_mask(self) -> List[nn.Module]:
        d = self.mask_decoder
        return list(d.output_hypernetworks_mlps)[1:] + [d.iou_prediction_head]
