"""From a parsed formula to dense log-space tensor operations on one image.

Every variable owns tensor axes: a pixel variable bound by ``pixels`` / ``box(b)`` / ``scribble(k)``
owns a row and a column axis (``H``, ``W``); one bound by a row ``r`` of a box owns only a column axis
(its row is ``r``'s); a neighbour ``q in N8(p)`` owns one *offset* axis (its coordinates are ``p``'s
shifted by each offset, evaluated by shifting whole maps); class, box and row/column variables own
one axis each (``K``, ``B``, ``H`` / ``W``). A sub-formula evaluates to a tensor over the axes of its
free variables, so a quantifier is a masked sum over the axes its variable owns, exactly as the
hand-written constraints do it.

Values are fuzzy (log-truths, evaluated per step from the atoms) or crisp (booleans fixed by the weak
labels: set membership, ``in_box``, ``same_superpixel``, ``similar``). Crisp values are exact: a
grounding whose crisp antecedent is false is true (log-truth exactly 0), as if it did not exist;
wherever a crisp value meets a fuzzy one otherwise, true is 0 and false is ``log(eps)``, the clipped
atom. Everything that does not depend on the atoms (every set's mask and every crisp predicate) is
computed once per image, in :meth:`BoundFormula.build`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, FrozenSet, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from logic.constraints.base import Atoms, Constraint, box_spans
from logic.constraints.colour_affinity import rgb_to_lab
from logic.constraints.registry import ConstraintInputs
from logic.formula.parser import Apply, Arg, Binary, FormulaError, Node, Not, Quantified, SetRef, parse

# -- the vocabulary --------------------------------------------------------------------------------
#: Sets binding a pixel variable, and the input each needs.
PIXEL_SETS = {"pixels": None, "outside_boxes": "boxes", "inside_boxes": "boxes", "box": "boxes", "scribble": "scribbles"}
#: Neighbourhoods of a pixel: offsets ``(dy, dx)`` for dilation ``d``. ``next*`` hold each unordered
#: pair once (the following neighbours), ``N*`` every neighbour.
NEIGHBOURHOODS = {
    "N4": lambda d: ((-d, 0), (0, -d), (0, d), (d, 0)),
    "N8": lambda d: ((-d, -d), (-d, 0), (-d, d), (0, -d), (0, d), (d, -d), (d, 0), (d, d)),
    "next4": lambda d: ((0, d), (d, 0)),
    "next8": lambda d: ((0, d), (d, 0), (d, d), (d, -d)),
}
CLASS_SETS = {"classes": None, "foreground": None, "tagged": "tags", "untagged": "tags"}
OTHER_SETS = {"boxes": "boxes", "rows": "boxes", "cols": "boxes", "radius": None}
#: Predicates: name -> (argument kinds, input needed). Kinds: p pixel, q pixel, b box, k class, n number.
PREDICATES = {
    "class_of": (("b", "p"), "boxes"),
    "in_box": (("p",), "boxes"),
    "same_superpixel": (("p", "p"), "superpixels"),
    "similar": (("p", "p", "n", "n"), "image"),
    "confident": (("k", "p", "n"), "zero_shot"),
}
SET_NAMES = tuple(PIXEL_SETS) + tuple(NEIGHBOURHOODS) + tuple(CLASS_SETS) + tuple(OTHER_SETS)


@dataclass(frozen=True)
class Var:
    """A bound variable. ``kind``: pixel | class | box | row | col.

    Pixel variables: ``yx`` their base row/column axes, ``offsets`` the neighbour offset axes that
    shift them. Row/column variables: ``box`` the box variable they belong to.
    """

    name: str
    kind: str
    own: Tuple[str, ...]
    yx: Tuple[str, str] = ("", "")
    offsets: Tuple[Tuple[str, Tuple[Tuple[int, int], ...]], ...] = ()
    box: str = ""


@dataclass
class Value:
    """A tensor over named axes (sorted by creation rank); ``crisp``: booleans, else log-truths."""

    t: torch.Tensor
    axes: Tuple[str, ...]
    crisp: bool


class Formula:
    """A parsed formula: its text, tree and the inputs it needs (checked without an image)."""

    def __init__(self, text: str, *, name: Optional[str] = None, class_names: Optional[Sequence[str]] = None) -> None:
        self.text = text
        self.name = name
        self.tree = parse(text, name=name)
        self.class_names = None if class_names is None else tuple(class_names)
        needs: set = set()
        self._check(self.tree, {}, needs)
        self.requires: FrozenSet[str] = frozenset(needs)

    def error(self, position: int, message: str) -> FormulaError:
        return FormulaError(self.text, position, message, name=self.name)

    # Static checks: every variable bound, of the right kind; sets and predicates known; classes valid.
    def _check(self, node: Node, scope: Dict[str, str], needs: set) -> None:
        if isinstance(node, Quantified):
            kind = self._check_set(node.domain, scope, needs)
            if node.var in scope:
                raise self.error(node.position, f"variable {node.var!r} is already bound")
            if node.var in SET_NAMES or node.var in PREDICATES:
                raise self.error(node.position, f"{node.var!r} names a set or predicate; choose another variable name")
            self._check(node.body, {**scope, node.var: kind}, needs)
        elif isinstance(node, Not):
            self._check(node.operand, scope, needs)
        elif isinstance(node, Binary):
            self._check(node.left, scope, needs)
            self._check(node.right, scope, needs)
        elif isinstance(node, Apply):
            if node.name in PREDICATES:
                kinds, need = PREDICATES[node.name]
                if len(node.args) != len(kinds):
                    raise self.error(node.position, f"{node.name} takes {len(kinds)} arguments ({', '.join(kinds)}), got {len(node.args)}")
                for arg, kind in zip(node.args, kinds):
                    self._check_arg(arg, kind, scope)
                needs.add(need)
                return
            if len(node.args) != 1:
                raise self.error(node.position, f"a class atom takes one pixel: {node.name}(p)")
            self._check_arg(node.args[0], "p", scope)
            if scope.get(node.name) == "class":
                return
            if node.name in scope:
                raise self.error(node.position, f"{node.name!r} is a {scope[node.name]} variable, not a class")
            self._check_class(node.name, node.position)

    def _check_class(self, name: str, position: int) -> None:
        if name == "background":
            return
        if self.class_names is not None and name not in self.class_names:
            raise self.error(position, f"unknown class {name!r}; valid: {', '.join(self.class_names)} "
                                       f"(predicates: {', '.join(PREDICATES)})")

    def _check_arg(self, arg: Arg, kind: str, scope: Dict[str, str]) -> None:
        want = {"p": "pixel", "b": "box", "k": "class"}.get(kind)
        if kind == "n":
            if arg.value is None:
                raise self.error(arg.position, f"expected a number, got {arg.text!r}")
            return
        if arg.value is not None:
            raise self.error(arg.position, f"expected a {want} variable, got the number {arg.text}")
        if kind == "k" and arg.text not in scope:
            self._check_class(arg.text, arg.position)  # a class name in place of a class variable
            return
        if arg.text not in scope:
            raise self.error(arg.position, f"unbound variable {arg.text!r} (bind it with forall/exists {arg.text} in ...)")
        if scope[arg.text] != want:
            raise self.error(arg.position, f"{arg.text!r} is a {scope[arg.text]} variable, expected a {want} variable")

    def _check_set(self, ref: SetRef, scope: Dict[str, str], needs: set) -> str:
        name, args = ref.name, ref.args
        if name in scope:  # p in r: a row or column variable
            if scope[name] not in ("row", "col") or args:
                raise self.error(ref.position, f"{name!r} is a {scope[name]} variable; only rows/columns of boxes are sets")
            return "pixel"
        if name in PIXEL_SETS:
            if PIXEL_SETS[name]:
                needs.add(PIXEL_SETS[name])
            if name == "box":
                self._args(ref, ("b",), scope)
            elif name == "scribble":
                self._args(ref, ("k",), scope)
            elif args:
                raise self.error(ref.position, f"the set {name!r} takes no arguments")
            return "pixel"
        if name in NEIGHBOURHOODS or name == "radius":
            if not args or len(args) > 2:
                raise self.error(ref.position, f"{name} takes a pixel variable and an optional distance: {name}(p) or {name}(p, 2)")
            self._check_arg(args[0], "p", scope)
            if len(args) == 2:
                self._check_arg(args[1], "n", scope)
                if args[1].value < 1 or args[1].value != int(args[1].value):
                    raise self.error(args[1].position, f"the distance of {name} must be a whole number >= 1, got {args[1].text}")
            elif name == "radius":
                raise self.error(ref.position, "radius takes a pixel and a distance: radius(p, 2)")
            return "pixel"
        if name in CLASS_SETS:
            if args:
                raise self.error(ref.position, f"the set {name!r} takes no arguments")
            if CLASS_SETS[name]:
                needs.add(CLASS_SETS[name])
            return "class"
        if name == "boxes":
            if args:
                raise self.error(ref.position, "the set 'boxes' takes no arguments")
            needs.add("boxes")
            return "box"
        if name in ("rows", "cols"):
            self._args(ref, ("b",), scope)
            needs.add("boxes")
            return "row" if name == "rows" else "col"
        raise self.error(ref.position, f"unknown set {name!r}; sets: {', '.join(SET_NAMES)}, or a row/column variable")

    def _args(self, ref: SetRef, kinds: Tuple[str, ...], scope: Dict[str, str]) -> None:
        if len(ref.args) != len(kinds):
            raise self.error(ref.position, f"{ref.name} takes {len(kinds)} argument(s), got {len(ref.args)}")
        for arg, kind in zip(ref.args, kinds):
            self._check_arg(arg, kind, scope)

    def bind(self, inputs: ConstraintInputs) -> "BoundFormula":
        """The formula on one image (:class:`BoundFormula`, a :class:`~logic.constraints.base.Constraint`)."""
        return BoundFormula.build(self, inputs)

    def __repr__(self) -> str:
        return f"Formula({self.text!r})"


def _shift(t: torch.Tensor, dy: int, dx: int, fill) -> torch.Tensor:
    """``out[..., y, x] = t[..., y + dy, x + dx]``, ``fill`` outside the map (differentiable)."""
    h, w = t.shape[-2:]
    src = t[..., max(dy, 0): h + min(dy, 0), max(dx, 0): w + min(dx, 0)]
    pad = (max(-dx, 0), max(dx, 0), max(-dy, 0), max(dy, 0))
    if src.dtype == torch.bool:
        return F.pad(src.to(torch.uint8), pad, value=int(fill)).bool()
    return F.pad(src, pad, value=fill)


def _shifted_stack(t: torch.Tensor, offsets: Sequence[Tuple[int, int]], fill) -> torch.Tensor:
    """``[O, *t.shape]``: :func:`_shift` for every offset, written into one buffer (one copy each)."""
    if t.dtype == torch.bool:
        return torch.stack([_shift(t, dy, dx, fill) for dy, dx in offsets])
    h, w = t.shape[-2:]
    out = t.new_full((len(offsets), *t.shape), float(fill))
    for o, (dy, dx) in enumerate(offsets):
        out[o, ..., max(-dy, 0): h - max(dy, 0), max(-dx, 0): w - max(dx, 0)] = \
            t[..., max(dy, 0): h + min(dy, 0), max(dx, 0): w + min(dx, 0)]
    return out


def _offset_kernel(offsets: Sequence[Tuple[int, int]], dtype: torch.dtype, device) -> torch.Tensor:
    """``[2d + 1, 2d + 1]`` 0/1 kernel with ones at ``(dy + d, dx + d)``: cross-correlating a map with
    it sums each pixel's neighbours at ``offsets`` (zero outside the map)."""
    d = max(max(abs(dy), abs(dx)) for dy, dx in offsets)
    kernel = torch.zeros(2 * d + 1, 2 * d + 1, dtype=dtype, device=device)
    for dy, dx in offsets:
        kernel[dy + d, dx + d] = 1
    return kernel


