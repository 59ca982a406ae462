"""Tensors over named axes: the layout of a sub-formula's value on one image.

Every variable owns tensor axes: a pixel variable bound by ``pixels`` / ``box(b)`` / ``scribble(k)``
owns a row and a column axis (``H``, ``W``); one bound by a row ``r`` of a box owns only a column axis
(its row is ``r``'s); a neighbour ``q in N8(p)`` owns one *offset* axis (its coordinates are ``p``'s
shifted by each offset, evaluated by shifting whole maps); class, box and row/column variables own
one axis each (``K``, ``B``, ``H`` / ``W``). A sub-formula evaluates to a tensor over the axes of its
free variables (:class:`Value`), its axes in creation order (:class:`Axes`), so that two values meet
by broadcasting once aligned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F

#: Neighbour offsets ``(dy, dx)``.
Offsets = Tuple[Tuple[int, int], ...]


@dataclass(frozen=True, kw_only=True)
class Var:
    """A bound variable. ``kind``: pixel | class | box | row | col; ``own``: the axes it owns.

    Pixel variables: ``yx`` their base row/column axes, ``offsets`` the neighbour offset axes that
    shift them. Row/column variables: ``box`` the box variable they belong to.
    """

    name: str
    kind: str
    own: Tuple[str, ...]
    yx: Tuple[str, str] = ("", "")
    offsets: Tuple[Tuple[str, Offsets], ...] = ()
    box: str = ""


@dataclass
class Value:
    """A tensor over named axes (sorted by creation rank); ``crisp``: booleans, else log-truths."""

    t: torch.Tensor
    axes: Tuple[str, ...]
    crisp: bool


def shift(t: torch.Tensor, dy: int, dx: int, fill) -> torch.Tensor:
    """``out[..., y, x] = t[..., y + dy, x + dx]``, ``fill`` outside the map (differentiable)."""
    h, w = t.shape[-2:]
    src = t[..., max(dy, 0): h + min(dy, 0), max(dx, 0): w + min(dx, 0)]
    pad = (max(-dx, 0), max(dx, 0), max(-dy, 0), max(dy, 0))
    if src.dtype == torch.bool:
        return F.pad(src.to(torch.uint8), pad, value=int(fill)).bool()
    return F.pad(src, pad, value=fill)


def shifted_stack(t: torch.Tensor, offsets: Offsets, fill) -> torch.Tensor:
    """``[O, *t.shape]``: :func:`shift` for every offset, written into one buffer (one copy each)."""
    if t.dtype == torch.bool:
        return torch.stack([shift(t, dy, dx, fill) for dy, dx in offsets])
    h, w = t.shape[-2:]
    out = t.new_full((len(offsets), *t.shape), float(fill))
    for o, (dy, dx) in enumerate(offsets):
        out[o, ..., max(-dy, 0): h - max(dy, 0), max(-dx, 0): w - max(dx, 0)] = \
            t[..., max(dy, 0): h + min(dy, 0), max(dx, 0): w + min(dx, 0)]
    return out


class Axes:
    """The named axes of one bound formula, in creation order.

    Attributes:
        rank: axis name -> its creation index (the order of a value's axes).
        sizes: axis name -> its length.
    """

    def __init__(self) -> None:
        self.rank: Dict[str, int] = {}
        self.sizes: Dict[str, int] = {}

    def new(self, name: str, size: int) -> str:
        """A new axis of length ``size``; its name is ``name`` made unique (sibling quantifiers may
        reuse a variable name)."""
        name = f"{name}#{len(self.rank)}"
        self.rank[name] = len(self.rank)
        self.sizes[name] = size
        return name

    def shape(self, axes: Sequence[str]) -> List[int]:
        return [self.sizes[a] for a in axes]

    def value(self, t: torch.Tensor, axes: Sequence[str], crisp: bool) -> Value:
        """``t`` with dimensions named ``axes``, permuted into creation order."""
        order = sorted(range(len(axes)), key=lambda i: self.rank[axes[i]])
        if order != list(range(len(axes))):
            t = t.permute(*order)
        return Value(t, tuple(axes[i] for i in order), crisp)

    def aligned(self, *values: Value) -> Tuple[Tuple[str, ...], List[torch.Tensor]]:
        """The union of the values' axes, and each value's tensor reshaped to broadcast over it."""
        axes = tuple(sorted({a for v in values for a in v.axes}, key=self.rank.__getitem__))
        out = []
        for v in values:
            shape = [v.t.shape[v.axes.index(a)] if a in v.axes else 1 for a in axes]
            out.append(v.t.reshape(shape))
        return axes, out

    def at(self, var: Var, field_t: torch.Tensor, lead: Sequence[str], fill, crisp: bool) -> Value:
        """A map ``[*lead, H, W]`` read at pixel variable ``var`` (shifted by its neighbour offsets)."""
        t, axes = field_t, tuple(lead) + var.yx
        for axis, offsets in var.offsets:
            t = shifted_stack(t, offsets, fill)
            axes = (axis,) + axes
        return self.value(t, axes, crisp)
