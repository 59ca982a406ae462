"""A bound formula evaluated on the atoms of one step, in the log-space product t-norm logic.

Values are fuzzy (log-truths, evaluated per step from the atoms) or crisp (booleans fixed by the weak
labels: set membership, ``in_box``, ``same_superpixel``, ``similar``). Crisp values are exact: a
grounding whose crisp antecedent is false is true (log-truth exactly 0), as if it did not exist;
wherever a crisp value meets a fuzzy one otherwise, true is 0 and false is ``log(eps)``, the clipped
atom. A quantifier is a masked sum over the axes its variable owns (:mod:`logic.formula.axes`),
exactly as the hand-written constraints do it.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

from logic.formula.axes import Offsets, Value
from logic.formula.binding import Binding, outer_foralls
from logic.formula.parser import Apply, Binary, Node, Not, Quantified
from logic.formula.vocabulary import PREDICATES
from logic.grounding import Atoms


def offset_kernel(offsets: Offsets, dtype: torch.dtype, device) -> torch.Tensor:
    """``[2d + 1, 2d + 1]`` 0/1 kernel with ones at ``(dy + d, dx + d)``: cross-correlating a map with
    it sums each pixel's neighbours at ``offsets`` (zero outside the map)."""
    d = max(max(abs(dy), abs(dx)) for dy, dx in offsets)
    kernel = torch.zeros(2 * d + 1, 2 * d + 1, dtype=dtype, device=device)
    for dy, dx in offsets:
        kernel[dy + d, dx + d] = 1
    return kernel


