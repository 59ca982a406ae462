"""Stage-1 model backends: SAM 1 (vit_h / vit_l / vit_b, MobileSAM vit_t, proxy), SAM 2.1, HQ-SAM.

:func:`build_backend` builds the backend of a model type (:data:`MODEL_TYPES`, data in
:mod:`~stage1_pseudolabel.sam.backends.variants`); the interface is
:class:`~stage1_pseudolabel.sam.backends.base.SamBackend`. Importing this package imports no model
package and installs no stand-in: that happens when a backend is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import torch

from stage1_pseudolabel.sam.backends.variants import MODEL_TYPES, VARIANTS, variant

PathLike = Union[str, Path]


def build_backend(model_type: str, *, checkpoint: Optional[PathLike] = None, seed: Optional[int] = None,
                  device: Union[str, torch.device] = "cpu", encoder: bool = True, **overrides):
    """The backend of ``model_type``, random (seeded) or strictly loaded from ``checkpoint``, eval mode.

    Args:
        model_type: one of :data:`MODEL_TYPES`.
        checkpoint: the official checkpoint file (``weights_only=True``, ``strict=True``); None: random.
        seed: seeds the random initialisation (the global RNG state is restored afterwards).
        device: where the model lives.
        encoder: False: the caller will not run the image encoder (training on cached embeddings);
            SAM 1 then neither initialises nor reads its weights
            (:func:`~stage1_pseudolabel.sam.registry.build_sam`), the other backends build it all.
        **overrides: reduced-size architecture overrides (SAM 1 / HQ-SAM:
            :class:`~stage1_pseudolabel.sam.registry.SamArchitecture` fields; SAM 2:
            :func:`~stage1_pseudolabel.sam.backends.sam2.sam2_overrides` keywords).
    """
    v = variant(model_type)
    if v.backend == "sam1":
        from stage1_pseudolabel.sam.backends.sam1 import Sam1Backend
        from stage1_pseudolabel.sam.registry import build_sam

        sam = build_sam(model_type, checkpoint=checkpoint, seed=seed, device="cpu", encoder=encoder, **overrides)
        return Sam1Backend(model_type=model_type, sam=sam).to(device).eval()
    from stage1_pseudolabel.sam.backends.loading import check_checkpoint_exists, load_strict

    if checkpoint is not None:
        check_checkpoint_exists(checkpoint, model_type)
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        if v.backend == "sam2.1":
            from stage1_pseudolabel.sam.backends.sam2 import build_sam2_model

            model = build_sam2_model(v.config, **overrides)
        else:
            from stage1_pseudolabel.sam.backends.hq import build_hq_model

            model = build_hq_model(v.config, **overrides)
    if checkpoint is not None:
        load_strict(model, checkpoint, model_type=model_type)
    if v.backend == "sam2.1":
        from stage1_pseudolabel.sam.backends.sam2 import Sam2Backend

        backend = Sam2Backend(model_type=model_type, sam2=model)
    else:
        from stage1_pseudolabel.sam.backends.hq import HqSamBackend

        backend = HqSamBackend(model_type=model_type, sam=model)
    return backend.to(device).eval()


__all__ = ["MODEL_TYPES", "VARIANTS", "build_backend", "variant"]
