"""A formula language for pixel logic: constraints written as text in a config, compiled once per
image into dense log-space tensor operations, a :class:`~logic.grounding.constraint.Constraint` like
the registered types of :mod:`logic.constraints` (``logic/README.md``, "Formulas", has the grammar,
the meaning and worked priors)::

    forall p in pixels: cup(p) -> forall q in N8(p): not background(q)

One step a module: :mod:`~logic.formula.parser` (syntax), :mod:`~logic.formula.vocabulary` (the sets
and predicates), :mod:`~logic.formula.checking` (without an image), :mod:`~logic.formula.binding`
(on one image, once; binders in :mod:`~logic.formula.sets` and :mod:`~logic.formula.predicates`),
:mod:`~logic.formula.evaluation` (on the atoms, every step), :mod:`~logic.formula.compiler`
(:class:`Formula`, :class:`BoundFormula`).
"""

from logic.formula.compiler import BoundFormula, Formula, parse_formula
from logic.formula.parser import FormulaError, parse

__all__ = ["BoundFormula", "Formula", "FormulaError", "parse", "parse_formula"]
