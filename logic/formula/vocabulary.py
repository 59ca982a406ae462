"""The names of the formula language: every set and predicate, its arguments, the input it reads, and
the binder that gives it its meaning on an image (:mod:`logic.formula.sets`,
:mod:`logic.formula.predicates`). Checking and binding look names up here; a new set or predicate is
one entry.

Argument kinds: ``p`` a pixel variable, ``b`` a box variable, ``k`` a class variable or a class name,
``n`` a number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

from logic.formula import predicates, sets
from logic.formula.axes import Offsets
from logic.formula.predicates import PredicateBinder, PredicateReader
from logic.formula.sets import SetBinder


@dataclass(frozen=True, kw_only=True)
class SetSpec:
    """A named set.

    Attributes:
        kind: the kind of the variable it binds: pixel | class | box | row | col.
        args: the kinds of its arguments.
        distance: ``""`` none; ``"optional"`` / ``"required"``: a whole-number distance ``>= 1``
            after the arguments (a neighbourhood's).
        needs: the input it reads (:data:`~logic.grounding.inputs.INPUTS`), or None.
        bind: ``bind(ctx, ref, var, scope) -> (Var, mask)`` (:mod:`logic.formula.sets`).
    """

    kind: str
    bind: SetBinder
    args: Tuple[str, ...] = ()
    distance: str = ""
    needs: Optional[str] = None


@dataclass(frozen=True, kw_only=True)
class PredicateSpec:
    """A predicate (:mod:`logic.formula.predicates`): exactly one of ``bind`` and ``read``.

    Attributes:
        args: the kinds of its arguments.
        needs: the input it reads (:data:`~logic.grounding.inputs.INPUTS`).
        bind: static: ``bind(ctx, node, scope) -> Value``, computed once per image.
        read: fuzzy: ``read(ctx, atoms, args) -> Value``, read from the atoms at every evaluation.
        exact_false: its static value is exactly ``-inf`` where it does not hold: as the antecedent of
            an outer ``forall`` chain it leaves those groundings out of the count.
    """

    args: Tuple[str, ...]
    needs: str
    bind: Optional[PredicateBinder] = None
    read: Optional[PredicateReader] = None
    exact_false: bool = False


def _neighbourhood(offsets: Callable[[int], Offsets], distance: str = "optional") -> SetSpec:
    return SetSpec(kind="pixel", args=("p",), distance=distance, bind=sets.neighbours(offsets))


#: Every named set, in the order error messages list them.
SETS: Dict[str, SetSpec] = {
    "pixels": SetSpec(kind="pixel", bind=sets.bind_pixels),
    "outside_boxes": SetSpec(kind="pixel", needs="boxes", bind=sets.bind_outside_boxes),
    "inside_boxes": SetSpec(kind="pixel", needs="boxes", bind=sets.bind_inside_boxes),
    "box": SetSpec(kind="pixel", args=("b",), needs="boxes", bind=sets.bind_box),
    "scribble": SetSpec(kind="pixel", args=("k",), needs="scribbles", bind=sets.bind_scribble),
    "N4": _neighbourhood(sets.n4),
    "N8": _neighbourhood(sets.n8),
    "next4": _neighbourhood(sets.next4),
    "next8": _neighbourhood(sets.next8),
    "classes": SetSpec(kind="class", bind=sets.bind_classes),
    "foreground": SetSpec(kind="class", bind=sets.bind_foreground),
    "tagged": SetSpec(kind="class", needs="tags", bind=sets.bind_tagged),
    "untagged": SetSpec(kind="class", needs="tags", bind=sets.bind_untagged),
    "boxes": SetSpec(kind="box", needs="boxes", bind=sets.bind_boxes),
    "rows": SetSpec(kind="row", args=("b",), needs="boxes", bind=sets.bind_rows),
    "cols": SetSpec(kind="col", args=("b",), needs="boxes", bind=sets.bind_cols),
    "radius": _neighbourhood(sets.disc, distance="required"),
}

#: Every predicate, in the order error messages list them.
PREDICATES: Dict[str, PredicateSpec] = {
    "class_of": PredicateSpec(args=("b", "p"), needs="boxes", read=predicates.read_class_of),
    "in_box": PredicateSpec(args=("p",), needs="boxes", bind=predicates.bind_in_box),
    "same_superpixel": PredicateSpec(args=("p", "p"), needs="superpixels", bind=predicates.bind_same_superpixel),
    "similar": PredicateSpec(args=("p", "p", "n", "n"), needs="image", bind=predicates.bind_similar),
    "confident": PredicateSpec(args=("k", "p", "n"), needs="zero_shot", bind=predicates.bind_confident,
                               exact_false=True),
}

SET_NAMES: Tuple[str, ...] = tuple(SETS)


def is_static(name: str) -> bool:
    """Whether ``name`` is a static predicate (computed once per image, not read from the atoms)."""
    spec = PREDICATES.get(name)
    return spec is not None and spec.bind is not None
