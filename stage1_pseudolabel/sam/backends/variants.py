"""Model types of every backend, as data: name -> backend, official config and checkpoint file.

Importing this module imports no model package (``sam2``, ``segment_anything_hq`` are imported by
:mod:`stage1_pseudolabel.sam.modeling` when a model is built).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

SAM2_DL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/"
SAM2_URL = "https://github.com/facebookresearch/sam2#model-description"
SAM_HQ_URL = "https://github.com/SysCV/sam-hq#model-checkpoints"


@dataclass(frozen=True)
class BackendVariant:
    """One model type.

    Attributes:
        name: what ``model_type`` / ``--model-type`` / ``SAM_MODEL`` take.
        backend: ``sam1``, ``sam2.1`` or ``hq-sam``.
        config: the package's own architecture name (SAM 2: its Hydra config; HQ-SAM: its ViT variant).
        checkpoint_file: the published checkpoint's file name (None: no published file).
        checkpoint_url: where it is published.
    """

    name: str
    backend: str
    config: Optional[str]
    checkpoint_file: Optional[str]
    checkpoint_url: Optional[str]


_SAM2 = {
    "sam2.1_hiera_tiny": ("configs/sam2.1/sam2.1_hiera_t.yaml", "sam2.1_hiera_tiny.pt"),
    "sam2.1_hiera_small": ("configs/sam2.1/sam2.1_hiera_s.yaml", "sam2.1_hiera_small.pt"),
    "sam2.1_hiera_base_plus": ("configs/sam2.1/sam2.1_hiera_b+.yaml", "sam2.1_hiera_base_plus.pt"),
    "sam2.1_hiera_large": ("configs/sam2.1/sam2.1_hiera_l.yaml", "sam2.1_hiera_large.pt"),
}
_HQ = {
    "hq_vit_h": ("vit_h", "sam_hq_vit_h.pth"),
    "hq_vit_l": ("vit_l", "sam_hq_vit_l.pth"),
    "hq_vit_b": ("vit_b", "sam_hq_vit_b.pth"),
    # Light HQ-SAM: MobileSAM's TinyViT encoder (segment_anything_hq ships the TinyViT class) + the HQ decoder
    "hq_vit_tiny": ("vit_tiny", "sam_hq_vit_tiny.pth"),
}

VARIANTS: Dict[str, BackendVariant] = {
    **{n: BackendVariant(n, "sam1", n, None, None) for n in ("vit_h", "vit_l", "vit_b", "vit_t", "proxy")},
    **{n: BackendVariant(n, "sam2.1", cfg, f, SAM2_DL + f) for n, (cfg, f) in _SAM2.items()},
    **{n: BackendVariant(n, "hq-sam", vit, f, SAM_HQ_URL) for n, (vit, f) in _HQ.items()},
}

MODEL_TYPES: Tuple[str, ...] = tuple(VARIANTS)


def variant(model_type: str) -> BackendVariant:
    if model_type not in VARIANTS:
        raise ValueError(f"unknown model type {model_type!r}; choose one of {', '.join(MODEL_TYPES)}")
    return VARIANTS[model_type]
