"""The meaning of the language's sets on one image: each binder creates its variable's axes and the
``bool`` mask of the set's members over them, computed once per image.

A binder is ``bind(ctx, ref, var, scope) -> (Var, Value)``: ``ref`` the set as written, ``var`` the
name of the variable it binds, ``scope`` the variables bound around it. Pixel masks hold valid pixels
only; a neighbour is a member where it lies inside the map and is valid.
"""

from __future__ import annotations

from typing import Callable, Mapping, Tuple

import torch

from logic.formula.axes import Offsets, Value, Var
from logic.formula.context import ImageContext
from logic.formula.parser import SetRef

SetBinder = Callable[[ImageContext, SetRef, str, Mapping[str, Var]], Tuple[Var, Value]]


# -- pixels ----------------------------------------------------------------------------------------
def _pixel_var(ctx: ImageContext, v: str) -> Tuple[Var, str, str]:
    y, x = ctx.axes.new(f"y:{v}", ctx.inputs.height), ctx.axes.new(f"x:{v}", ctx.inputs.width)
    return Var(name=v, kind="pixel", own=(y, x), yx=(y, x)), y, x


def bind_pixels(ctx: ImageContext, ref: SetRef, v: str, scope: Mapping[str, Var]) -> Tuple[Var, Value]:
    """``pixels``: ``[H, W]`` the valid pixels."""
    var, y, x = _pixel_var(ctx, v)
    return var, ctx.axes.value(ctx.inputs.valid, (y, x), True)


def bind_outside_boxes(ctx: ImageContext, ref: SetRef, v: str, scope: Mapping[str, Var]) -> Tuple[Var, Value]:
    """``outside_boxes``: ``[H, W]`` valid pixels in no box."""
    var, y, x = _pixel_var(ctx, v)
    return var, ctx.axes.value(ctx.inputs.valid & ~ctx.inputs.box_cover, (y, x), True)


def bind_inside_boxes(ctx: ImageContext, ref: SetRef, v: str, scope: Mapping[str, Var]) -> Tuple[Var, Value]:
    """``inside_boxes``: ``[H, W]`` valid pixels in some box."""
    var, y, x = _pixel_var(ctx, v)
    return var, ctx.axes.value(ctx.inputs.valid & ctx.inputs.box_cover, (y, x), True)


def bind_box(ctx: ImageContext, ref: SetRef, v: str, scope: Mapping[str, Var]) -> Tuple[Var, Value]:
    """``box(b)``: ``[B, H, W]`` the valid pixels of each box."""
    var, y, x = _pixel_var(ctx, v)
    box = scope[ref.args[0].text]
    in_rows, in_cols = ctx.box_spans()
    mask = in_rows[:, :, None] & in_cols[:, None, :] & ctx.inputs.valid[None]
    return var, ctx.axes.value(mask, (box.own[0], y, x), True)


def bind_scribble(ctx: ImageContext, ref: SetRef, v: str, scope: Mapping[str, Var]) -> Tuple[Var, Value]:
    """``scribble(k)``: ``[K, H, W]`` for a class variable, ``[H, W]`` for a class name (none: empty)."""
    var, y, x = _pixel_var(ctx, v)
    labels, valid = ctx.inputs.scribbles, ctx.inputs.valid
    arg = ref.args[0].text
    if arg in scope:
        classes = torch.arange(ctx.inputs.num_labels, device=valid.device)
        mask = (labels[None] == classes[:, None, None]) & valid[None]
        return var, ctx.axes.value(mask, (scope[arg].own[0], y, x), True)
    ch = ctx.channel(arg)
    mask = (labels == ch) & valid if ch is not None else torch.zeros_like(valid)
    return var, ctx.axes.value(mask, (y, x), True)


def bind_line(ctx: ImageContext, ref: SetRef, v: str, scope: Mapping[str, Var]) -> Tuple[Var, Value]:
    """``p in r`` for a row (column) variable ``r`` of box ``b``: ``[B, H, W]`` the valid pixels of
    each row (column) of each box; the pixel owns the column (row) axis only."""
    line = scope[ref.name]
    box = scope[line.box]
    in_rows, in_cols = ctx.box_spans()
    valid = ctx.inputs.valid
    if line.kind == "row":
        x = ctx.axes.new(f"x:{v}", ctx.inputs.width)
        mask = in_cols[:, None, :] & valid[None]  # [B, H (row), W (p)]
        return Var(name=v, kind="pixel", own=(x,), yx=(line.own[0], x)), ctx.axes.value(mask, (box.own[0], line.own[0], x), True)
    y = ctx.axes.new(f"y:{v}", ctx.inputs.height)
    mask = in_rows[:, :, None] & valid[None]  # [B, H (p), W (column)]
    return Var(name=v, kind="pixel", own=(y,), yx=(y, line.own[0])), ctx.axes.value(mask, (box.own[0], y, line.own[0]), True)


# -- neighbours ------------------------------------------------------------------------------------
def n4(d: int) -> Offsets:
    """The 4 neighbours at distance ``d``."""
    return ((-d, 0), (0, -d), (0, d), (d, 0))


def n8(d: int) -> Offsets:
    """The 8 neighbours at distance ``d``."""
    return ((-d, -d), (-d, 0), (-d, d), (0, -d), (0, d), (d, -d), (d, 0), (d, d))


