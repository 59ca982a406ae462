"""SAM 2.1 (``sam2``, facebookresearch/sam2) behind the backend interface.

Built from the package's own Hydra configs by ``sam2.build_sam.build_sam2``, then strictly loaded
with ``weights_only=True`` (:mod:`stage1_pseudolabel.sam.backends.loading`); its geometry, cached maps
and trained parameters: docs/method.md, "SAM backends". Reduced sizes (tests, benchmarks) are the
keywords of :func:`sam2_overrides`.
"""

from __future__ import annotations

from functools import partial
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from stage1_pseudolabel.sam.backends.base import EMBED, FeaturesLike, SamBackend, as_features
from stage1_pseudolabel.sam.backends.loading import build_strict
from stage1_pseudolabel.sam.backends.variants import Variant
from stage1_pseudolabel.sam.checkpoint import PathLike
from stage1_pseudolabel.sam.modeling import sam2_package

S0, S1 = "high_res_s0", "high_res_s1"


def _list(values: Sequence[int]) -> str:
    return "[" + ",".join(str(int(v)) for v in values) + "]"


def sam2_overrides(*, image_size: Optional[int] = None, trunk_embed_dim: Optional[int] = None,
                   trunk_num_heads: Optional[int] = None, trunk_stages: Optional[Sequence[int]] = None,
                   global_att_blocks: Optional[Sequence[int]] = None, window_spec: Optional[Sequence[int]] = None,
                   hydra_overrides: Sequence[str] = ()) -> List[str]:
    """Hydra overrides for a reduced-size SAM 2 (empty: the official architecture)."""
    out: List[str] = []
    trunk = "model.image_encoder.trunk"
    if image_size is not None:
        out.append(f"++model.image_size={int(image_size)}")
    if trunk_embed_dim is not None:
        d = int(trunk_embed_dim)
        out += [f"++{trunk}.embed_dim={d}", f"++model.image_encoder.neck.backbone_channel_list={_list([8 * d, 4 * d, 2 * d, d])}"]
    if trunk_num_heads is not None:
        out.append(f"++{trunk}.num_heads={int(trunk_num_heads)}")
    if trunk_stages is not None:
        out.append(f"++{trunk}.stages={_list(trunk_stages)}")
    if global_att_blocks is not None:
        out.append(f"++{trunk}.global_att_blocks={_list(global_att_blocks)}")
    if window_spec is not None:
        out.append(f"++{trunk}.window_spec={_list(window_spec)}")
    return out + list(hydra_overrides)


def build_sam2_model(config: str, **overrides) -> nn.Module:
    """The official ``SAM2Base`` of ``config`` with random weights (``build_sam2``, no checkpoint), eval mode.

    ``build_sam2``'s ``apply_postprocessing`` stays on: in eval mode the single-mask output falls back
    to the most stable multimask output, as the official predictor's does (off once fine-tuned:
    :meth:`Sam2Backend.mark_fine_tuned`).
    """
    sam2_package()
    from sam2.build_sam import build_sam2

    return build_sam2(config, ckpt_path=None, device="cpu", mode="eval", hydra_overrides_extra=sam2_overrides(**overrides))


