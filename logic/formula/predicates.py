"""The meaning of the language's predicates on one image.

A *static* predicate is fixed by the weak labels and the image: its binder
``bind(ctx, node, scope) -> Value`` computes it once per image, over its pixel arguments' axes, as
exact booleans (``in_box``, ``same_superpixel``, ``similar``) or as log-truths that do not depend on
the atoms (``confident``). A *fuzzy* predicate reads the atoms at every evaluation:
``read(ctx, atoms, args) -> Value``, ``args`` the variables of its arguments (``class_of``).
"""

from __future__ import annotations

import math
from typing import Callable, Mapping, Optional, Sequence

import torch

from logic.formula.axes import Value, Var
from logic.formula.context import ImageContext
from logic.formula.parser import Apply
from logic.grounding import Atoms, rgb_to_lab

PredicateBinder = Callable[[ImageContext, Apply, Mapping[str, Var]], Value]
PredicateReader = Callable[[ImageContext, Atoms, Sequence[Optional[Var]]], Value]


def bind_in_box(ctx: ImageContext, node: Apply, scope: Mapping[str, Var]) -> Value:
    """``in_box(p)``: p lies in some box."""
    return ctx.axes.at(scope[node.args[0].text], ctx.inputs.box_cover, (), False, True)


def bind_same_superpixel(ctx: ImageContext, node: Apply, scope: Mapping[str, Var]) -> Value:
    """``same_superpixel(p, q)``: p and q lie in one superpixel (a negative id is none)."""
    sp = ctx.inputs.superpixels
    vp = ctx.axes.at(scope[node.args[0].text], sp, (), -1, True)
    vq = ctx.axes.at(scope[node.args[1].text], sp, (), -1, True)
    axes, (tp, tq) = ctx.axes.aligned(vp, vq)
    return Value((tp == tq) & (tp >= 0), axes, True)


def bind_similar(ctx: ImageContext, node: Apply, scope: Mapping[str, Var]) -> Value:
    """``similar(p, q, theta, threshold)``: the LAB affinity ``exp(-||c_p - c_q|| / theta)`` of p
    and q is at least ``threshold``."""
    a = node.args
    theta, threshold = float(a[2].value), float(a[3].value)
    lab = rgb_to_lab(ctx.inputs.image).permute(2, 0, 1)  # [3, H, W]
    ch = ctx.axes.new(f"lab@{id(node)}", 3)
    vp = ctx.axes.at(scope[a[0].text], lab, (ch,), 0.0, False)
    vq = ctx.axes.at(scope[a[1].text], lab, (ch,), 0.0, False)
    axes, (tp, tq) = ctx.axes.aligned(vp, vq)
    dist = torch.linalg.vector_norm(tp - tq, dim=axes.index(ch))
    axes = tuple(x for x in axes if x != ch)
    return Value(torch.exp(-dist / theta) >= threshold, axes, True)


def bind_confident(ctx: ImageContext, node: Apply, scope: Mapping[str, Var]) -> Value:
    """``confident(k, p, tau)``: ``log z_k(p)`` where the zero-shot probability ``z_k(p) >= tau``,
    else exactly false (``-inf``); ``k`` a class variable or a class name."""
    a = node.args
    z = ctx.inputs.zero_shot_log_probs.detach().float()
    tau = float(a[2].value)
    fuzzy = torch.where(z >= math.log(tau), z.clamp(max=0.0), torch.full_like(z, float("-inf")))
    pix = scope[a[1].text]
    if a[0].text in scope:
        return ctx.axes.at(pix, fuzzy, (scope[a[0].text].own[0],), float("-inf"), False)
    ch = ctx.channel(a[0].text)
    if ch is None:
        return Value(torch.tensor(float("-inf")), (), False)
    return ctx.axes.at(pix, fuzzy[ch], (), float("-inf"), False)


def read_class_of(ctx: ImageContext, atoms: Atoms, args: Sequence[Optional[Var]]) -> Value:
    """``class_of(b, p)``: the atom of box b's class at p."""
    box, pix = args
    return ctx.axes.at(pix, atoms.x[ctx.inputs.box_classes], (box.own[0],), 0.0, False)
