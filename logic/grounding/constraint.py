"""The interface of a compiled constraint: the log-truths of its groundings over the atoms of one image.

A constraint is compiled once per image from weak labels into index tensors and masks, then evaluated
many times on ``log_probs [K, H, W]`` (``log p(class k at pixel (h, w))``, channel 0 background).
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

import torch

from logic.grounding.atoms import Atoms


class Constraint:
    """Base of the compiled constraint types (dataclasses of tensors built by a ``build`` classmethod).

    Subclasses implement :meth:`dense`: the log-truth of every potential grounding as a dense tensor,
    and a mask of the groundings that exist. ``num_groundings`` is the mask's count, known at build time.
    """

    name: str = "constraint"
    num_groundings: int
    #: True if the type reads ``not k(p)`` for every class (then it is computed once for all).
    negates_all = False

    def dense(self, atoms: Atoms) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(log_truths, mask)`` of the same shape; only positions where ``mask`` is True are groundings."""
        raise NotImplementedError

    def truth(self, atoms: Atoms) -> torch.Tensor:
        """Log-truth of the conjunction of all groundings (a scalar): the sum of their log-truths."""
        values, mask = self.dense(atoms)
        return (values * mask.to(values.dtype)).sum()

    def pixel_map(self, atoms: Atoms) -> Optional[torch.Tensor]:
        """``[H, W]`` the log-truths of the groundings summed at the pixel each belongs to (its sum is
        :meth:`truth`): where the constraint is violated. This default serves types whose groundings
        end in the pixel axes (``[..., H, W]``); others override it, or return None (no map)."""
        values, mask = self.dense(atoms)
        if tuple(values.shape[-2:]) != tuple(atoms.x.shape[-2:]):
            return None
        return (values * mask.to(values.dtype)).reshape(-1, *values.shape[-2:]).sum(dim=0)

    def groundings(self, atoms: Atoms) -> torch.Tensor:
        """``[num_groundings]`` log-truth of each grounding (diagnostics and tests)."""
        values, mask = self.dense(atoms)
        return values[mask.expand_as(values)]

    def to(self, device: torch.device) -> "Constraint":
        """A copy with every tensor field on ``device``."""
        changes = {
            f.name: getattr(self, f.name).to(device)
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
            if isinstance(getattr(self, f.name), torch.Tensor)
        }
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]
