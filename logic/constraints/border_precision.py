"""Border precision: adjacent pixels of different classes lie in different superpixels.

With the superpixels fixed, the formula ``diff(p, q) -> sp(p) != sp(q)`` is trivially true for
adjacent pairs in different superpixels, and for a pair inside one superpixel it reads
``not diff(p, q)``. We define ``same(p, q) = exists k: k(p) and k(q)`` and ``diff = not same``, so
each adjacent pair ``(p, q)`` inside one superpixel contributes

    ``same(p, q) = not(sum_k not(k(p) + k(q)))``,  i.e.  ``log(1 - prod_k (1 - p_k q_k))``.

Pairs are the 4-connected (right, down) or 8-connected (plus the two down-diagonals) adjacencies,
each unordered pair once, both pixels valid. Evaluated as a shifted-slice pass per direction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, List, Mapping

import torch

from logic.constraints.pairwise import SameClassPairs, pair_slices
from logic.constraints.registry import register_constraint
from logic.grounding import ConstraintInputs

_OFFSETS = {4: ((0, 1), (1, 0)), 8: ((0, 1), (1, 0), (1, 1), (1, -1))}


@dataclass(frozen=True)
class BorderPrecisionConstraint(SameClassPairs):
    """Groundings: the adjacent valid pairs inside one superpixel (:class:`SameClassPairs`).

    Attributes:
        connectivity: 4 or 8.
    """

    connectivity: int = 4
    name: str = "border_precision"

    @classmethod
    def build(cls, *, superpixels: torch.Tensor, valid: torch.Tensor, connectivity: int = 4) -> "BorderPrecisionConstraint":
        """Args:
            superpixels: ``long [H, W]`` superpixel id per pixel; negative ids belong to no superpixel.
            valid: ``bool [H, W]``.
            connectivity: 4 or 8.
        """
        if connectivity not in _OFFSETS:
            raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
        height, width = valid.shape
        sp = superpixels.long()
        usable = valid & (sp >= 0)
        masks: List[torch.Tensor] = []
        for dy, dx in _OFFSETS[connectivity]:
            a, b = pair_slices(height, width, dy, dx)
            masks.append(usable[a] & usable[b] & (sp[a] == sp[b]))
        return cls(pair_masks=tuple(masks), offsets=_OFFSETS[connectivity], height=height, width=width,
                   num_groundings=cls.count(masks), connectivity=connectivity)


def check_border_precision_options(options: Mapping[str, Any]) -> None:
    """``connectivity`` is 4 or 8."""
    if options["connectivity"] not in (4, 8):
        raise ValueError(f"border_precision connectivity must be 4 or 8, got {options['connectivity']}")


@register_constraint("border_precision", requires=("superpixels",), options={"connectivity": 4}, default_weight=1.0,
                     check_options=check_border_precision_options)
def build_border_precision(inputs: ConstraintInputs, *, connectivity: int) -> BorderPrecisionConstraint:
    """forall adjacent p, q in one superpixel: same(p, q)"""
    return BorderPrecisionConstraint.build(superpixels=inputs.superpixels, valid=inputs.valid, connectivity=connectivity)
