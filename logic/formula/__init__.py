"""A formula language for pixel logic: constraints written as text in a config, compiled once per
image into the dense log-space tensor operations of :mod:`logic.constraints` (``logic/README.md``,
"Formulas", has the grammar, the meaning and worked priors)::

    forall p in pixels: cup(p) -> forall q in N8(p): not background(q)
"""

from logic.formula.compiler import BoundFormula, Formula, parse_formula
from logic.formula.parser import FormulaError, parse

__all__ = ["BoundFormula", "Formula", "FormulaError", "parse", "parse_formula"]