class Evaluator:
    """The values of a bound formula's sub-formulas on ``atoms`` (``[K, H, W]`` log-truths)."""

    def __init__(self, binding: Binding, atoms: Atoms) -> None:
        self.binding = binding
        self.atoms = atoms
        self.axes = binding.ctx.axes

    def closed(self) -> Value:
        """The whole formula, fuzzy: a scalar log-truth (no free axes once checked)."""
        return self.fuzzy(self.eval(self.binding.tree))

    def pixel_map(self) -> Optional[torch.Tensor]:
        """``[H, W]``: the groundings' log-truths summed at the pixel of the outermost ``forall`` over
        a pixel set (``forall p in pixels`` and the like); None if the formula has none."""
        vars_at = self.binding.vars_at
        chain, node = outer_foralls(self.binding.tree)
        pixel = next((q for q in chain if vars_at[id(q)].kind == "pixel" and vars_at[id(q)].own == vars_at[id(q)].yx), None)
        if pixel is None:
            return None
        value = self.fuzzy(self.eval(node))
        for q in reversed(chain):
            if q is pixel:  # keep its axes: mask only
                axes, (m, b) = self.axes.aligned(self.binding.static[id(q)], value)
                value = Value(torch.where(m, b, torch.zeros((), dtype=b.dtype, device=b.device)), axes, False)
            else:
                value = self._forall(q, value)
        yx = vars_at[id(pixel)].yx
        shape = self.axes.shape(yx)
        return value.t.expand(shape) if value.axes == yx else value.t.reshape(shape)

    def fuzzy(self, v: Value) -> Value:
        """``v`` as log-truths: a crisp true is 0, a crisp false ``log(eps)``."""
        if not v.crisp:
            return v
        x = self.atoms.x
        t = torch.where(v.t, torch.zeros((), dtype=x.dtype, device=v.t.device),
                        torch.full((), math.log(self.atoms.eps), dtype=x.dtype, device=v.t.device))
        return Value(t, v.axes, False)

    def eval(self, node: Node) -> Value:
        if isinstance(node, Quantified):
            return self._quantify(node)
        crisp = self.binding.crisp(node)  # built from fixed predicates only: boolean logic
        if crisp is not None:
            return crisp
        if isinstance(node, Not):
            return self._negate(node.operand)
        if isinstance(node, Binary):
            if node.op == "->":
                return self._implies(node)
            left, right = self.fuzzy(self.eval(node.left)), self.fuzzy(self.eval(node.right))
            axes, (a, b) = self.axes.aligned(left, right)
            if node.op == "and":
                return Value(a + b, axes, False)
            log_not = self.atoms.log_not
            return Value(log_not(log_not(a) + log_not(b)), axes, False)
        return self._atom(node)

    # -- atoms -------------------------------------------------------------------------------------
    def _atom(self, node: Apply) -> Value:
        args = self.binding.args_at[id(node)]
        spec = PREDICATES.get(node.name)
        if spec is not None:
            return self.binding.static[id(node)] if spec.read is None else spec.read(self.binding.ctx, self.atoms, args)
        x = self.atoms.x
        if node.name in self.binding.channel_of:
            ch = self.binding.channel_of[node.name]
            if ch is None:
                return Value(x.new_full((), math.log(self.atoms.eps)), (), False)
            return self.axes.at(args[0], x[ch], (), 0.0, False)
        pix, k = args
        return self.axes.at(pix, x, (k.own[0],), 0.0, False)

    def _negated_atom(self, node: Apply) -> Optional[Value]:
        """``not k(p)`` for a class variable ``k``, from the atoms' negation (computed once)."""
        if node.name in PREDICATES or node.name in self.binding.channel_of:
            return None
        pix, k = self.binding.args_at[id(node)]
        return self.axes.at(pix, self.atoms.negated, (k.own[0],), 0.0, False)

    # -- connectives -------------------------------------------------------------------------------
    def _negate(self, node: Node) -> Value:
        """``not node``, without a double negation where ``node`` is itself a negation or ``exists``."""
        if isinstance(node, Not):
            return self.eval(node.operand)
        if isinstance(node, Quantified) and node.quantifier == "exists":  # not exists = forall not
            fast = self._neighbour_sum(node, negate=True)
            return fast if fast is not None else self._forall(node, self._negate(node.body))
        if isinstance(node, Apply):
            neg = self._negated_atom(node)
            if neg is not None:
                return neg
        v = self.eval(node)
        if v.crisp:
            return Value(~v.t, v.axes, True)
        return Value(self.atoms.log_not(v.t), v.axes, False)

    def _implies(self, node: Binary) -> Value:
        left = self.eval(node.left)
        if left.crisp:  # exact: a false antecedent makes the grounding true (log-truth 0)
            axes, (a, b) = self.axes.aligned(left, self.fuzzy(self.eval(node.right)))
            return Value(torch.where(a, b, torch.zeros((), dtype=b.dtype, device=b.device)), axes, False)
        # a -> b = not(a and not b)
        not_right = self.fuzzy(self._negate(node.right))
        axes, (a, nb) = self.axes.aligned(left, not_right)
        return Value(self.atoms.log_not(a + nb), axes, False)

    # -- quantifiers -------------------------------------------------------------------------------
    def _quantify(self, node: Quantified) -> Value:
        if node.quantifier == "forall":
            fast = self._neighbour_sum(node, negate=False)
            return fast if fast is not None else self._forall(node, self.eval(node.body))
        if node.quantifier == "exists":
            inner = self._neighbour_sum(node, negate=True)
            if inner is None:
                inner = self._forall(node, self._negate(node.body))
            return Value(self.atoms.log_not(inner.t), inner.axes, False)
        return self._most(node)

    def _forall(self, node: Quantified, body: Value) -> Value:
        """The masked sum of ``body`` over the axes ``node``'s variable owns."""
        body = self.fuzzy(body)
        mask = self.binding.static[id(node)]
        own = self.binding.vars_at[id(node)].own
        axes, (m, b) = self.axes.aligned(mask, body)
        masked = torch.where(m, b, torch.zeros((), dtype=b.dtype, device=b.device))
        dims = tuple(axes.index(a) for a in own)
        return Value(masked.sum(dim=dims), tuple(a for a in axes if a not in own), False)

    def _most(self, node: Quantified) -> Value:
        """``most(rho) v in S: F`` = ``min(0, logsumexp_{v in S} F - log |S| - log rho)``, true on an empty set."""
        body = self.fuzzy(self.eval(node.body))
        mask = self.binding.static[id(node)]
        own = self.binding.vars_at[id(node)].own
        axes, (m, b) = self.axes.aligned(mask, body)
        dims = tuple(axes.index(a) for a in own)
        b = torch.where(m, b, torch.full((), float("-inf"), dtype=b.dtype, device=b.device))
        b = b.expand([self.axes.sizes[a] if a in own else b.shape[i] for i, a in enumerate(axes)])
        lse = torch.logsumexp(b, dim=dims)
        count = m.expand([self.axes.sizes[a] if a in own else m.shape[i] for i, a in enumerate(axes)]).sum(dim=dims)
        out = torch.where(count > 0, (lse - torch.log(count.clamp_min(1).to(lse.dtype) * node.fraction)).clamp(max=0.0),
                          torch.zeros((), dtype=lse.dtype, device=lse.device))
        return Value(out, tuple(a for a in axes if a not in own), False)

    def _neighbour_sum(self, node: Quantified, *, negate: bool) -> Optional[Value]:
        """``forall q in N(p): [not] k(q)`` as one convolution of the valid-masked atom map with the
        neighbourhood's kernel (as :mod:`logic.constraints.neighbourhood`), instead of a stack of
        shifted maps; None where the shape of the formula is not that."""
        var, body = self.binding.vars_at[id(node)], node.body
        while isinstance(body, Not):  # forall q: not k(q) reads the negated atoms
            body, negate = body.operand, not negate
        if len(var.offsets) != 1 or not isinstance(body, Apply) or body.name in PREDICATES:
            return None
        args = self.binding.args_at[id(body)]
        if args[0] is not var:
            return None
        x = self.atoms.negated if negate else self.atoms.x
        if body.name in self.binding.channel_of:
            ch = self.binding.channel_of[body.name]
            if ch is None:
                return None
            field_t, lead = x[ch], ()
        else:
            field_t, lead = x, (args[1].own[0],)
        if self.atoms.valid_weight is not None:
            field_t = field_t * self.atoms.valid_weight
        kernel = offset_kernel(var.offsets[0][1], field_t.dtype, field_t.device)
        flat = field_t.reshape(1, -1, *field_t.shape[-2:])
        c = flat.shape[1]
        out = F.conv2d(flat, kernel.expand(c, 1, *kernel.shape), padding=kernel.shape[-1] // 2, groups=c)
        return self.axes.value(out.reshape(field_t.shape), tuple(lead) + var.yx, False)
