"""Scribbles: each labelled pixel has its scribble's class, ``forall p scribbled with k: k(p)``
(background scribbles, label 0, included)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import torch

from logic.constraints.registry import register_constraint
from logic.grounding import Atoms, Constraint, ConstraintInputs


@dataclass(frozen=True)
class ScribbleConstraint(Constraint):
    """Groundings: one per valid scribbled pixel; truth ``log p(label(p) at p)``.

    Attributes:
        flat_index: ``long [S]`` index of ``(label(p), p)`` in the flattened ``[K, H, W]`` atoms.
        num_groundings: ``S``.
    """

    flat_index: torch.Tensor
    num_groundings: int
    name: str = "scribbles"

    @classmethod
    def build(cls, *, scribbles: torch.Tensor, valid: torch.Tensor, num_labels: int, ignore_index: int = 255) -> "ScribbleConstraint":
        """Args:
            scribbles: ``[H, W]`` integer label map: ``ignore_index`` unlabeled, ``0..K-1`` a class.
            valid: ``bool [H, W]``.
            num_labels: ``K``.
        """
        labels = scribbles.long()
        labelled = (labels != ignore_index) & valid
        bad = labelled & ((labels < 0) | (labels >= num_labels))
        if bad.any():
            raise ValueError(f"scribble labels {sorted(set(labels[bad].tolist()))} are outside 0..{num_labels - 1}")
        pixels = torch.nonzero(labelled.reshape(-1)).squeeze(1)
        height, width = labels.shape
        flat_index = labels.reshape(-1)[pixels] * (height * width) + pixels
        return cls(flat_index=flat_index, num_groundings=int(flat_index.numel()))

    def dense(self, atoms: Atoms) -> Tuple[torch.Tensor, torch.Tensor]:
        values = atoms.x.reshape(-1)[self.flat_index]
        return values, torch.ones_like(values, dtype=torch.bool)

    def pixel_map(self, atoms: Atoms) -> torch.Tensor:
        k, h, w = atoms.x.shape
        out = atoms.x.new_zeros(h * w)
        out.index_add_(0, self.flat_index % (h * w), atoms.x.reshape(-1)[self.flat_index])
        return out.reshape(h, w)

    def truth(self, atoms: Atoms) -> torch.Tensor:
        return atoms.x.reshape(-1)[self.flat_index].sum()


@register_constraint("scribbles", requires=("scribbles",), default_weight=1.0)
def build_scribbles(inputs: ConstraintInputs) -> ScribbleConstraint:
    """forall p scribbled with k: k(p)"""
    return ScribbleConstraint.build(scribbles=inputs.scribbles, valid=inputs.valid, num_labels=inputs.num_labels,
                                    ignore_index=inputs.ignore_index)
