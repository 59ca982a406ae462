"""HQ-SAM (``segment_anything_hq``, SysCV/sam-hq) behind the backend interface.

Built here from the package's modules with SAM 1's hyper-parameters per ViT variant, so that the
official checkpoint loads with ``weights_only=True`` and ``strict=True``; what it caches, decodes and
trains: docs/method.md, "SAM backends". :class:`BatchedMaskDecoderHQ` decodes several images' objects
in one call.
"""

from __future__ import annotations

from functools import partial
from typing import Dict, List, Optional

import torch
from torch import nn

from stage1_pseudolabel.sam.backends.base import EMBED
from stage1_pseudolabel.sam.backends.loading import build_strict
from stage1_pseudolabel.sam.backends.sam1 import Sam1Backend, sam_architecture
from stage1_pseudolabel.sam.backends.variants import Variant
from stage1_pseudolabel.sam.checkpoint import PathLike
from stage1_pseudolabel.sam.modeling import sam_hq_package

VIT_EARLY = "vit_early"


def build_hq_model(v: Variant, **architecture_overrides) -> nn.Module:
    """An HQ-SAM ``Sam`` of model type ``v`` (``hq_vit_h|l|b|tiny``) with random weights, eval mode.

    ``architecture_overrides`` are :class:`~stage1_pseudolabel.sam.backends.variants.SamArchitecture`
    fields (reduced sizes for tests), as for SAM 1.
    """
    package = sam_hq_package()
    if v.architecture is None:  # TinyViT (MobileSAM's encoder): the package's builder, whose TinyViT is 1024 px only
        if architecture_overrides:
            raise ValueError(f"{v.name} takes no architecture overrides (its TinyViT is written for 1024 px)")
        return package.sam_model_registry[v.config](checkpoint=None).eval()
    from segment_anything_hq.modeling import ImageEncoderViT, MaskDecoderHQ, PromptEncoder, Sam, TwoWayTransformer

    arch = sam_architecture(v.name, **architecture_overrides)
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


_BATCHED_DECODER = None


def batched_decoder_class() -> type:
    """:class:`BatchedMaskDecoderHQ` (defined on first use: it subclasses the package's ``MaskDecoderHQ``)."""
    global _BATCHED_DECODER, BatchedMaskDecoderHQ
    if _BATCHED_DECODER is not None:
        return _BATCHED_DECODER
    sam_hq_package()
    from segment_anything_hq.modeling import MaskDecoderHQ

    class BatchedMaskDecoderHQ(MaskDecoderHQ):
        """``MaskDecoderHQ`` whose ``forward`` also decodes the objects of several images in one call.

        With ``image_index`` (``int64 [N]``: the image of each prompt), ``image_embeddings`` ``[B, C, h, w]``
        and ``interm_embeddings`` hold ``B`` images; the HQ features are computed once per image and
        each object reads its own image's embedding and HQ features where the package repeats one
        image's. Otherwise (``image_index`` None) this is the package's ``forward``.
        """

        def forward(self, image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings,
                    multimask_output, hq_token_only, interm_embeddings, image_index: Optional[torch.Tensor] = None):
            if image_index is None:
                return super().forward(image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings,
                                       multimask_output, hq_token_only, interm_embeddings)
            vit_features = interm_embeddings[0].permute(0, 3, 1, 2)
            hq_features = self.embedding_encoder(image_embeddings) + self.compress_vit_feat(vit_features)
            masks, iou_pred = self._predict_masks_per_object(image_embeddings, image_pe, sparse_prompt_embeddings,
                                                             dense_prompt_embeddings, hq_features, image_index)
            # the package's output selection, unchanged
            if multimask_output:
                mask_slice = slice(1, self.num_mask_tokens - 1)
                iou_pred = iou_pred[:, mask_slice]
                iou_pred, max_iou_idx = torch.max(iou_pred, dim=1)
                iou_pred = iou_pred.unsqueeze(1)
                masks_multi = masks[:, mask_slice, :, :]
                masks_sam = masks_multi[torch.arange(masks_multi.size(0)), max_iou_idx].unsqueeze(1)
            else:
                mask_slice = slice(0, 1)
                iou_pred = iou_pred[:, mask_slice]
                masks_sam = masks[:, mask_slice]
            masks_hq = masks[:, slice(self.num_mask_tokens - 1, self.num_mask_tokens)]
            masks = masks_hq if hq_token_only else masks_sam + masks_hq
            return masks, iou_pred

        def _predict_masks_per_object(self, image_embeddings, image_pe, sparse_prompt_embeddings,
                                      dense_prompt_embeddings, hq_features, image_index):
            """The package's ``predict_masks`` with ``embedding[image_index]`` / ``hq_features[image_index]``
            where it repeats one image's."""
            output_tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight, self.hf_token.weight], dim=0)
            output_tokens = output_tokens.unsqueeze(0).expand(sparse_prompt_embeddings.size(0), -1, -1)
            tokens = torch.cat((output_tokens, sparse_prompt_embeddings), dim=1)
            src = image_embeddings[image_index] + dense_prompt_embeddings
            pos_src = torch.repeat_interleave(image_pe, tokens.shape[0], dim=0)
            b, c, h, w = src.shape
            hs, src = self.transformer(src, pos_src, tokens)
            iou_token_out = hs[:, 0, :]
            mask_tokens_out = hs[:, 1 : (1 + self.num_mask_tokens), :]
            src = src.transpose(1, 2).view(b, c, h, w)
            upscaled_embedding_sam = self.output_upscaling(src)
            upscaled_embedding_hq = self.embedding_maskfeature(upscaled_embedding_sam) + hq_features[image_index]
            hyper_in_list: List[torch.Tensor] = []
            for i in range(self.num_mask_tokens):
                if i < self.num_mask_tokens - 1:
                    hyper_in_list.append(self.output_hypernetworks_mlps[i](mask_tokens_out[:, i, :]))
                else:
                    hyper_in_list.append(self.hf_mlp(mask_tokens_out[:, i, :]))
            hyper_in = torch.stack(hyper_in_list, dim=1)
            b, c, h, w = upscaled_embedding_sam.shape
            k = self.num_mask_tokens - 1
            masks_sam = (hyper_in[:, :k] @ upscaled_embedding_sam.view(b, c, h * w)).view(b, -1, h, w)
            masks_sam_hq = (hyper_in[:, k:] @ upscaled_embedding_hq.view(b, c, h * w)).view(b, -1, h, w)
            masks = torch.cat([masks_sam, masks_sam_hq], dim=1)
            iou_pred = self.iou_prediction_head(iou_token_out)
            return masks, iou_pred

    BatchedMaskDecoderHQ.__module__ = __name__
    BatchedMaskDecoderHQ.__qualname__ = "BatchedMaskDecoderHQ"
    _BATCHED_DECODER = BatchedMaskDecoderHQ
    return _BATCHED_DECODER


