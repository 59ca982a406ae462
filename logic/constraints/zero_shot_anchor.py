"""Zero-shot anchor: where the frozen (untrained) model is confident, keep its class.

For every valid pixel ``p`` and class ``k``: ``confident_zero_shot(p, k) -> k(p)``, where
``confident_zero_shot(p, k)`` is a fixed truth value computed once per image from the zero-shot class
distribution ``z`` (same channels and frame as the loss): ``z_k(p)`` if ``z_k(p) >= tau``, else false.
With the Reichenbach implication of the product logic the truth is

    ``1 - c + c p_k(p)``,  log-truth  ``not(log c + not x_k(p))``,  ``c = z_k(p)``.

Only groundings with a true antecedent count (``z_k(p) >= tau``; with ``tau > 1/2`` at most one class
per pixel), the others are trivially true. The anchor keeps the decoder from drifting away from what
it already does well, so that the weak-label constraints only move it where it was unsure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Tuple

import torch

from logic.constraints.registry import register_constraint
from logic.grounding import Atoms, Constraint, ConstraintInputs


@dataclass(frozen=True)
class ZeroShotAnchorConstraint(Constraint):
    """Groundings: the valid (pixel, class) pairs whose zero-shot probability is at least ``tau``.

    Attributes:
        log_confidence: ``[K, H, W]`` ``log z_k(p)`` (the antecedent's truth; 0 where not grounded).
        mask: ``bool [K, H, W]`` the grounded pairs.
        num_groundings: ``mask.sum()``.
    """

    log_confidence: torch.Tensor
    mask: torch.Tensor
    num_groundings: int
    name: str = "zero_shot_anchor"

    @classmethod
    def build(cls, *, zero_shot_log_probs: torch.Tensor, valid: torch.Tensor, threshold: float = 0.9) -> "ZeroShotAnchorConstraint":
        """Args:
            zero_shot_log_probs: ``float [K, H, W]`` the frozen model's log class distribution.
            valid: ``bool [H, W]``.
            threshold: ``tau``: the antecedent is false below it.
        """
        if not 0 < threshold <= 1:
            raise ValueError(f"zero-shot anchor threshold must be in (0, 1], got {threshold}")
        z = zero_shot_log_probs.detach().float()
        if z.ndim != 3 or z.shape[1:] != valid.shape:
            raise ValueError(f"zero-shot log-probs must be [K, {valid.shape[0]}, {valid.shape[1]}], got {tuple(z.shape)}")
        mask = (z >= torch.log(torch.tensor(threshold))) & valid[None]
        log_confidence = torch.where(mask, z.clamp(max=0.0), torch.zeros_like(z))
        return cls(log_confidence=log_confidence, mask=mask, num_groundings=int(mask.sum()))

    def dense(self, atoms: Atoms) -> Tuple[torch.Tensor, torch.Tensor]:
        if self.log_confidence.shape[0] != atoms.x.shape[0]:
            raise ValueError(f"zero-shot distribution has {self.log_confidence.shape[0]} channels, atoms {atoms.x.shape[0]}")
        negated = atoms.negated if atoms.negate_all else atoms.log_not(atoms.x)
        # confident(p, k) -> k(p) = not(confident(p, k) and not k(p))
        return atoms.log_not(self.log_confidence.to(negated.dtype) + negated), self.mask


def check_zero_shot_anchor_options(options: Mapping[str, Any]) -> None:
    """``0 < threshold <= 1``."""
    if not 0 < options["threshold"] <= 1:
        raise ValueError(f"need 0 < zero_shot_anchor.threshold <= 1, got {options['threshold']}")


@register_constraint("zero_shot_anchor", requires=("zero_shot",), options={"threshold": 0.9},
                     check_options=check_zero_shot_anchor_options)
def build_zero_shot_anchor(inputs: ConstraintInputs, *, threshold: float) -> ZeroShotAnchorConstraint:
    """forall p, k: confident_zero_shot(p, k) -> k(p)"""
    return ZeroShotAnchorConstraint.build(zero_shot_log_probs=inputs.zero_shot_log_probs, valid=inputs.valid,
                                          threshold=threshold)
