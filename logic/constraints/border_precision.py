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
from typing import List, Tuple

import torch

from logic.constraints.base import Atoms, Constraint

_OFFSETS = {4: ((0, 1), (1, 0)), 8: ((0, 1), (1, 0), (1, 1), (1, -1))}


def _pair_slices(height: int, width: int, dy: int, dx: int) -> Tuple[Tuple[slice, slice], Tuple[slice, slice]]:
    """Slices ``(a, b)`` of an ``H x W`` map such that ``map[a]`` and ``map[b]`` are the pairs
    ``(p, p + (dy, dx))`` with both inside the map (``dy >= 0``)."""
    rows_a, rows_b = slice(0, height - dy), slice(dy, height)
    if dx >= 0:
        cols_a, cols_b = slice(0, width - dx), slice(dx, width)
    else:
        cols_a, cols_b = slice(-dx, width), slice(0, width + dx)
    return (rows_a, cols_a), (rows_b, cols_b)


@dataclass(frozen=True)
class BorderPrecisionConstraint(Constraint):
    """Groundings: the adjacent valid pairs inside one superpixel.

    Attributes:
        pair_masks: per direction, ``bool [H - dy, W - |dx|]`` grounded pairs ``(p, p + (dy, dx))``.
        connectivity: 4 or 8.
        height, width: the map size.
        num_groundings: total number of grounded pairs.
    """

    pair_masks: Tuple[torch.Tensor, ...]
    connectivity: int
    height: int
    width: int
    num_groundings: int
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
            a, b = _pair_slices(height, width, dy, dx)
            masks.append(usable[a] & usable[b] & (sp[a] == sp[b]))
        return cls(
            pair_masks=tuple(masks),
            connectivity=connectivity,
            height=height,
            width=width,
            num_groundings=int(sum(int(m.sum()) for m in masks)),
        )

    def _per_direction(self, atoms: Atoms) -> List[torch.Tensor]:
        x = atoms.x
        out = []
        for dy, dx in _OFFSETS[self.connectivity]:
            a, b = _pair_slices(self.height, self.width, dy, dx)
            both = x[(slice(None), *a)] + x[(slice(None), *b)]  # [K, H', W']: k(p) and k(q)
            out.append(atoms.log_not(atoms.log_not(both).sum(dim=0)))  # exists k
        return out

    def dense(self, atoms: Atoms) -> Tuple[torch.Tensor, torch.Tensor]:
        values = self._per_direction(atoms)
        return torch.cat([v.reshape(-1) for v in values]), torch.cat([m.reshape(-1) for m in self.pair_masks])

    def truth(self, atoms: Atoms) -> torch.Tensor:
        total = atoms.x.new_zeros(())
        for value, mask in zip(self._per_direction(atoms), self.pair_masks):
            total = total + (value * mask.to(value.dtype)).sum()
        return total

    def to(self, device: torch.device) -> "BorderPrecisionConstraint":
        from dataclasses import replace

        return replace(self, pair_masks=tuple(m.to(device) for m in self.pair_masks))
