"""A checked formula bound to one image: everything that does not depend on the atoms, computed once.

Binding walks the tree once: each quantifier's variable gets its axes and its set's ``bool`` mask
(:mod:`logic.formula.sets`), each static predicate its value (:mod:`logic.formula.predicates`), each
class name its channel, each atom the variables of its arguments. The sub-formulas built from crisp
predicates only are exact booleans (:meth:`Binding.crisp`), and the outer ``forall`` chain gives the
number of groundings (:meth:`Binding.count_groundings`).
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Tuple

from logic.formula.axes import Value, Var
from logic.formula.context import ImageContext
from logic.formula.parser import Apply, Binary, ErrorAt, Node, Not, Quantified
from logic.formula.sets import bind_line
from logic.formula.vocabulary import PREDICATES, SETS, is_static
from logic.grounding import ConstraintInputs


def outer_foralls(tree: Node) -> Tuple[List[Quantified], Node]:
    """The outermost chain of ``forall`` quantifiers of ``tree``, and the body inside it."""
    chain: List[Quantified] = []
    node = tree
    while isinstance(node, Quantified) and node.quantifier == "forall":
        chain.append(node)
        node = node.body
    return chain, node


class Binding:
    """The static part of a formula on one image.

    Attributes:
        tree: the formula's syntax tree.
        ctx: the image (its inputs, and ``ctx.axes`` the axes of every variable).
        static: ``id(node) ->`` :class:`~logic.formula.axes.Value`: a quantifier's set mask over its
            variable's axes (and those of the variables the set depends on), a static predicate's value.
        vars_at: ``id(quantifier) ->`` the variable it binds.
        args_at: ``id(atom) ->`` the variables of its arguments (None for a number or a class name),
            and for ``k(p)`` with a class variable ``k``, ``k`` last.
        channel_of: class name of an atom ``name(p)`` -> its channel, None if the image lacks it.
    """

    def __init__(self, tree: Node, *, inputs: ConstraintInputs, error: ErrorAt) -> None:
        self.tree = tree
        self.ctx = ImageContext(inputs=inputs, error=error)
        self.static: Dict[int, Value] = {}
        self.vars_at: Dict[int, Var] = {}
        self.args_at: Dict[int, Tuple[Optional[Var], ...]] = {}
        self.channel_of: Dict[str, Optional[int]] = {}
        self._prepare(tree, {})

    def _prepare(self, node: Node, scope: Mapping[str, Var]) -> None:
        if isinstance(node, Quantified):
            ref = node.domain
            bind = bind_line if ref.name in scope else SETS[ref.name].bind  # p in r: a row or column of a box
            var, mask = bind(self.ctx, ref, node.var, scope)
            self.vars_at[id(node)] = var
            self.static[id(node)] = mask
            self._prepare(node.body, {**scope, node.var: var})
        elif isinstance(node, Not):
            self._prepare(node.operand, scope)
        elif isinstance(node, Binary):
            self._prepare(node.left, scope)
            self._prepare(node.right, scope)
        elif isinstance(node, Apply):
            self._prepare_atom(node, scope)

    def _prepare_atom(self, node: Apply, scope: Mapping[str, Var]) -> None:
        self.args_at[id(node)] = tuple(scope.get(a.text) if a.value is None else None for a in node.args)
        spec = PREDICATES.get(node.name)
        if spec is not None:
            if spec.bind is not None:  # static; a fuzzy predicate is read from the atoms at each evaluation
                self.static[id(node)] = spec.bind(self.ctx, node, scope)
        elif node.name in scope:
            self.args_at[id(node)] += (scope[node.name],)  # k(p): the class variable last
        else:
            self.channel_of[node.name] = self.ctx.channel(node.name)

    def crisp(self, node: Node) -> Optional[Value]:
        """The value of a sub-formula built from crisp predicates only, else None."""
        if isinstance(node, Apply) and is_static(node.name):
            value = self.static[id(node)]
            return value if value.crisp else None
        if isinstance(node, Not):
            inner = self.crisp(node.operand)
            return None if inner is None else Value(~inner.t, inner.axes, True)
        if isinstance(node, Binary):
            left, right = self.crisp(node.left), self.crisp(node.right)
            if left is None or right is None:
                return None
            axes, (a, b) = self.ctx.axes.aligned(left, right)
            return Value({"and": a & b, "or": a | b, "->": ~a | b}[node.op], axes, True)
        return None

    def count_groundings(self) -> int:
        """The groundings of the outer ``forall`` chain (1 without one), for the ``mean`` normalisation:
        the members of its sets, less those whose crisp (or exactly false) antecedent is false."""
        chain, node = outer_foralls(self.tree)
        if not chain:
            return 1
        masks = [self.static[id(q)] for q in chain]
        if isinstance(node, Binary) and node.op == "->":
            antecedent = self.crisp(node.left)
            spec = PREDICATES.get(node.left.name) if isinstance(node.left, Apply) else None
            if spec is not None and spec.exact_false:
                value = self.static[id(node.left)]
                antecedent = Value(value.t > float("-inf"), value.axes, True)
            if antecedent is not None:  # groundings with a false crisp antecedent are no groundings
                masks.append(antecedent)
        axes, ts = self.ctx.axes.aligned(*masks)
        total = ts[0]
        for t in ts[1:]:
            total = total & t
        return int(total.expand(self.ctx.axes.shape(axes)).sum())
