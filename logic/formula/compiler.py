"""From formula text to a constraint on one image.

:class:`Formula` is the text parsed (:mod:`logic.formula.parser`) and checked without an image
(:mod:`logic.formula.checking`, against the names of :mod:`logic.formula.vocabulary`), which gives the
inputs it requires. :meth:`Formula.bind` compiles it for one image into a :class:`BoundFormula`, a
:class:`~logic.grounding.constraint.Constraint`: its set masks and static predicates computed once
(:mod:`logic.formula.binding`), its log-truth evaluated on the atoms at every step as dense log-space
tensor operations over named axes (:mod:`logic.formula.evaluation`, :mod:`logic.formula.axes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import FrozenSet, Optional, Sequence, Tuple

import torch

from logic.formula.binding import Binding
from logic.formula.checking import check
from logic.formula.evaluation import Evaluator
from logic.formula.parser import FormulaError, parse
from logic.grounding import Atoms, Constraint, ConstraintInputs


class Formula:
    """A parsed formula: its text, tree and the inputs it needs (checked without an image).

    Args:
        text: the formula (grammar: :mod:`logic.formula.parser`).
        name: its name in the config, shown in errors.
        class_names: the valid class names (background first), or None: any name.
    """

    def __init__(self, text: str, *, name: Optional[str] = None, class_names: Optional[Sequence[str]] = None) -> None:
        self.text = text
        self.name = name
        self.tree = parse(text, name=name)
        self.class_names = None if class_names is None else tuple(class_names)
        self.requires: FrozenSet[str] = check(self.tree, error=self.error, class_names=self.class_names)

    def error(self, position: int, message: str) -> FormulaError:
        """The error ``message`` at column ``position`` of the text."""
        return FormulaError(self.text, position, message, name=self.name)

    def bind(self, inputs: ConstraintInputs) -> "BoundFormula":
        """The formula on one image (:class:`BoundFormula`, a :class:`~logic.grounding.constraint.Constraint`)."""
        return BoundFormula.build(self, inputs)

    def __repr__(self) -> str:
        return f"Formula({self.text!r})"


@dataclass(eq=False)
class BoundFormula(Constraint):
    """A formula compiled for one image: the static masks of its sets and crisp predicates, and the
    axes of its variables (``binding``); :meth:`truth` evaluates it on the atoms.

    ``num_groundings``: the number of groundings of its outermost ``forall`` quantifiers (1 if the
    formula does not start with ``forall``), for the ``mean`` normalisation.
    """

    formula: Formula
    inputs: ConstraintInputs
    binding: Binding
    num_groundings: int = 0
    name: str = "formula"

    negates_all = False

    @classmethod
    def build(cls, formula: Formula, inputs: ConstraintInputs) -> "BoundFormula":
        binding = Binding(formula.tree, inputs=inputs, error=formula.error)
        return cls(formula=formula, inputs=inputs, binding=binding, num_groundings=binding.count_groundings(),
                   name=formula.name or "formula")

    def truth(self, atoms: Atoms) -> torch.Tensor:
        value = Evaluator(self.binding, atoms).closed()
        if value.axes:
            raise self.formula.error(0, f"the formula has free axes {value.axes}")  # unreachable once checked
        return value.t

    def dense(self, atoms: Atoms) -> Tuple[torch.Tensor, torch.Tensor]:
        t = Evaluator(self.binding, atoms).closed().t
        return t.reshape(1), torch.ones(1, dtype=torch.bool, device=t.device)

    def pixel_map(self, atoms: Atoms) -> Optional[torch.Tensor]:
        """``[H, W]``: the groundings' log-truths summed at the pixel of the outermost ``forall`` over
        a pixel set (``forall p in pixels`` and the like); None if the formula has none."""
        return Evaluator(self.binding, atoms).pixel_map()

    def to(self, device: torch.device) -> "BoundFormula":
        inputs = ConstraintInputs(**{k: (v.to(device) if isinstance(v, torch.Tensor) else v)
                                     for k, v in vars(self.inputs).items() if k != "_cover"})
        return BoundFormula.build(self.formula, inputs)


def parse_formula(text: str, *, name: Optional[str] = None, class_names: Optional[Sequence[str]] = None) -> Formula:
    """Parse and check ``text`` (:class:`FormulaError` on a syntax or scope error)."""
    return Formula(text, name=name, class_names=class_names)