def next4(d: int) -> Offsets:
    """The following 4-neighbours: each unordered pair of :func:`n4` once."""
    return ((0, d), (d, 0))


def next8(d: int) -> Offsets:
    """The following 8-neighbours: each unordered pair of :func:`n8` once."""
    return ((0, d), (d, 0), (d, d), (d, -d))


def disc(d: int) -> Offsets:
    """Every other pixel within Euclidean distance ``d``."""
    return tuple((dy, dx) for dy in range(-d, d + 1) for dx in range(-d, d + 1)
                 if (dy, dx) != (0, 0) and dy * dy + dx * dx <= d * d)


def neighbours(offsets: Callable[[int], Offsets]) -> SetBinder:
    """The binder of a neighbourhood ``N(p)`` / ``N(p, d)`` (distance 1 if not given) of ``offsets(d)``:
    the neighbour owns one offset axis, its mask is ``valid`` read at the shifted pixels."""

    def bind(ctx: ImageContext, ref: SetRef, v: str, scope: Mapping[str, Var]) -> Tuple[Var, Value]:
        p = scope[ref.args[0].text]
        d = int(ref.args[1].value) if len(ref.args) == 2 else 1
        these = offsets(d)
        o = ctx.axes.new(f"o:{v}", len(these))
        var = Var(name=v, kind="pixel", own=(o,), yx=p.yx, offsets=p.offsets + ((o, these),))
        return var, ctx.axes.at(var, ctx.inputs.valid, (), False, True)

    return bind


# -- classes, boxes and their lines ----------------------------------------------------------------
def _class_set(ctx: ImageContext, v: str, member: torch.Tensor) -> Tuple[Var, Value]:
    k = ctx.axes.new(f"k:{v}", ctx.inputs.num_labels)
    return Var(name=v, kind="class", own=(k,)), ctx.axes.value(member, (k,), True)


def _foreground(ctx: ImageContext) -> torch.Tensor:
    mask = torch.ones(ctx.inputs.num_labels, dtype=torch.bool, device=ctx.inputs.valid.device)
    mask[0] = False
    return mask


def bind_classes(ctx: ImageContext, ref: SetRef, v: str, scope: Mapping[str, Var]) -> Tuple[Var, Value]:
    """``classes``: ``[K]`` every channel, background included."""
    return _class_set(ctx, v, torch.ones(ctx.inputs.num_labels, dtype=torch.bool, device=ctx.inputs.valid.device))


def bind_foreground(ctx: ImageContext, ref: SetRef, v: str, scope: Mapping[str, Var]) -> Tuple[Var, Value]:
    """``foreground``: ``[K]`` every channel but background."""
    return _class_set(ctx, v, _foreground(ctx))


def bind_tagged(ctx: ImageContext, ref: SetRef, v: str, scope: Mapping[str, Var]) -> Tuple[Var, Value]:
    """``tagged``: ``[K]`` the foreground channels the image is tagged with."""
    return _class_set(ctx, v, _foreground(ctx) & ctx.inputs.tags)


def bind_untagged(ctx: ImageContext, ref: SetRef, v: str, scope: Mapping[str, Var]) -> Tuple[Var, Value]:
    """``untagged``: ``[K]`` the foreground channels the image is not tagged with."""
    return _class_set(ctx, v, _foreground(ctx) & ~ctx.inputs.tags)


def bind_boxes(ctx: ImageContext, ref: SetRef, v: str, scope: Mapping[str, Var]) -> Tuple[Var, Value]:
    """``boxes``: ``[B]`` the boxes that hold a valid pixel."""
    b = ctx.axes.new(f"b:{v}", len(ctx.inputs.boxes))
    in_rows, in_cols = ctx.box_spans()
    valid = ctx.inputs.valid.float()
    has_valid = ((in_rows.float() @ valid) * in_cols.float()).sum(dim=1) > 0
    return Var(name=v, kind="box", own=(b,)), ctx.axes.value(has_valid, (b,), True)


def bind_rows(ctx: ImageContext, ref: SetRef, v: str, scope: Mapping[str, Var]) -> Tuple[Var, Value]:
    """``rows(b)``: ``[B, H]`` the rows of each box that hold a valid pixel."""
    box = scope[ref.args[0].text]
    in_rows, in_cols = ctx.box_spans()
    r = ctx.axes.new(f"r:{v}", ctx.inputs.height)
    has_valid = (in_cols.float() @ ctx.inputs.valid.float().T) > 0  # [B, H]
    return Var(name=v, kind="row", own=(r,), box=ref.args[0].text), ctx.axes.value(in_rows & has_valid, (box.own[0], r), True)


def bind_cols(ctx: ImageContext, ref: SetRef, v: str, scope: Mapping[str, Var]) -> Tuple[Var, Value]:
    """``cols(b)``: ``[B, W]`` the columns of each box that hold a valid pixel."""
    box = scope[ref.args[0].text]
    in_rows, in_cols = ctx.box_spans()
    c = ctx.axes.new(f"c:{v}", ctx.inputs.width)
    has_valid = (in_rows.float() @ ctx.inputs.valid.float()) > 0  # [B, W]
    return Var(name=v, kind="col", own=(c,), box=ref.args[0].text), ctx.axes.value(in_cols & has_valid, (box.own[0], c), True)
