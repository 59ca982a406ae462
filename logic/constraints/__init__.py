"""Weak-label constraints over per-pixel class log-probabilities, one module per constraint type."""

from logic.constraints.background import BackgroundConstraint
from logic.constraints.base import Atoms, Constraint
from logic.constraints.border_precision import BorderPrecisionConstraint
from logic.constraints.box_fill import BoxFillConstraint
from logic.constraints.box_tightness import BoxTightnessConstraint
from logic.constraints.colour_affinity import ColourAffinityConstraint, rgb_to_lab
from logic.constraints.compiled import CompiledConstraints
from logic.constraints.config import CONSTRAINT_NAMES, ConstraintConfig
from logic.constraints.neighbourhood import NeighbourhoodConstraint, neighbour_sum
from logic.constraints.scribbles import ScribbleConstraint
from logic.constraints.zero_shot_anchor import ZeroShotAnchorConstraint

__all__ = [
    "Atoms",
    "BackgroundConstraint",
    "BorderPrecisionConstraint",
    "BoxFillConstraint",
    "BoxTightnessConstraint",
    "ColourAffinityConstraint",
    "CONSTRAINT_NAMES",
    "CompiledConstraints",
    "Constraint",
    "ConstraintConfig",
    "NeighbourhoodConstraint",
    "ScribbleConstraint",
    "ZeroShotAnchorConstraint",
    "neighbour_sum",
    "rgb_to_lab",
]
