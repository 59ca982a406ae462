"""The interface every stage-1 model backend implements (SAM 1, SAM 2.1, HQ-SAM): :class:`SamBackend`.

A backend is an ``nn.Module`` with three children, ``image_encoder`` (frozen; None in training),
``prompt_encoder`` (frozen) and ``mask_decoder`` (what stage 1 fine-tunes), and says what is cached per
image, its geometry, which decoder parameters train, and how the objects of one or several images are
decoded in one call (docs/method.md, "SAM backends"). Features are a ``[B, C, h, w]`` tensor where the
embedding is all there is (SAM 1), else :class:`ImageFeatures`; :func:`as_features` takes both.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from stage1_pseudolabel.sam.backends.variants import Variant
from stage1_pseudolabel.sam.checkpoint import PathLike, checkpoint_fingerprint, state_fingerprint
from stage1_pseudolabel.sam.sdpa import use_sdpa_attention
from wsss.core.frames import SamFrame

EMBED = "image_embed"


class ImageFeatures:
    """Named encoder outputs of a batch of ``B`` images: ``{name: float [B, C, h, w]}``.

    ``image_embed`` is always present; :attr:`shape` is its shape, so code that only reads the
    embedding's size works with either a tensor or this.
    """

    def __init__(self, tensors: Mapping[str, torch.Tensor]) -> None:
        if EMBED not in tensors:
            raise ValueError(f"image features need {EMBED!r}, got {sorted(tensors)}")
        self.tensors: Dict[str, torch.Tensor] = dict(tensors)

    @property
    def embedding(self) -> torch.Tensor:
        return self.tensors[EMBED]

    @property
    def shape(self) -> torch.Size:
        return self.embedding.shape

    def __len__(self) -> int:
        return int(self.embedding.shape[0])

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.tensors[name]

    def names(self) -> List[str]:
        return list(self.tensors)

    def image(self, index: int) -> "ImageFeatures":
        """The features of one image of the batch (batch dimension kept: ``[1, C, h, w]``)."""
        return ImageFeatures({k: v[index : index + 1] for k, v in self.tensors.items()})

    def to(self, device=None, dtype: Optional[torch.dtype] = None, non_blocking: bool = False) -> "ImageFeatures":
        return ImageFeatures({k: v.to(device=device, dtype=dtype, non_blocking=non_blocking) for k, v in self.tensors.items()})


FeaturesLike = Union[torch.Tensor, ImageFeatures]


def as_features(x: FeaturesLike) -> ImageFeatures:
    """A ``[B, C, h, w]`` embedding tensor or :class:`ImageFeatures` as :class:`ImageFeatures`."""
    return x if isinstance(x, ImageFeatures) else ImageFeatures({EMBED: x})


class SamBackend(nn.Module):
    """Base class: the pipeline's view of one promptable-segmentation model.

    Subclasses set :attr:`backend` (``"sam1"``, ``"sam2.1"``, ``"hq-sam"``: the variant table's
    ``backend`` column), :attr:`padded` and implement :meth:`build`, :meth:`prepare_image`,
    :meth:`encode_batch`, :meth:`encode_prompts`, :meth:`decode` and :meth:`trainable_parameters`.

    Args:
        model_type: the variant name the model was built for (``vit_h``, ``sam2.1_hiera_large``, ...).
        image_encoder, prompt_encoder, mask_decoder: the official modules (shared, not copied).
        encoder_size: side of the square encoder input (1024 for the official variants).
        lowres: side of the decoder's low-res mask logits (256).
    """

    backend: str = "base"
    padded: bool = True

    def __init__(self, *, model_type: str, image_encoder: nn.Module, prompt_encoder: nn.Module,
                 mask_decoder: nn.Module, encoder_size: int, lowres: int) -> None:
        super().__init__()
        self.model_type = model_type
        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        self.encoder_size = int(encoder_size)
        self.lowres = int(lowres)

    @classmethod
    def build(cls, v: Variant, *, checkpoint: Optional[PathLike] = None, seed: Optional[int] = None,
              encoder: bool = True, **overrides) -> "SamBackend":
        """The backend of model type ``v``, random (seeded) or strictly loaded from ``checkpoint``, eval mode.

        Args:
            v: a row of the variant table whose ``backend`` is this class's :attr:`backend`.
            checkpoint: the official checkpoint file (``weights_only=True``, ``strict=True``); None: random.
            seed: seeds the random initialisation (the global RNG state is restored afterwards).
            encoder: False: the caller will not run the image encoder (training on cached embeddings),
                which a backend may then build without reading its weights.
            **overrides: reduced-size architecture overrides, as the backend's model builder takes them.
        """
        raise NotImplementedError

    def __setattr__(self, name: str, value) -> None:
        super().__setattr__(name, value)
        # Training drops the encoder (``model.image_encoder = None``): drop the package model's reference
        # too, so that its memory is freed.
        if name == "image_encoder" and value is None and "_official" in self.__dict__:
            setattr(self.__dict__["_official"], "image_encoder", None)

    @property
    def official(self) -> nn.Module:
        """The package's own model object these modules belong to (what its official predictor takes)."""
        return self.__dict__["_official"]

    # -- geometry ------------------------------------------------------------------------------------
    @property
    def geometry(self) -> str:
        """``longest_side_pad`` (SAM 1, HQ-SAM) or ``square`` (SAM 2): recorded in the cache key."""
        return "longest_side_pad" if self.padded else "square"

    def frame(self, *, height: int, width: int) -> SamFrame:
        """The :class:`SamFrame` of a ``height x width`` image in this backend's geometry."""
        return SamFrame(height=height, width=width, encoder_size=self.encoder_size, lowres=self.lowres,
                        padded=self.padded)

    def feature_shapes(self) -> Dict[str, Tuple[int, ...]]:
        """``{name: (C, h, w)}`` of what is cached per image; ``image_embed`` first."""
        c = int(self.prompt_encoder.embed_dim)
        h, w = (int(s) for s in self.prompt_encoder.image_embedding_size)
        return {EMBED: (c, h, w)}

    # -- encoding ------------------------------------------------------------------------------------
    def prepare_image(self, image: np.ndarray) -> torch.Tensor:
        """``uint8 [H, W, 3]`` RGB to the CPU tensor :meth:`preprocess` batches (runs in loader threads)."""
        raise NotImplementedError

    def preprocess(self, images: Sequence[torch.Tensor], *, device: torch.device) -> torch.Tensor:
        """Prepared images to the encoder's ``float [B, 3, S, S]`` input on ``device``."""
        raise NotImplementedError

    def encode_batch(self, batch: torch.Tensor) -> Dict[str, torch.Tensor]:
        """``float [B, 3, S, S]`` to ``{name: [B, C, h, w]}`` (:meth:`feature_shapes`)."""
        raise NotImplementedError

    @torch.inference_mode()
    def encode(self, images: Sequence[torch.Tensor], *, device: torch.device) -> ImageFeatures:
        """Features of prepared images (:meth:`prepare_image`), one encoder call for the batch."""
        return ImageFeatures(self.encode_batch(self.preprocess(images, device=device)))

    def encoder_state(self) -> Dict[str, torch.Tensor]:
        """Every tensor that the cached features depend on (for the cache's fingerprint)."""
        return {f"image_encoder.{k}": v for k, v in self.image_encoder.state_dict().items()}

    def encoder_fingerprint(self, checkpoint: Optional[PathLike]) -> str:
        """What the cached features depend on: the checkpoint file's fingerprint, else the weights' of
        :meth:`encoder_state` (random weights). With a checkpoint the encoder is never read."""
        if checkpoint is not None:
            return checkpoint_fingerprint(checkpoint)
        return state_fingerprint(self.encoder_state())

    # -- prompts and the decoder ---------------------------------------------------------------------
    def dense_pe(self) -> torch.Tensor:
        """Dense positional encoding of the embedding grid ``[1, C, h, w]`` (compute once, reuse)."""
        with torch.no_grad():
            return self.prompt_encoder.get_dense_pe()

    def encode_prompts(self, *, boxes: Optional[torch.Tensor], point_coords: Optional[torch.Tensor],
                       point_labels: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Sparse ``[N, T, C]`` and dense ``[N, C, h, w]`` prompt embeddings (frozen: no gradient).

        ``boxes`` ``[N, 4]`` and ``point_coords`` ``[N, P, 2]`` are in this backend's input frame
        (:meth:`frame`), ``point_labels`` ``[N, P]`` (1 / 0 / -1 padding).
        """
        raise NotImplementedError

    def decode(self, features: FeaturesLike, *, sparse_embeddings: torch.Tensor, dense_embeddings: torch.Tensor,
               dense_pe: torch.Tensor, mask_decoder: Optional[nn.Module] = None,
               multimask_output: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
        """Low-res logits ``float [N, L, L]`` and predicted IoU ``[N]`` of every object of one image.

        Args:
            features: the image's features (batch 1).
            mask_decoder: the module to call (a DDP wrapper, or a frozen copy); default :attr:`mask_decoder`.
            multimask_output: keep, per object, the multimask output with the highest predicted IoU.
        """
        raise NotImplementedError

    def decode_images(self, features: Sequence[FeaturesLike], *, sparse_embeddings: Sequence[torch.Tensor],
                      dense_embeddings: Sequence[torch.Tensor], dense_pe: torch.Tensor,
                      mask_decoder: Optional[nn.Module] = None,
                      multimask_output: bool = False) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        """:meth:`decode` of several images in one mask-decoder call: ``[(logits [N_i, L, L], iou [N_i])]``.

        Entry ``i`` is one image's features (batch 1) with the sparse ``[N_i, T, C]`` and dense
        ``[N_i, C, h, w]`` embeddings of its objects; every object attends to its own entry's features,
        so each entry's result is what :meth:`decode` gives for it alone (up to float rounding of the
        larger batch). All sparse embeddings must have the same token count ``T`` (the decoder's
        token sequence has one length per call): the caller buckets prompt groups by ``T``
        (:meth:`~stage1_pseudolabel.pipeline.predict.DecoderRunner.batch_object_logits`). The same
        image may appear in several entries. Entries with ``N_i = 0`` give empty results.

        The backends make the call through the decoder's own ``forward`` (so ``mask_decoder`` may be
        a DDP wrapper or a frozen copy): :meth:`_decode_objects`.
        """
        feats = [as_features(f) for f in features]
        if not (len(feats) == len(sparse_embeddings) == len(dense_embeddings)):
            raise ValueError(f"decode_images: {len(feats)} features, {len(sparse_embeddings)} sparse and "
                             f"{len(dense_embeddings)} dense embeddings")
        out = [self._empty(f) for f in feats]
        live = [i for i, s in enumerate(sparse_embeddings) if s.shape[0] > 0]
        if not live:
            return out
        tokens = {tuple(sparse_embeddings[i].shape[1:]) for i in live}
        if len(tokens) > 1:
            raise ValueError(f"decode_images: sparse embeddings of one call need one token count, got {sorted(tokens)}")
        if len(live) == 1:  # one image: exactly decode()
            i = live[0]
            out[i] = self.decode(feats[i], sparse_embeddings=sparse_embeddings[i], dense_embeddings=dense_embeddings[i],
                                 dense_pe=dense_pe, mask_decoder=mask_decoder, multimask_output=multimask_output)
            return out
        counts = [int(sparse_embeddings[i].shape[0]) for i in live]
        masks, iou = self._decode_objects(
            [feats[i] for i in live], counts,
            sparse_embeddings=torch.cat([sparse_embeddings[i] for i in live]),
            dense_embeddings=torch.cat([dense_embeddings[i] for i in live]),
            dense_pe=dense_pe, mask_decoder=mask_decoder, multimask_output=multimask_output,
        )
        for i, m, q in zip(live, masks.split(counts), iou.split(counts)):
            out[i] = (m, q)
        return out

    def _decode_objects(self, features: List[ImageFeatures], counts: List[int], *, sparse_embeddings: torch.Tensor,
                        dense_embeddings: torch.Tensor, dense_pe: torch.Tensor, mask_decoder: Optional[nn.Module],
                        multimask_output: bool) -> Tuple[torch.Tensor, torch.Tensor]:
        """``[sum N_i, L, L]`` logits and ``[sum N_i]`` IoU of the objects of several images (``counts[i]``
        consecutive objects per image), one decoder call. This fallback makes one :meth:`decode` per image."""
        parts, start = [], 0
        for f, n in zip(features, counts):
            parts.append(self.decode(f, sparse_embeddings=sparse_embeddings[start : start + n],
                                     dense_embeddings=dense_embeddings[start : start + n], dense_pe=dense_pe,
                                     mask_decoder=mask_decoder, multimask_output=multimask_output))
            start += n
        return torch.cat([m for m, _ in parts]), torch.cat([q for _, q in parts])

    @staticmethod
    def _per_object(features: Sequence[ImageFeatures], counts: Sequence[int], name: str = EMBED) -> torch.Tensor:
        """Feature ``name`` of each image repeated for its objects: ``[sum N_i, C, h, w]``."""
        return torch.cat([f[name].expand(n, -1, -1, -1) for f, n in zip(features, counts)])

    def trainable_parameters(self, *, train_heads: str = "single") -> List[nn.Parameter]:
        """Freeze everything but the decoder parameters stage 1 trains; returns them (decoder in train mode).

        ``train_heads="single"`` also freezes the decoder parts the single-mask output never uses,
        so every trainable parameter gets a gradient (DDP needs no unused-parameter scan).
        """
        raise NotImplementedError

    def set_speed_options(self, *, attention: str = "eager", compile_encoder: bool = False) -> None:
        """``attention="sdpa"``: SDPA in the ViT encoder (SAM 1, HQ-SAM; SAM 2's Hiera has it already).
        ``compile_encoder``: ``torch.compile`` the image encoder in place (state dict unchanged)."""
        if attention == "sdpa" and self.image_encoder is not None:
            use_sdpa_attention(self.image_encoder)
        if compile_encoder and self.image_encoder is not None:
            self.image_encoder.compile()

    def mark_fine_tuned(self) -> None:
        """Called when a fine-tuned decoder is loaded or trained (SAM 2 turns its zero-shot fallback off)."""

    # -- helpers for subclasses ----------------------------------------------------------------------
    def _freeze_all_but(self, params: Sequence[nn.Parameter]) -> List[nn.Parameter]:
        keep = {id(p) for p in params}
        for p in self.parameters():
            p.requires_grad_(id(p) in keep)
        self.eval()
        self.mask_decoder.train()
        return [p for p in self.mask_decoder.parameters() if p.requires_grad]

    @staticmethod
    def _select(masks: torch.Tensor, iou: torch.Tensor, multimask_output: bool) -> Tuple[torch.Tensor, torch.Tensor]:
        """``[N, M, L, L]`` decoder outputs to one mask per object (best IoU among several, or the only one)."""
        if multimask_output and masks.shape[1] > 1:
            best = iou.argmax(dim=1)
            idx = torch.arange(masks.shape[0], device=masks.device)
            return masks[idx, best], iou[idx, best]
        return masks[:, 0], iou[:, 0]

    def _empty(self, features: ImageFeatures) -> Tuple[torch.Tensor, torch.Tensor]:
        emb = features.embedding
        return emb.new_zeros((0, self.lowres, self.lowres)), emb.new_zeros((0,))
