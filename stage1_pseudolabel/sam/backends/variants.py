"""Every model type of every backend, as one table: :data:`VARIANTS` (name -> :class:`Variant`).

A row says which backend builds the model type, with which architecture, which checkpoint file it
loads, where that file is downloaded from and where it is published. Everything else reads this
table: the backends when they build, the checkpoint errors, ``--model-type``, and ``make weights``
with ``scripts/download_sam_weights.sh`` through the command line of this module::

    python -m stage1_pseudolabel.sam.backends.variants --file hq_vit_tiny   # sam_hq_vit_tiny.pth
    python -m stage1_pseudolabel.sam.backends.variants --url vit_b          # https://dl.fbaipublicfiles.com/...

This module imports nothing but the standard library (no torch, no model package).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple


@dataclass(frozen=True, kw_only=True)
class SamArchitecture:
    """Hyper-parameters of a ``segment_anything`` SAM (image encoder ViT + prompt encoder + decoder).

    Attributes:
        encoder_embed_dim: ViT width (1280 / 1024 / 768 for vit_h / vit_l / vit_b).
        encoder_depth: number of ViT blocks.
        encoder_num_heads: attention heads per block.
        encoder_global_attn_indexes: blocks with global attention (the others use windows).
        image_size: side ``S`` of the square encoder input ``[B, 3, S, S]`` (1024 for SAM).
        patch_size: ViT patch size; the embedding is ``[B, prompt_embed_dim, S / patch, S / patch]``.
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


@dataclass(frozen=True, kw_only=True)
class Release:
    """Where a family of checkpoints is published.

    Attributes:
        published_at: the page that lists the checkpoints (or how the project makes its own).
        download_base: the URL the file names are appended to; None: no file to download.
    """

    published_at: str
    download_base: Optional[str]


@dataclass(frozen=True, kw_only=True)
class Variant:
    """One model type.

    Attributes:
        name: what ``model_type``, ``--model-type`` and ``SAM_MODEL`` take.
        backend: the :attr:`~stage1_pseudolabel.sam.backends.base.SamBackend.backend` that builds it
            (``sam1``, ``sam2.1`` or ``hq-sam``).
        architecture: the ViT hyper-parameters the project builds it with (SAM 1 and HQ-SAM ViTs);
            None where the package's or the project's own builder makes it.
        config: the package's own name of the architecture: its ``sam_model_registry`` key
            (``segment_anything``, ``mobile_sam``, ``segment_anything_hq``), SAM 2's Hydra config,
            ``proxy`` for :func:`stage1_pseudolabel.sam.proxy.build_proxy_sam`.
        checkpoint_file: the checkpoint's file name (the published name; ``make weights`` and
            ``make stage1`` look for it under ``data/checkpoints``).
        checkpoint_bytes: the published file's size where it is recorded (truncation messages).
        release: where the file is published.
    """

    name: str
    backend: str
    architecture: Optional[SamArchitecture]
    config: str
    checkpoint_file: str
    checkpoint_bytes: Optional[int] = None
    release: Release

    @property
    def checkpoint_url(self) -> Optional[str]:
        """The file's download URL (None: not downloadable, e.g. the proxy SAM, made by ``make proxy-sam``)."""
        base = self.release.download_base
        return None if base is None else base + self.checkpoint_file


SAM1 = Release(published_at="https://github.com/facebookresearch/segment-anything#model-checkpoints",
               download_base="https://dl.fbaipublicfiles.com/segment_anything/")
MOBILE_SAM = Release(published_at="https://github.com/ChaoningZhang/MobileSAM",
                     download_base="https://github.com/ChaoningZhang/MobileSAM/raw/master/weights/")
PROXY = Release(published_at="`make proxy-sam` (the project's own pretraining, stage1_pseudolabel.proxy.train_proxy)",
                download_base=None)
SAM2 = Release(published_at="https://github.com/facebookresearch/sam2#model-description",
               download_base="https://dl.fbaipublicfiles.com/segment_anything_2/092824/")
HQ_SAM = Release(published_at="https://github.com/SysCV/sam-hq#model-checkpoints",
                 download_base="https://huggingface.co/lkeab/hq-sam/resolve/main/")

VIT_H = SamArchitecture(encoder_embed_dim=1280, encoder_depth=32, encoder_num_heads=16,
                        encoder_global_attn_indexes=(7, 15, 23, 31))
VIT_L = SamArchitecture(encoder_embed_dim=1024, encoder_depth=24, encoder_num_heads=16,
                        encoder_global_attn_indexes=(5, 11, 17, 23))
VIT_B = SamArchitecture(encoder_embed_dim=768, encoder_depth=12, encoder_num_heads=12,
                        encoder_global_attn_indexes=(2, 5, 8, 11))