class Sam2Backend(SamBackend):
    """SAM 2.1's image encoder (Hiera + FPN), prompt encoder and mask decoder.

    Args:
        model_type: variant name (``sam2.1_hiera_large`` ...).
        sam2: the built ``SAM2Base`` (its modules are shared; the memory modules are not used).
    """

    backend = "sam2.1"
    padded = False

    def __init__(self, *, model_type: str, sam2: nn.Module) -> None:
        super().__init__(model_type=model_type, image_encoder=sam2.image_encoder, prompt_encoder=sam2.sam_prompt_encoder,
                         mask_decoder=sam2.sam_mask_decoder, encoder_size=int(sam2.image_size),
                         lowres=4 * int(sam2.sam_prompt_encoder.image_embedding_size[0]))
        if not sam2.use_high_res_features_in_sam:
            raise ValueError("the SAM 2 backend expects a model with use_high_res_features_in_sam (all official configs)")
        self.no_mem_embed = sam2.no_mem_embed  # the same Parameter: .to() moves it for both
        self.__dict__["_official"] = sam2  # not a child: only its encoder-side methods are called
        from sam2.utils.transforms import SAM2Transforms

        self.__dict__["_transforms"] = SAM2Transforms(resolution=self.encoder_size, mask_threshold=0.0)

    @classmethod
    def build(cls, v: Variant, *, checkpoint: Optional[PathLike] = None, seed: Optional[int] = None,
              encoder: bool = True, **overrides) -> "Sam2Backend":
        """``SAM2Base`` of ``v.config`` (:func:`build_sam2_model`, :func:`sam2_overrides` keywords), strictly
        loaded; built whole whatever ``encoder`` says."""
        model = build_strict(partial(build_sam2_model, v.config, **overrides), model_type=v.name,
                             checkpoint=checkpoint, seed=seed)
        return cls(model_type=v.name, sam2=model)

    def feature_shapes(self) -> Dict[str, Tuple[int, ...]]:
        shapes = super().feature_shapes()
        c, h, w = shapes[EMBED]
        shapes[S0] = (int(self.mask_decoder.conv_s0.out_channels), 4 * h, 4 * w)
        shapes[S1] = (int(self.mask_decoder.conv_s1.out_channels), 2 * h, 2 * w)
        return shapes

    def prepare_image(self, image: np.ndarray) -> torch.Tensor:
        """``float [3, S, S]``: ``SAM2Transforms`` (to [0, 1], resize to the square, normalise)."""
        return self._transforms(np.ascontiguousarray(image))

    def preprocess(self, images: Sequence[torch.Tensor], *, device: torch.device) -> torch.Tensor:
        return torch.stack([img.to(torch.float32) for img in images]).to(device, non_blocking=True)

    def encode_batch(self, batch: torch.Tensor) -> Dict[str, torch.Tensor]:
        """As ``SAM2ImagePredictor.set_image``: backbone, decoder projections, no-memory embedding."""
        sam2 = self.official
        backbone_out = sam2.forward_image(batch)
        _, vision_feats, _, feat_sizes = sam2._prepare_backbone_features(backbone_out)
        if sam2.directly_add_no_mem_embed:
            vision_feats[-1] = vision_feats[-1] + self.no_mem_embed
        b = batch.shape[0]
        feats = [f.permute(1, 2, 0).reshape(b, -1, h, w) for f, (h, w) in zip(vision_feats, feat_sizes)]
        return {EMBED: feats[-1], S0: feats[0], S1: feats[1]}

    def encoder_state(self) -> Dict[str, torch.Tensor]:
        state = super().encoder_state()
        for name in ("conv_s0", "conv_s1"):
            state.update({f"mask_decoder.{name}.{k}": v for k, v in getattr(self.mask_decoder, name).state_dict().items()})
        state["no_mem_embed"] = self.no_mem_embed.detach()
        return state

    def encode_prompts(self, *, boxes, point_coords, point_labels) -> Tuple[torch.Tensor, torch.Tensor]:
        """Boxes as two corner points (labels 2 and 3) before the clicks, as ``SAM2ImagePredictor``."""
        coords, labels = point_coords, point_labels
        if boxes is not None:
            box_coords = boxes.reshape(-1, 2, 2)
            box_labels = torch.tensor([[2, 3]], dtype=torch.int, device=boxes.device).repeat(boxes.shape[0], 1)
            if coords is not None:
                coords = torch.cat([box_coords, coords], dim=1)
                labels = torch.cat([box_labels, labels.to(torch.int)], dim=1)
            else:
                coords, labels = box_coords, box_labels
        points = None if coords is None else (coords, labels)
        with torch.no_grad():
            return self.prompt_encoder(points=points, boxes=None, masks=None)

    def decode(self, features: FeaturesLike, *, sparse_embeddings, dense_embeddings, dense_pe,
               mask_decoder: Optional[nn.Module] = None, multimask_output: bool = False):
        features = as_features(features)
        n = sparse_embeddings.shape[0]
        if n == 0:
            return self._empty(features)
        masks, iou, _, _ = (mask_decoder or self.mask_decoder)(
            image_embeddings=features.embedding,
            image_pe=dense_pe,
            sparse_prompt_embeddings=sparse_embeddings,
            dense_prompt_embeddings=dense_embeddings,
            multimask_output=multimask_output,
            repeat_image=n > 1,
            high_res_features=[features[S0], features[S1]],
        )
        return self._select(masks, iou, multimask_output)

    def _decode_objects(self, features, counts, *, sparse_embeddings, dense_embeddings, dense_pe, mask_decoder,
                        multimask_output):
        """All objects of several images in one call: the decoder's ``repeat_image=False`` takes one
        image embedding per object, so each image's embedding and high-resolution maps are repeated
        for its objects here (what ``repeat_image`` / broadcasting do for one image)."""
        masks, iou, _, _ = (mask_decoder or self.mask_decoder)(
            image_embeddings=self._per_object(features, counts),
            image_pe=dense_pe,
            sparse_prompt_embeddings=sparse_embeddings,
            dense_prompt_embeddings=dense_embeddings,
            multimask_output=multimask_output,
            repeat_image=False,
            high_res_features=[self._per_object(features, counts, S0), self._per_object(features, counts, S1)],
        )
        return self._select(masks, iou, multimask_output)

    def trainable_parameters(self, *, train_heads: str = "single") -> List[nn.Parameter]:
        d = self.mask_decoder
        frozen = [d.conv_s0, d.conv_s1]  # applied at embedding time: their outputs are cached
        if train_heads == "single":
            frozen += list(d.output_hypernetworks_mlps)[1:] + [d.iou_prediction_head]
            if getattr(d, "pred_obj_score_head", None) is not None:
                frozen.append(d.pred_obj_score_head)
        skip = {id(p) for m in frozen for p in m.parameters()}
        return self._freeze_all_but([p for p in d.parameters() if id(p) not in skip])

    def mark_fine_tuned(self) -> None:
        self.mask_decoder.dynamic_multimask_via_stability = False
