"""The one place ``segment_anything`` is imported, after the torchvision stand-in where needed."""

from __future__ import annotations

from types import ModuleType


def sam_modeling() -> ModuleType:
    """``segment_anything.modeling``, importable on machines without a working torchvision.

    ``segment_anything`` imports four torchvision functions at import time; where torchvision is
    missing or broken, :func:`~stage1_pseudolabel.sam.torchvision_compat.ensure_torchvision` supplies
    them in memory first (nothing is installed). Idempotent and cheap after the first call.
    """
    from stage1_pseudolabel.sam.torchvision_compat import ensure_torchvision

    ensure_torchvision()
    import segment_anything.modeling as modeling

    return modeling
