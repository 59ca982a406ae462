"""SAM 1 (``segment_anything``: vit_h / vit_l / vit_b), MobileSAM (vit_t) and the project's proxy SAM.

Geometry: the longest side is resized to ``S`` (1024) with PIL bilinear and the image zero-padded
at the bottom and right (``ResizeLongestSide`` + ``Sam.preprocess``); low-res logits ``S/4`` (256)
over the padded square. Cached per image: the ``256 x 64 x 64`` embedding only. Trained: the whole
mask decoder, or (``train_heads="single"``) all of it but the three multimask hyper-network MLPs and
the IoU head, which the single-mask output never uses.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from stage1_pseudolabel.sam.backends.base import EMBED, FeaturesLike, SamBackend, as_features
from stage1_pseudolabel.sam.encoder import preprocess, resize_for_encoder


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
