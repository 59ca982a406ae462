"""One image as the binders of a formula's sets and predicates see it."""

from __future__ import annotations

from typing import Optional, Tuple

import torch

from logic.formula.axes import Axes
from logic.formula.parser import ErrorAt
from logic.grounding import ConstraintInputs, box_spans


class ImageContext:
    """The inputs of one image, the axes of the variables bound on it so far, and the formula's errors.

    Attributes:
        inputs: the image's weak labels and image (cropped to the valid pixels).
        axes: the named axes of every variable bound so far.
        error: ``error(position, message)``, a :class:`~logic.formula.parser.FormulaError` of the
            formula being bound.
    """

    def __init__(self, *, inputs: ConstraintInputs, error: ErrorAt) -> None:
        self.inputs = inputs
        self.axes = Axes()
        self.error = error

    def channel(self, name: str) -> Optional[int]:
        """The channel of class ``name`` in this image, or None (absent: the atom is false)."""
        if name == "background":
            return 0
        names = self.inputs.class_names
        if names is None:
            raise self.error(0, f"class atom {name!r} needs the class names of the image's channels "
                                "(CompiledConstraints.build(class_names=...))")
        return names.index(name) if name in names else None

    def box_spans(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """``bool [B, H]`` rows and ``bool [B, W]`` columns of each box."""
        return box_spans(self.inputs.boxes, height=self.inputs.height, width=self.inputs.width)
