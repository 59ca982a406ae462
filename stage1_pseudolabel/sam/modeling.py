"""The one place ``segment_anything``, ``sam2`` and ``segment_anything_hq`` are imported.

Each accessor installs what the package needs first (the torchvision stand-in, and for HQ-SAM the
timm stand-in) and then imports it; nothing happens when this module itself is imported.
"""

from __future__ import annotations

from types import ModuleType

from stage1_pseudolabel.sam.timm_compat import ensure_timm
from stage1_pseudolabel.sam.torchvision_compat import ensure_torchvision


def sam_modeling() -> ModuleType:
    """``segment_anything.modeling``, importable on machines without a working torchvision.

    ``segment_anything`` imports four torchvision functions at import time; where torchvision is
    missing or broken, :func:`~stage1_pseudolabel.sam.torchvision_compat.ensure_torchvision` supplies
    them in memory first (nothing is installed). Idempotent and cheap after the first call.
    """
    ensure_torchvision()
    import segment_anything.modeling as modeling

    return modeling


def _missing(package: str, pip_name: str, what: str) -> ImportError:
    return ImportError(
        f"{what} needs the optional package {package!r}, which is not installed: "
        f"`pip install --no-deps {pip_name}` (requirements/backends.txt; `make setup` installs it)"
    )


def sam2_package() -> ModuleType:
    """The ``sam2`` package (SAM 2 / 2.1), with the torchvision stand-in where needed.

    Importing ``sam2`` initialises Hydra's global config module (``sam2/__init__.py``); that is the
    package's own behaviour and happens only on the first call of this function.
    """
    ensure_torchvision()
    try:
        import sam2
        import sam2.build_sam  # noqa: F401
        import sam2.modeling.sam2_base  # noqa: F401
    except ImportError as exc:
        if getattr(exc, "name", "") and exc.name.split(".")[0] in ("sam2", "hydra", "omegaconf", "iopath"):
            raise _missing("sam2", "sam2==1.1.0 hydra-core omegaconf iopath", "the SAM 2.1 backend") from exc
        raise
    return sam2


def sam_hq_package() -> ModuleType:
    """The ``segment_anything_hq`` package (HQ-SAM), with the torchvision and timm stand-ins where needed."""
    ensure_torchvision()
    ensure_timm()
    try:
        import segment_anything_hq
    except ImportError as exc:
        if getattr(exc, "name", "") and exc.name.split(".")[0] == "segment_anything_hq":
            raise _missing("segment_anything_hq", "segment-anything-hq==0.3", "the HQ-SAM backend") from exc
        raise
    return segment_anything_hq
