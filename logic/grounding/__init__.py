"""What the constraint types (:mod:`logic.constraints`) and the formula language (:mod:`logic.formula`)
share, below both: one image's inputs, the atoms of one evaluation, the interface of a compiled
constraint, and the box and colour geometry they read.
"""

from logic.grounding.atoms import Atoms
from logic.grounding.boxes import box_spans, boxes_cover
from logic.grounding.colour import rgb_to_lab
from logic.grounding.constraint import Constraint
from logic.grounding.inputs import INPUTS, ConstraintInputs

__all__ = ["Atoms", "Constraint", "ConstraintInputs", "INPUTS", "box_spans", "boxes_cover", "rgb_to_lab"]
