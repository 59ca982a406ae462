"""Weak-label constraints over per-pixel class log-probabilities, one module per constraint type."""

from logic.constraints.background import BackgroundConstraint
from logic.constraints.base import Atoms, Constraint
from logic.constraints.border_precision import BorderPrecisionConstraint
from logic.constraints.box_tightness import BoxTightnessConstraint
from logic.constraints.compiled import CompiledConstraints
from logic.constraints.config import CONSTRAINT_NAMES, ConstraintConfig
from logic.constraints.neighbourhood import NeighbourhoodConstraint, neighbour_sum
from logic.constraints.scribbles import ScribbleConstraint

__all__ = [
    "Atoms",
    "BackgroundConstraint",
    "BorderPrecisionConstraint",
    "BoxTightnessConstraint",
    "CONSTRAINT_NAMES",
    "CompiledConstraints",
    "Constraint",
    "ConstraintConfig",
    "NeighbourhoodConstraint",
    "ScribbleConstraint",
    "neighbour_sum",
]
