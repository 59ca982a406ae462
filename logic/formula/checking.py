"""Static checks of a parsed formula, without an image: every variable bound once and used as its
kind, every set and predicate known and given the right arguments, every class name valid. The
checks also collect the inputs the formula reads (:data:`~logic.grounding.inputs.INPUTS`).
"""

from __future__ import annotations

from typing import Dict, FrozenSet, Optional, Sequence, Tuple

from logic.formula.parser import Apply, Arg, Binary, ErrorAt, Node, Not, Quantified, SetRef
from logic.formula.vocabulary import PREDICATES, SET_NAMES, SETS, SetSpec

#: Argument kind -> the kind of variable it takes.
_VARIABLE_KINDS = {"p": "pixel", "b": "box", "k": "class"}


def check(tree: Node, *, error: ErrorAt, class_names: Optional[Sequence[str]] = None) -> FrozenSet[str]:
    """The inputs ``tree`` reads; a :class:`~logic.formula.parser.FormulaError` (from ``error``) at
    the first mistake. ``class_names``: the valid class names (None: any name)."""
    checker = _Checker(error=error, class_names=class_names)
    needs: set = set()
    checker.check(tree, {}, needs)
    return frozenset(needs)


class _Checker:
    """The checks of one formula; ``scope`` maps each bound variable to its kind."""

    def __init__(self, *, error: ErrorAt, class_names: Optional[Sequence[str]]) -> None:
        self.error = error
        self.class_names = None if class_names is None else tuple(class_names)

    def check(self, node: Node, scope: Dict[str, str], needs: set) -> None:
        if isinstance(node, Quantified):
            kind = self._check_set(node.domain, scope, needs)
            if node.var in scope:
                raise self.error(node.position, f"variable {node.var!r} is already bound")
            if node.var in SET_NAMES or node.var in PREDICATES:
                raise self.error(node.position, f"{node.var!r} names a set or predicate; choose another variable name")
            self.check(node.body, {**scope, node.var: kind}, needs)
        elif isinstance(node, Not):
            self.check(node.operand, scope, needs)
        elif isinstance(node, Binary):
            self.check(node.left, scope, needs)
            self.check(node.right, scope, needs)
        elif isinstance(node, Apply):
            self._check_apply(node, scope, needs)

    def _check_apply(self, node: Apply, scope: Dict[str, str], needs: set) -> None:
        """A predicate, or a class atom ``name(p)`` of a class variable or a class name."""
        spec = PREDICATES.get(node.name)
        if spec is not None:
            if len(node.args) != len(spec.args):
                raise self.error(node.position, f"{node.name} takes {len(spec.args)} arguments "
                                                f"({', '.join(spec.args)}), got {len(node.args)}")
            for arg, kind in zip(node.args, spec.args):
                self._check_arg(arg, kind, scope)
            needs.add(spec.needs)
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
        want = _VARIABLE_KINDS.get(kind)
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
        """The kind of variable ``ref`` binds."""
        name = ref.name
        if name in scope:  # p in r: a row or column variable
            if scope[name] not in ("row", "col") or ref.args:
                raise self.error(ref.position, f"{name!r} is a {scope[name]} variable; only rows/columns of boxes are sets")
            return "pixel"
        spec = SETS.get(name)
        if spec is None:
            raise self.error(ref.position, f"unknown set {name!r}; sets: {', '.join(SET_NAMES)}, or a row/column variable")
        if spec.distance:
            self._check_neighbourhood(ref, spec, scope)
        elif spec.args:
            self._check_set_args(ref, spec.args, scope)
        elif ref.args:
            raise self.error(ref.position, f"the set {name!r} takes no arguments")
        if spec.needs:
            needs.add(spec.needs)
        return spec.kind

    def _check_set_args(self, ref: SetRef, kinds: Tuple[str, ...], scope: Dict[str, str]) -> None:
        if len(ref.args) != len(kinds):
            raise self.error(ref.position, f"{ref.name} takes {len(kinds)} argument(s), got {len(ref.args)}")
        for arg, kind in zip(ref.args, kinds):
            self._check_arg(arg, kind, scope)

    def _check_neighbourhood(self, ref: SetRef, spec: SetSpec, scope: Dict[str, str]) -> None:
        """``N(p)`` or ``N(p, d)``, ``d`` a whole number ``>= 1`` (required if ``spec.distance`` is)."""
        name, args = ref.name, ref.args
        if not args or len(args) > 2:
            raise self.error(ref.position, f"{name} takes a pixel variable and an optional distance: {name}(p) or {name}(p, 2)")
        self._check_arg(args[0], "p", scope)
        if len(args) == 2:
            self._check_arg(args[1], "n", scope)
            if args[1].value < 1 or args[1].value != int(args[1].value):
                raise self.error(args[1].position, f"the distance of {name} must be a whole number >= 1, got {args[1].text}")
        elif spec.distance == "required":
            raise self.error(ref.position, f"{name} takes a pixel and a distance: {name}(p, 2)")
