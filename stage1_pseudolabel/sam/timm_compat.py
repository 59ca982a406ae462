"""Let ``segment_anything_hq`` import where ``timm`` is missing.

``segment_anything_hq.modeling.tiny_vit_sam`` (the TinyViT of MobileSAM / light HQ-SAM, imported by
the package's ``__init__`` whichever model is built) imports four names from ``timm`` at import
time: ``timm.models.layers.DropPath``, ``to_2tuple``, ``trunc_normal_`` and
``timm.models.registry.register_model``. ``timm`` itself imports torchvision everywhere and the
project never installs torchvision, so where ``timm`` is not importable :func:`ensure_timm`
registers a tiny stand-in in ``sys.modules`` with those four names, same semantics (stochastic depth
that is the identity in eval mode, ``nn.init.trunc_normal_``, a no-op registry decorator). Nothing is
installed on disk; importing this module does nothing.
"""

from __future__ import annotations

import collections.abc
import importlib.util
import sys
import types

import torch
from torch import nn

_STAND_IN_ATTR = "__wsss_stand_in__"


class DropPath(nn.Module):
    """Stochastic depth per sample (identity in eval mode or with ``drop_prob == 0``), as timm's."""

    def __init__(self, drop_prob: float = 0.0, scale_by_keep: bool = True) -> None:
        super().__init__()
        self.drop_prob = float(drop_prob)
        self.scale_by_keep = scale_by_keep

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        if keep > 0 and self.scale_by_keep:
            mask.div_(keep)
        return x * mask


def to_2tuple(x):
    """``x`` twice, unless it is already an iterable (timm's ``to_2tuple``)."""
    if isinstance(x, collections.abc.Iterable) and not isinstance(x, str):
        return tuple(x)
    return (x, x)


def trunc_normal_(tensor: torch.Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0):
    return nn.init.trunc_normal_(tensor, mean=mean, std=std, a=a, b=b)


def register_model(fn):
    """A no-op: the stand-in keeps no model registry."""
    return fn


def ensure_timm() -> bool:
    """Make the ``timm`` names ``segment_anything_hq`` needs importable.

    Returns:
        True if a real ``timm`` is used, False if the stand-in is (installed now or before).
    """
    mod = sys.modules.get("timm")
    if mod is not None:
        return not getattr(mod, _STAND_IN_ATTR, False)
    if importlib.util.find_spec("timm") is not None:
        try:
            import timm.models.layers  # noqa: F401
            import timm.models.registry  # noqa: F401

            return True
        except Exception:  # a timm whose torchvision is broken
            for name in [m for m in sys.modules if m == "timm" or m.startswith("timm.")]:
                del sys.modules[name]
    root = types.ModuleType("timm")
    setattr(root, _STAND_IN_ATTR, True)
    models = types.ModuleType("timm.models")
    layers = types.ModuleType("timm.models.layers")
    registry = types.ModuleType("timm.models.registry")
    layers.DropPath, layers.to_2tuple, layers.trunc_normal_ = DropPath, to_2tuple, trunc_normal_
    registry.register_model = register_model
    models.layers, models.registry, root.models = layers, registry, models
    sys.modules.update({"timm": root, "timm.models": models, "timm.models.layers": layers,
                        "timm.models.registry": registry})
    return False