class HqSamBackend(Sam1Backend):
    """HQ-SAM: SAM 1's geometry and prompt encoder, the HQ decoder and its early ViT feature."""

    backend = "hq-sam"

    def __init__(self, *, model_type: str, sam: nn.Module) -> None:
        cls = batched_decoder_class()
        if type(sam.mask_decoder) is cls.__bases__[0]:
            sam.mask_decoder.__class__ = cls  # same object and parameters; forward also takes image_index
        super().__init__(model_type=model_type, sam=sam)

    @classmethod
    def build(cls, v: Variant, *, checkpoint: Optional[PathLike] = None, seed: Optional[int] = None,
              encoder: bool = True, **overrides) -> "HqSamBackend":
        """:func:`build_hq_model` of ``v``, strictly loaded; built whole whatever ``encoder`` says."""
        model = build_strict(partial(build_hq_model, v, **overrides), model_type=v.name, checkpoint=checkpoint,
                             seed=seed)
        return cls(model_type=v.name, sam=model)

    def feature_shapes(self) -> Dict[str, tuple]:
        shapes = super().feature_shapes()
        _, h, w = shapes[EMBED]
        vit_dim = int(self.mask_decoder.compress_vit_feat[0].in_channels)
        shapes[VIT_EARLY] = (vit_dim, h, w)
        return shapes

    def encode_batch(self, batch: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The embedding and ``vit_early`` ``[B, C_vit, h, w]``: the first global-attention block's
        output (``interm_embeddings[0]``), the only intermediate feature the HQ decoder reads."""
        embedding, interm = self.image_encoder(batch)
        return {EMBED: embedding, VIT_EARLY: interm[0].permute(0, 3, 1, 2)}

    def _decoder_kwargs(self, features) -> Dict[str, object]:
        # hq_token_only=False, the package's default: SAM's mask plus the HQ one (with multimask
        # output, the decoder adds the HQ mask to the best of SAM's three)
        return {"hq_token_only": False, "interm_embeddings": [features[VIT_EARLY].permute(0, 2, 3, 1)]}

    def _decode_objects(self, features, counts, *, sparse_embeddings, dense_embeddings, dense_pe, mask_decoder,
                        multimask_output):
        decoder = mask_decoder or self.mask_decoder
        if not isinstance(getattr(decoder, "module", decoder), batched_decoder_class()):
            return super(Sam1Backend, self)._decode_objects(  # a decoder of another class: one call per image
                features, counts, sparse_embeddings=sparse_embeddings, dense_embeddings=dense_embeddings,
                dense_pe=dense_pe, mask_decoder=mask_decoder, multimask_output=multimask_output)
        embedding = torch.cat([f.embedding for f in features])
        index = torch.repeat_interleave(torch.arange(len(counts), device=embedding.device),
                                        torch.as_tensor(counts, device=embedding.device))
        masks, iou = decoder(
            image_embeddings=embedding,
            image_pe=dense_pe,
            sparse_prompt_embeddings=sparse_embeddings,
            dense_prompt_embeddings=dense_embeddings,
            multimask_output=multimask_output,
            hq_token_only=False,
            interm_embeddings=[torch.cat([f[VIT_EARLY] for f in features]).permute(0, 2, 3, 1)],
            image_index=index,
        )
        return self._select(masks, iou, multimask_output)

    def _unused_by_single_mask(self) -> List[nn.Module]:
        d = self.mask_decoder
        return list(d.output_hypernetworks_mlps)[1:] + [d.iou_prediction_head]
