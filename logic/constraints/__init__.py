"""Weak-label constraints over per-pixel class log-probabilities, one module per constraint type.

Importing the package registers the built-in types (:mod:`logic.constraints.registry`), in the
order the method lists them (the order of the training log's columns). What the types share with the
formula language (the atoms, the inputs, the constraint interface) lives below both, in
:mod:`logic.grounding`, and is re-exported here.
"""

# isort: off
from logic.constraints.background import BackgroundConstraint
from logic.constraints.box_tightness import BoxTightnessConstraint
from logic.constraints.scribbles import ScribbleConstraint
from logic.constraints.neighbourhood import NeighbourhoodConstraint, neighbour_sum
from logic.constraints.border_precision import BorderPrecisionConstraint
from logic.constraints.box_fill import BoxFillConstraint
from logic.constraints.zero_shot_anchor import ZeroShotAnchorConstraint
from logic.constraints.colour_affinity import ColourAffinityConstraint
from logic.constraints.objects import ObjectInBoxConstraint
# isort: on

from logic.constraints.compiled import CompiledConstraints
from logic.constraints.config import ConstraintConfig
from logic.constraints.registry import ConstraintType, constraint_types, get_constraint_type, register_constraint
from logic.grounding import INPUTS, Atoms, Constraint, ConstraintInputs, rgb_to_lab

__all__ = [
    "Atoms",
    "BackgroundConstraint",
    "BorderPrecisionConstraint",
    "BoxFillConstraint",
    "BoxTightnessConstraint",
    "ColourAffinityConstraint",
    "CompiledConstraints",
    "Constraint",
    "ConstraintConfig",
    "ConstraintInputs",
    "ConstraintType",
    "INPUTS",
    "ObjectInBoxConstraint",
    "constraint_types",
    "get_constraint_type",
    "register_constraint",
    "NeighbourhoodConstraint",
    "ScribbleConstraint",
    "ZeroShotAnchorConstraint",
    "neighbour_sum",
    "rgb_to_lab",
]
