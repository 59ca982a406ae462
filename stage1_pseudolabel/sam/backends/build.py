"""The backend of any model type: the variant table's ``backend`` column looked up in :data:`BACKENDS`."""

from __future__ import annotations

from typing import Dict, Optional, Type, Union

import torch

from stage1_pseudolabel.sam.backends.base import SamBackend
from stage1_pseudolabel.sam.backends.hq import HqSamBackend
from stage1_pseudolabel.sam.backends.sam1 import Sam1Backend
from stage1_pseudolabel.sam.backends.sam2 import Sam2Backend
from stage1_pseudolabel.sam.backends.variants import variant
from stage1_pseudolabel.sam.checkpoint import PathLike

#: backend name (the variant table's ``backend`` column) -> its class
BACKENDS: Dict[str, Type[SamBackend]] = {cls.backend: cls for cls in (Sam1Backend, Sam2Backend, HqSamBackend)}


def build_backend(model_type: str, *, checkpoint: Optional[PathLike] = None, seed: Optional[int] = None,
                  device: Union[str, torch.device] = "cpu", encoder: bool = True, **overrides) -> SamBackend:
    """The backend of ``model_type``, random (seeded) or strictly loaded from ``checkpoint``, eval mode.

    Args:
        model_type: one of :data:`~stage1_pseudolabel.sam.backends.variants.MODEL_TYPES`.
        checkpoint: the official checkpoint file (``weights_only=True``, ``strict=True``); None: random.
        seed: seeds the random initialisation (the global RNG state is restored afterwards).
        device: where the model lives.
        encoder: False: the caller will not run the image encoder (training on cached embeddings);
            SAM 1 then neither initialises nor reads its weights
            (:func:`~stage1_pseudolabel.sam.backends.sam1.build_sam`), the other backends build it all.
        **overrides: reduced-size architecture overrides (SAM 1 / HQ-SAM:
            :class:`~stage1_pseudolabel.sam.backends.variants.SamArchitecture` fields; SAM 2:
            :func:`~stage1_pseudolabel.sam.backends.sam2.sam2_overrides` keywords).
    """
    v = variant(model_type)
    backend = BACKENDS[v.backend].build(v, checkpoint=checkpoint, seed=seed, encoder=encoder, **overrides)
    return backend.to(device).eval()
