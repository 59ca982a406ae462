"""``same(p, q) = exists k: k(p) and k(q)`` over a set of pixel pairs: the formula that border
precision and colour affinity share (they differ only in which pairs are groundings).

Pairs are ``(p, p + (dy, dx))`` for a few offsets with ``dy >= 0``, each unordered pair once; per
offset a ``bool [H - dy, W - |dx|]`` mask says which pairs are groundings. The log-truth of a pair is

    ``not(sum_k not(x_k(p) + x_k(q)))``,  i.e.  ``log(1 - prod_k (1 - p_k q_k))``,

evaluated as one shifted-slice pass per offset.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import List, Sequence, Tuple

import torch

from logic.grounding import Atoms, Constraint


def pair_slices(height: int, width: int, dy: int, dx: int) -> Tuple[Tuple[slice, slice], Tuple[slice, slice]]:
    """Slices ``(a, b)`` of an ``H x W`` map such that ``map[a]`` and ``map[b]`` are the pairs
    ``(p, p + (dy, dx))`` with both inside the map (``dy >= 0``)."""
    rows_a, rows_b = slice(0, height - dy), slice(dy, height)
    if dx >= 0:
        cols_a, cols_b = slice(0, width - dx), slice(dx, width)
    else:
        cols_a, cols_b = slice(-dx, width), slice(0, width + dx)
    return (rows_a, cols_a), (rows_b, cols_b)


@dataclass(frozen=True)
class SameClassPairs(Constraint):
    """``forall grounded (p, q): same(p, q)``.

    Attributes:
        pair_masks: per offset, ``bool [H - dy, W - |dx|]`` grounded pairs ``(p, p + (dy, dx))``.
        offsets: the offsets ``(dy, dx)``.
        height, width: the map size.
        num_groundings: total number of grounded pairs.
    """

    pair_masks: Tuple[torch.Tensor, ...]
    offsets: Tuple[Tuple[int, int], ...]
    height: int
    width: int
    num_groundings: int

    @staticmethod
    def count(masks: Sequence[torch.Tensor]) -> int:
        return int(sum(int(m.sum()) for m in masks))

    def _per_offset(self, atoms: Atoms) -> List[torch.Tensor]:
        x = atoms.x
        out = []
        for (dy, dx), mask in zip(self.offsets, self.pair_masks):
            if mask.numel() == 0:
                out.append(x.new_zeros(mask.shape))
                continue
            a, b = pair_slices(self.height, self.width, dy, dx)
            both = x[(slice(None), *a)] + x[(slice(None), *b)]  # [K, H', W']: k(p) and k(q)
            out.append(atoms.log_not(atoms.log_not(both).sum(dim=0)))  # exists k
        return out

    def dense(self, atoms: Atoms) -> Tuple[torch.Tensor, torch.Tensor]:
        values = self._per_offset(atoms)
        return torch.cat([v.reshape(-1) for v in values]), torch.cat([m.reshape(-1) for m in self.pair_masks])

    def truth(self, atoms: Atoms) -> torch.Tensor:
        total = atoms.x.new_zeros(())
        for value, mask in zip(self._per_offset(atoms), self.pair_masks):
            total = total + (value * mask.to(value.dtype)).sum()
        return total

    def pixel_map(self, atoms: Atoms) -> torch.Tensor:
        """Each pair's log-truth at its first pixel ``p``."""
        out = atoms.x.new_zeros(self.height, self.width)
        for (dy, dx), value, mask in zip(self.offsets, self._per_offset(atoms), self.pair_masks):
            if mask.numel():
                a, _ = pair_slices(self.height, self.width, dy, dx)
                out[a] += value * mask.to(value.dtype)
        return out

    def to(self, device: torch.device) -> "SameClassPairs":
        return replace(self, pair_masks=tuple(m.to(device) for m in self.pair_masks))
