"""A log-space product t-norm fuzzy logic, and weak-label constraints expressed in it.

Truth values are log-probabilities in ``[-inf, 0]`` (:mod:`logic.ops`, :mod:`logic.quantifiers`);
:mod:`logic.constraints` compiles the weak labels of one image into a loss over ``[K, H, W]``
class log-probabilities, from registered constraint types and from formulas written in the language
of :mod:`logic.formula`; both build on :mod:`logic.grounding` (an image's inputs, the atoms, the
constraint interface); :mod:`logic.superpixels` provides the superpixels of the border constraint.
"""

from logic.constraints import CompiledConstraints, ConstraintConfig
from logic.ops import DEFAULT_EPS, clamp_truth, log_and, log_implies, log_not, log_or
from logic.quantifiers import exists, forall

__all__ = [
    "CompiledConstraints",
    "ConstraintConfig",
    "DEFAULT_EPS",
    "clamp_truth",
    "exists",
    "forall",
    "log_and",
    "log_implies",
    "log_not",
    "log_or",
]
