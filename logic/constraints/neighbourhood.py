"""Neighbourhood smoothness, for every valid pixel ``p`` and class ``k``:

* ``k(p) -> exists q in N(p): k(q)``  (no isolated pixel of a class), log-truth
  ``not(k(p) + sum_q not k(q))``;
* ``(forall q in N(p): k(q)) -> k(p)``  (no hole inside a region), log-truth
  ``not(sum_q k(q) + not k(p))``.

``N(p)`` are the valid pixels among the 4 or 8 neighbours of ``p`` (image border and invalid pixels
are left out of the quantifiers); pixels with no valid neighbour are no grounding. The neighbour
sums are a depthwise 3x3 convolution (zero padding), a self-adjoint map, so the backward pass is the
same convolution; the cost is a few passes over ``[K, H, W]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Tuple

import torch
import torch.nn.functional as F

from logic.constraints.registry import register_constraint
from logic.grounding import Atoms, Constraint, ConstraintInputs


def _neighbour_sum(t: torch.Tensor, connectivity: int) -> torch.Tensor:
    # A depthwise 3x3 convolution with a zero centre: an exact sum of the neighbours (no "3x3 sum
    # minus centre" cancellation), and about twice as fast on CPU as shifted-slice additions.
    kernel = t.new_ones(3, 3)
    kernel[1, 1] = 0
    if connectivity == 4:
        kernel[0, 0] = kernel[0, 2] = kernel[2, 0] = kernel[2, 2] = 0
    lead, (h, w) = t.shape[:-2], t.shape[-2:]
    flat = t.reshape(1, -1, h, w)
    channels = flat.shape[1]
    out = F.conv2d(flat, kernel.expand(channels, 1, 3, 3), padding=1, groups=channels)
    return out.reshape(*lead, h, w)


class _NeighbourSum(torch.autograd.Function):
    """Sum over a symmetric neighbourhood with zero padding: a self-adjoint linear map, so the
    backward pass is the same sum."""

    @staticmethod
    def forward(ctx, t: torch.Tensor, connectivity: int) -> torch.Tensor:  # type: ignore[override]
        ctx.connectivity = connectivity
        return _neighbour_sum(t, connectivity)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return _neighbour_sum(grad, ctx.connectivity), None


def neighbour_sum(t: torch.Tensor, *, connectivity: int) -> torch.Tensor:
    """``[..., H, W]`` sum of each pixel's 4 or 8 neighbours (zero outside the map)."""
    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity}")
    return _NeighbourSum.apply(t, connectivity)


@dataclass(frozen=True)
class NeighbourhoodConstraint(Constraint):
    """Groundings: ``2 x K x P`` (two formulas, every class, every pixel with a valid neighbour).

    Attributes:
        mask: ``bool [H, W]`` grounded pixels (valid, with at least one valid neighbour).
        connectivity: 4 or 8.
        num_groundings: ``2 * K * mask.sum()``.
    """

    mask: torch.Tensor
    connectivity: int
    num_groundings: int
    name: str = "neighbourhood"
    negates_all = True

    @classmethod
    def build(cls, *, valid: torch.Tensor, num_labels: int, connectivity: int = 8) -> "NeighbourhoodConstraint":
        has_neighbour = neighbour_sum(valid.float(), connectivity=connectivity) > 0
        mask = valid & has_neighbour
        return cls(mask=mask, connectivity=connectivity, num_groundings=2 * num_labels * int(mask.sum()))

    def _parts(self, atoms: Atoms) -> Tuple[torch.Tensor, torch.Tensor]:
        x = atoms.x
        # Invalid neighbours contribute 0, the neutral element of the sums (= and).
        x_valid = x if atoms.valid_weight is None else x * atoms.valid_weight
        no_neighbour = neighbour_sum(atoms.negated_valid, connectivity=self.connectivity)
        all_neighbours = neighbour_sum(x_valid, connectivity=self.connectivity)
        isolated = atoms.log_not(x + no_neighbour)  # k(p) -> exists q: k(q)
        hole = atoms.log_not(all_neighbours + atoms.negated)  # forall q: k(q) -> k(p)
        return isolated, hole

    def dense(self, atoms: Atoms) -> Tuple[torch.Tensor, torch.Tensor]:
        isolated, hole = self._parts(atoms)
        return torch.stack([isolated, hole]), self.mask.expand_as(isolated).unsqueeze(0).expand(2, *isolated.shape)

    def pixel_map(self, atoms: Atoms) -> torch.Tensor:
        isolated, hole = self._parts(atoms)
        return ((isolated + hole) * self.mask.to(isolated.dtype)).sum(dim=0)

    def truth(self, atoms: Atoms) -> torch.Tensor:
        isolated, hole = self._parts(atoms)
        return ((isolated + hole) * self.mask.to(isolated.dtype)).sum()


def check_neighbourhood_options(options: Mapping[str, Any]) -> None:
    """``connectivity`` is 4 or 8."""
    if options["connectivity"] not in (4, 8):
        raise ValueError(f"neighbourhood connectivity must be 4 or 8, got {options['connectivity']}")


@register_constraint("neighbourhood", options={"connectivity": 8}, default_weight=1.0,
                     check_options=check_neighbourhood_options)
def build_neighbourhood(inputs: ConstraintInputs, *, connectivity: int) -> NeighbourhoodConstraint:
    """forall k, p: k(p) -> exists q in N(p): k(q); (forall q in N(p): k(q)) -> k(p)"""
    return NeighbourhoodConstraint.build(valid=inputs.valid, num_labels=inputs.num_labels, connectivity=connectivity)