@dataclass(eq=False)
class BoundFormula(Constraint):
    """A formula compiled for one image: the static masks of its sets and crisp predicates, and the
    axes of its variables; :meth:`truth` evaluates it on the atoms.

    ``num_groundings``: the number of groundings of its outermost ``forall`` quantifiers (1 if the
    formula does not start with ``forall``), for the ``mean`` normalisation.
    """

    formula: Formula
    inputs: ConstraintInputs
    num_groundings: int = 0
    name: str = "formula"
    rank: Dict[str, int] = field(default_factory=dict)
    sizes: Dict[str, int] = field(default_factory=dict)
    static: Dict[int, Value] = field(default_factory=dict)
    vars_at: Dict[int, Var] = field(default_factory=dict)
    args_at: Dict[int, Tuple[Optional[Var], ...]] = field(default_factory=dict)
    channel_of: Dict[str, Optional[int]] = field(default_factory=dict)

    negates_all = False

    @classmethod
    def build(cls, formula: Formula, inputs: ConstraintInputs) -> "BoundFormula":
        self = cls(formula=formula, inputs=inputs, name=formula.name or "formula")
        self._prepare(formula.tree, {})
        self.num_groundings = self._count_groundings()
        return self

    # -- axes ----------------------------------------------------------------------------------
    def _axis(self, name: str, size: int) -> str:
        name = f"{name}#{len(self.rank)}"  # unique: sibling quantifiers may reuse a variable name
        self.rank[name] = len(self.rank)
        self.sizes[name] = size
        return name

    def _value(self, t: torch.Tensor, axes: Sequence[str], crisp: bool) -> Value:
        order = sorted(range(len(axes)), key=lambda i: self.rank[axes[i]])
        if order != list(range(len(axes))):
            t = t.permute(*order)
        return Value(t, tuple(axes[i] for i in order), crisp)

    def _aligned(self, *values: Value) -> Tuple[Tuple[str, ...], List[torch.Tensor]]:
        axes = tuple(sorted({a for v in values for a in v.axes}, key=self.rank.__getitem__))
        out = []
        for v in values:
            shape = [v.t.shape[v.axes.index(a)] if a in v.axes else 1 for a in axes]
            out.append(v.t.reshape(shape))
        return axes, out

    def _at(self, var: Var, field_t: torch.Tensor, lead: Sequence[str], fill, crisp: bool) -> Value:
        """A map ``[*lead, H, W]`` read at pixel variable ``var`` (shifted by its neighbour offsets)."""
        t, axes = field_t, tuple(lead) + var.yx
        for axis, offsets in var.offsets:
            t = _shifted_stack(t, offsets, fill)
            axes = (axis,) + axes
        return self._value(t, axes, crisp)

    # -- compile time: variables, set masks and crisp predicates ------------------------------------
    def _prepare(self, node: Node, scope: Dict[str, Var]) -> None:
        if isinstance(node, Quantified):
            var, mask = self._bind_set(node, scope)
            self.vars_at[id(node)] = var
            self.static[id(node)] = mask
            self._prepare(node.body, {**scope, node.var: var})
        elif isinstance(node, Not):
            self._prepare(node.operand, scope)
        elif isinstance(node, Binary):
            self._prepare(node.left, scope)
            self._prepare(node.right, scope)
        elif isinstance(node, Apply):
            self.args_at[id(node)] = tuple(scope.get(a.text) if a.value is None else None for a in node.args)
            if node.name == "class_of":
                return  # fuzzy: read from the atoms each step
            if node.name in PREDICATES:
                self.static[id(node)] = self._predicate(node, scope)
            elif node.name in scope:
                self.args_at[id(node)] += (scope[node.name],)  # k(p): the class variable last
            else:
                self.channel_of[node.name] = self._channel(node.name)

    def _channel(self, name: str) -> Optional[int]:
        """The channel of class ``name`` in this image, or None (absent: the atom is false)."""
        if name == "background":
            return 0
        names = self.inputs.class_names
        if names is None:
            raise self.formula.error(0, f"class atom {name!r} needs the class names of the image's channels "
                                        "(CompiledConstraints.build(class_names=...))")
        return names.index(name) if name in names else None

    def _bind_set(self, node: Quantified, scope: Dict[str, Var]) -> Tuple[Var, Value]:
        inp, ref, v = self.inputs, node.domain, node.var
        H, W = inp.height, inp.width
        valid = inp.valid
        if ref.name in scope:  # p in r (a row or column of a box)
            line = scope[ref.name]
            box = scope[line.box]
            in_rows, in_cols = self._box_spans()
            if line.kind == "row":
                x = self._axis(f"x:{v}", W)
                var = Var(v, "pixel", (x,), yx=(line.own[0], x))
                mask = in_cols[:, None, :] & valid[None]  # [B, H (row), W (p)]
                return var, self._value(mask, (box.own[0], line.own[0], x), True)
            y = self._axis(f"y:{v}", H)
            var = Var(v, "pixel", (y,), yx=(y, line.own[0]))
            mask = in_rows[:, :, None] & valid[None]  # [B, H (p), W (column)]
            return var, self._value(mask, (box.own[0], y, line.own[0]), True)
        if ref.name in PIXEL_SETS:
            y, x = self._axis(f"y:{v}", H), self._axis(f"x:{v}", W)
            var = Var(v, "pixel", (y, x), yx=(y, x))
            if ref.name == "pixels":
                return var, self._value(valid, (y, x), True)
            if ref.name in ("outside_boxes", "inside_boxes"):
                cover = inp.box_cover
                return var, self._value(valid & (cover if ref.name == "inside_boxes" else ~cover), (y, x), True)
            if ref.name == "box":
                box = scope[ref.args[0].text]
                in_rows, in_cols = self._box_spans()
                mask = in_rows[:, :, None] & in_cols[:, None, :] & valid[None]
                return var, self._value(mask, (box.own[0], y, x), True)
            # scribble(k): a class variable or a class name
            labels = inp.scribbles
            arg = ref.args[0].text
            if arg in scope:
                k = scope[arg]
                classes = torch.arange(inp.num_labels, device=valid.device)
                mask = (labels[None] == classes[:, None, None]) & valid[None]
                return var, self._value(mask, (k.own[0], y, x), True)
            ch = self._channel(arg)
            mask = (labels == ch) & valid if ch is not None else torch.zeros_like(valid)
            return var, self._value(mask, (y, x), True)
        if ref.name in NEIGHBOURHOODS or ref.name == "radius":
            p = scope[ref.args[0].text]
            d = int(ref.args[1].value) if len(ref.args) == 2 else 1
            if ref.name == "radius":
                offsets = tuple((dy, dx) for dy in range(-d, d + 1) for dx in range(-d, d + 1)
                                if (dy, dx) != (0, 0) and dy * dy + dx * dx <= d * d)
            else:
                offsets = NEIGHBOURHOODS[ref.name](d)
            o = self._axis(f"o:{v}", len(offsets))
            var = Var(v, "pixel", (o,), yx=p.yx, offsets=p.offsets + ((o, offsets),))
            return var, self._at(var, valid, (), False, True)  # the neighbour is inside the map and valid
        if ref.name in CLASS_SETS:
            k = self._axis(f"k:{v}", inp.num_labels)
            var = Var(v, "class", (k,))
            mask = torch.ones(inp.num_labels, dtype=torch.bool, device=valid.device)
            if ref.name != "classes":
                mask[0] = False
            if ref.name == "tagged":
                mask &= inp.tags
            elif ref.name == "untagged":
                mask &= ~inp.tags
            return var, self._value(mask, (k,), True)
        if ref.name == "boxes":
            b = self._axis(f"b:{v}", len(inp.boxes))
            in_rows, in_cols = self._box_spans()
            has_valid = ((in_rows.float() @ valid.float()) * in_cols.float()).sum(dim=1) > 0
            return Var(v, "box", (b,)), self._value(has_valid, (b,), True)
        # rows(b) / cols(b): the lines of a box that hold a valid pixel
        box = scope[ref.args[0].text]
        in_rows, in_cols = self._box_spans()
        if ref.name == "rows":
            r = self._axis(f"r:{v}", H)
            has_valid = (in_cols.float() @ valid.float().T) > 0  # [B, H]
            return Var(v, "row", (r,), box=ref.args[0].text), self._value(in_rows & has_valid, (box.own[0], r), True)
        c = self._axis(f"c:{v}", W)
        has_valid = (in_rows.float() @ valid.float()) > 0  # [B, W]
        return Var(v, "col", (c,), box=ref.args[0].text), self._value(in_cols & has_valid, (box.own[0], c), True)

    def _box_spans(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """``bool [B, H]`` rows and ``bool [B, W]`` columns of each box."""
        return box_spans(self.inputs.boxes, height=self.inputs.height, width=self.inputs.width)

    def _predicate(self, node: Apply, scope: Dict[str, Var]) -> Value:
        inp = self.inputs
        a = node.args
        if node.name == "in_box":
            return self._at(scope[a[0].text], inp.box_cover, (), False, True)
        if node.name == "same_superpixel":
            sp = inp.superpixels
            vp = self._at(scope[a[0].text], sp, (), -1, True)
            vq = self._at(scope[a[1].text], sp, (), -1, True)
            axes, (tp, tq) = self._aligned(vp, vq)
            return Value((tp == tq) & (tp >= 0), axes, True)
        if node.name == "similar":
            theta, threshold = float(a[2].value), float(a[3].value)
            lab = rgb_to_lab(inp.image).permute(2, 0, 1)  # [3, H, W]
            ch = self._axis(f"lab@{id(node)}", 3)
            vp = self._at(scope[a[0].text], lab, (ch,), 0.0, False)
            vq = self._at(scope[a[1].text], lab, (ch,), 0.0, False)
            axes, (tp, tq) = self._aligned(vp, vq)
            dist = torch.linalg.vector_norm(tp - tq, dim=axes.index(ch))
            axes = tuple(x for x in axes if x != ch)
            return Value(torch.exp(-dist / theta) >= threshold, axes, True)
        # confident(k, p, tau): log z_k(p) where z_k(p) >= tau, else exactly false (-inf)
        z = inp.zero_shot_log_probs.detach().float()
        tau = float(a[2].value)
        fuzzy = torch.where(z >= math.log(tau), z.clamp(max=0.0), torch.full_like(z, float("-inf")))
        pix = scope[a[1].text]
        if a[0].text in scope:
            return self._at(pix, fuzzy, (scope[a[0].text].own[0],), float("-inf"), False)
        ch = self._channel(a[0].text)
        if ch is None:
            return Value(torch.tensor(float("-inf")), (), False)
        return self._at(pix, fuzzy[ch], (), float("-inf"), False)

    def _count_groundings(self) -> int:
        masks: List[Value] = []
        node = self.formula.tree
        while isinstance(node, Quantified) and node.quantifier == "forall":
            masks.append(self.static[id(node)])
            node = node.body
        if not masks:
            return 1
        if isinstance(node, Binary) and node.op == "->":
            antecedent = self._crisp(node.left)
            if isinstance(node.left, Apply) and node.left.name == "confident":
                value = self.static[id(node.left)]  # exactly false (-inf) below its threshold
                antecedent = Value(value.t > float("-inf"), value.axes, True)
            if antecedent is not None:  # groundings with a false crisp antecedent are no groundings
                masks.append(antecedent)
        axes, ts = self._aligned(*masks)
        total = ts[0]
        for t in ts[1:]:
            total = total & t
        shape = [self.sizes[a] for a in axes]
        return int(total.expand(shape).sum())

    def _crisp(self, node: Node) -> Optional[Value]:
        """The value of a sub-formula built from crisp predicates only, else None."""
        if isinstance(node, Apply) and node.name in PREDICATES and node.name != "class_of":
            value = self.static[id(node)]
            return value if value.crisp else None
        if isinstance(node, Not):
            inner = self._crisp(node.operand)
            return None if inner is None else Value(~inner.t, inner.axes, True)
        if isinstance(node, Binary):
            left, right = self._crisp(node.left), self._crisp(node.right)
            if left is None or right is None:
                return None
            axes, (a, b) = self._aligned(left, right)
            return Value({"and": a & b, "or": a | b, "->": ~a | b}[node.op], axes, True)
        return None

    # -- run time ------------------------------------------------------------------------------
    def truth(self, atoms: Atoms) -> torch.Tensor:
        value = self._fuzzy(self._eval(self.formula.tree, atoms), atoms)
        if value.axes:
            raise self.formula.error(0, f"the formula has free axes {value.axes}")  # unreachable after _check
        return value.t

    def dense(self, atoms: Atoms):
        value = self._eval(self.formula.tree, atoms)
        t = self._fuzzy(value, atoms).t
        return t.reshape(1), torch.ones(1, dtype=torch.bool, device=t.device)

    def pixel_map(self, atoms: Atoms) -> Optional[torch.Tensor]:
        """``[H, W]``: the groundings' log-truths summed at the pixel of the outermost ``forall`` over
        a pixel set (``forall p in pixels`` and the like); None if the formula has none."""
        chain: List[Quantified] = []
        node = self.formula.tree
        while isinstance(node, Quantified) and node.quantifier == "forall":
            chain.append(node)
            node = node.body
        pixel = next((q for q in chain if self.vars_at[id(q)].kind == "pixel" and self.vars_at[id(q)].own == self.vars_at[id(q)].yx), None)
        if pixel is None:
            return None
        value = self._fuzzy(self._eval(node, atoms), atoms)
        for q in reversed(chain):
            if q is pixel:  # keep its axes: mask only
                axes, (m, b) = self._aligned(self.static[id(q)], value)
                value = Value(torch.where(m, b, torch.zeros((), dtype=b.dtype, device=b.device)), axes, False)
            else:
                value = self._forall(q, value, atoms)
        yx = self.vars_at[id(pixel)].yx
        shape = [self.sizes[a] for a in yx]
        return value.t.expand(shape) if value.axes == yx else value.t.reshape(shape)

    def _fuzzy(self, v: Value, atoms: Atoms) -> Value:
        if not v.crisp:
            return v
        t = torch.where(v.t, torch.zeros((), dtype=atoms.x.dtype, device=v.t.device),
                        torch.full((), math.log(atoms.eps), dtype=atoms.x.dtype, device=v.t.device))
        return Value(t, v.axes, False)

    def _eval(self, node: Node, atoms: Atoms) -> Value:
        if isinstance(node, Quantified):
            return self._quantify(node, atoms)
        crisp = self._crisp(node)  # built from fixed predicates only: boolean logic
        if crisp is not None:
            return crisp
        if isinstance(node, Not):
            return self._negate(node.operand, atoms)
        if isinstance(node, Binary):
            if node.op == "->":
                return self._implies(node, atoms)
            left, right = self._eval(node.left, atoms), self._eval(node.right, atoms)
            left, right = self._fuzzy(left, atoms), self._fuzzy(right, atoms)
            axes, (a, b) = self._aligned(left, right)
            if node.op == "and":
                return Value(a + b, axes, False)
            return Value(atoms.log_not(atoms.log_not(a) + atoms.log_not(b)), axes, False)
        return self._atom(node, atoms)

    def _atom(self, node: Apply, atoms: Atoms) -> Value:
        if node.name in PREDICATES and node.name != "class_of":
            return self.static[id(node)]
        x = atoms.x
        args = self.args_at[id(node)]
        if node.name == "class_of":
            box, pix = args
            return self._at(pix, x[self.inputs.box_classes], (box.own[0],), 0.0, False)
        if node.name in self.channel_of:
            ch = self.channel_of[node.name]
            if ch is None:
                return Value(x.new_full((), math.log(atoms.eps)), (), False)
            return self._at(args[0], x[ch], (), 0.0, False)
        pix, k = args
        return self._at(pix, x, (k.own[0],), 0.0, False)

    def _negated_atom(self, node: Apply, atoms: Atoms) -> Optional[Value]:
        """``not k(p)`` for a class variable ``k``, from the atoms' negation (computed once)."""
        if node.name in PREDICATES or node.name in self.channel_of:
            return None
        pix, k = self.args_at[id(node)]
        return self._at(pix, atoms.negated, (k.own[0],), 0.0, False)

    def _negate(self, node: Node, atoms: Atoms) -> Value:
        """``not node``, without a double negation where ``node`` is itself a negation or ``exists``."""
        if isinstance(node, Not):
            return self._eval(node.operand, atoms)
        if isinstance(node, Quantified) and node.quantifier == "exists":  # not exists = forall not
            fast = self._neighbour_sum(node, atoms, negate=True)
            return fast if fast is not None else self._forall(node, self._negate(node.body, atoms), atoms)
        if isinstance(node, Apply):
            neg = self._negated_atom(node, atoms)
            if neg is not None:
                return neg
        v = self._eval(node, atoms)
        if v.crisp:
            return Value(~v.t, v.axes, True)
        return Value(atoms.log_not(v.t), v.axes, False)

    def _implies(self, node: Binary, atoms: Atoms) -> Value:
        left = self._eval(node.left, atoms)
        if left.crisp:  # exact: a false antecedent makes the grounding true (log-truth 0)
            axes, (a, b) = self._aligned(left, self._fuzzy(self._eval(node.right, atoms), atoms))
            return Value(torch.where(a, b, torch.zeros((), dtype=b.dtype, device=b.device)), axes, False)
        # a -> b = not(a and not b)
        not_right = self._fuzzy(self._negate(node.right, atoms), atoms)
        axes, (a, nb) = self._aligned(left, not_right)
        return Value(atoms.log_not(a + nb), axes, False)

    def _quantify(self, node: Quantified, atoms: Atoms) -> Value:
        if node.quantifier == "forall":
            fast = self._neighbour_sum(node, atoms, negate=False)
            return fast if fast is not None else self._forall(node, self._eval(node.body, atoms), atoms)
        if node.quantifier == "exists":
            inner = self._neighbour_sum(node, atoms, negate=True)
            if inner is None:
                inner = self._forall(node, self._negate(node.body, atoms), atoms)
            return Value(atoms.log_not(inner.t), inner.axes, False)
        # most(rho): min(0, logsumexp_{v in S} body - log |S| - log rho)
        body = self._fuzzy(self._eval(node.body, atoms), atoms)
        mask = self.static[id(node)]
        own = self.vars_at[id(node)].own
        axes, (m, b) = self._aligned(mask, body)
        dims = tuple(axes.index(a) for a in own)
        b = torch.where(m, b, torch.full((), float("-inf"), dtype=b.dtype, device=b.device))
        b = b.expand([self.sizes[a] if a in own else b.shape[i] for i, a in enumerate(axes)])
        lse = torch.logsumexp(b, dim=dims)
        count = m.expand([self.sizes[a] if a in own else m.shape[i] for i, a in enumerate(axes)]).sum(dim=dims)
        out = torch.where(count > 0, (lse - torch.log(count.clamp_min(1).to(lse.dtype) * node.fraction)).clamp(max=0.0),
                          torch.zeros((), dtype=lse.dtype, device=lse.device))
        return Value(out, tuple(a for a in axes if a not in own), False)

    def _neighbour_sum(self, node: Quantified, atoms: Atoms, *, negate: bool) -> Optional[Value]:
        """``forall q in N(p): [not] k(q)`` as one convolution of the valid-masked atom map with the
        neighbourhood's kernel (as :mod:`logic.constraints.neighbourhood`), instead of a stack of
        shifted maps; None where the shape of the formula is not that."""
        var, body = self.vars_at[id(node)], node.body
        while isinstance(body, Not):  # forall q: not k(q) reads the negated atoms
            body, negate = body.operand, not negate
        if len(var.offsets) != 1 or not isinstance(body, Apply) or body.name in PREDICATES:
            return None
        args = self.args_at[id(body)]
        if args[0] is not var:
            return None
        x = atoms.negated if negate else atoms.x
        if body.name in self.channel_of:
            ch = self.channel_of[body.name]
            if ch is None:
                return None
            field_t, lead = x[ch], ()
        else:
            field_t, lead = x, (args[1].own[0],)
        if atoms.valid_weight is not None:
            field_t = field_t * atoms.valid_weight
        offsets = var.offsets[0][1]
        kernel = _offset_kernel(offsets, field_t.dtype, field_t.device)
        flat = field_t.reshape(1, -1, *field_t.shape[-2:])
        c = flat.shape[1]
        out = F.conv2d(flat, kernel.expand(c, 1, *kernel.shape), padding=kernel.shape[-1] // 2, groups=c)
        return self._value(out.reshape(field_t.shape), tuple(lead) + var.yx, False)

    def _forall(self, node: Quantified, body: Value, atoms: Atoms) -> Value:
        body = self._fuzzy(body, atoms)
        mask = self.static[id(node)]
        own = self.vars_at[id(node)].own
        axes, (m, b) = self._aligned(mask, body)
        masked = torch.where(m, b, torch.zeros((), dtype=b.dtype, device=b.device))
        dims = tuple(axes.index(a) for a in own)
        return Value(masked.sum(dim=dims), tuple(a for a in axes if a not in own), False)

    def to(self, device: torch.device) -> "BoundFormula":
        inputs = ConstraintInputs(**{k: (v.to(device) if isinstance(v, torch.Tensor) else v)
                                     for k, v in vars(self.inputs).items() if k != "_cover"})
        return BoundFormula.build(self.formula, inputs)


def parse_formula(text: str, *, name: Optional[str] = None, class_names: Optional[Sequence[str]] = None) -> Formula:
    """Parse and check ``text`` (:class:`FormulaError` on a syntax or scope error)."""
    return Formula(text, name=name, class_names=class_names)