#: A plain ViT of MobileSAM's size class (about 5.5 M encoder parameters), for speed measurements
#: only: not TinyViT, and MobileSAM's weights do not fit it.
VIT_T_SIZED = SamArchitecture(encoder_embed_dim=192, encoder_depth=12, encoder_num_heads=3,
                              encoder_global_attn_indexes=(2, 5, 8, 11))

_ROWS = (
    # SAM 1 (segment_anything), MobileSAM's TinyViT and the project's proxy SAM
    Variant(name="vit_h", backend="sam1", architecture=VIT_H, config="vit_h", checkpoint_file="sam_vit_h_4b8939.pth",
            checkpoint_bytes=2_564_550_879, release=SAM1),
    Variant(name="vit_l", backend="sam1", architecture=VIT_L, config="vit_l", checkpoint_file="sam_vit_l_0b3195.pth",
            checkpoint_bytes=1_249_524_607, release=SAM1),
    Variant(name="vit_b", backend="sam1", architecture=VIT_B, config="vit_b", checkpoint_file="sam_vit_b_01ec64.pth",
            checkpoint_bytes=375_042_383, release=SAM1),
    Variant(name="vit_t", backend="sam1", architecture=None, config="vit_t", checkpoint_file="mobile_sam.pt",
            release=MOBILE_SAM),
    Variant(name="proxy", backend="sam1", architecture=None, config="proxy", checkpoint_file="proxy_sam.pth",
            release=PROXY),
    # SAM 2.1 (sam2): config is the package's Hydra config
    Variant(name="sam2.1_hiera_tiny", backend="sam2.1", architecture=None, config="configs/sam2.1/sam2.1_hiera_t.yaml",
            checkpoint_file="sam2.1_hiera_tiny.pt", release=SAM2),
    Variant(name="sam2.1_hiera_small", backend="sam2.1", architecture=None, config="configs/sam2.1/sam2.1_hiera_s.yaml",
            checkpoint_file="sam2.1_hiera_small.pt", release=SAM2),
    Variant(name="sam2.1_hiera_base_plus", backend="sam2.1", architecture=None,
            config="configs/sam2.1/sam2.1_hiera_b+.yaml", checkpoint_file="sam2.1_hiera_base_plus.pt", release=SAM2),
    Variant(name="sam2.1_hiera_large", backend="sam2.1", architecture=None, config="configs/sam2.1/sam2.1_hiera_l.yaml",
            checkpoint_file="sam2.1_hiera_large.pt", release=SAM2),
    # HQ-SAM (segment_anything_hq): SAM 1's ViTs with the HQ decoder; Light HQ-SAM: MobileSAM's TinyViT
    Variant(name="hq_vit_h", backend="hq-sam", architecture=VIT_H, config="vit_h", checkpoint_file="sam_hq_vit_h.pth",
            release=HQ_SAM),
    Variant(name="hq_vit_l", backend="hq-sam", architecture=VIT_L, config="vit_l", checkpoint_file="sam_hq_vit_l.pth",
            release=HQ_SAM),
    Variant(name="hq_vit_b", backend="hq-sam", architecture=VIT_B, config="vit_b", checkpoint_file="sam_hq_vit_b.pth",
            release=HQ_SAM),
    Variant(name="hq_vit_tiny", backend="hq-sam", architecture=None, config="vit_tiny",
            checkpoint_file="sam_hq_vit_tiny.pth", release=HQ_SAM),
)

VARIANTS: Dict[str, Variant] = {v.name: v for v in _ROWS}

MODEL_TYPES: Tuple[str, ...] = tuple(VARIANTS)


def variant(model_type: str) -> Variant:
    """The row of ``model_type``; ValueError naming the model types for any other name."""
    if model_type not in VARIANTS:
        raise ValueError(f"unknown model type {model_type!r}; choose one of {', '.join(MODEL_TYPES)}")
    return VARIANTS[model_type]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Print one column of one row (what ``make weights`` and the download script read)."""
    p = argparse.ArgumentParser(prog="python -m stage1_pseudolabel.sam.backends.variants", description=main.__doc__)
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--file", metavar="MODEL_TYPE", help="the checkpoint's file name")
    what.add_argument("--url", metavar="MODEL_TYPE", help="its download URL (exit 1 where there is none)")
    what.add_argument("--published-at", metavar="MODEL_TYPE", help="where it is published")
    what.add_argument("--list", action="store_true", help="every model type, one a line")
    args = p.parse_args(argv)
    if args.list:
        print("\n".join(MODEL_TYPES))
        return 0
    name = args.file or args.url or args.published_at
    try:
        v = variant(name)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.url is not None and v.checkpoint_url is None:
        print(f"error: {name} has no download URL; it comes from {v.release.published_at}", file=sys.stderr)
        return 1
    print(v.checkpoint_file if args.file else v.checkpoint_url if args.url else v.release.published_at)
    return 0


if __name__ == "__main__":
    sys.exit(main())
