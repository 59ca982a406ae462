"""The atoms of one evaluation: ``k(p)`` for every class and pixel, and their negation computed once."""

from __future__ import annotations

from typing import Optional

import torch

from logic.ops import DEFAULT_EPS, clamp_truth, log_not


class Atoms:
    """The atoms ``k(p)`` of one evaluation, shared by all constraints so that ``not k(p)`` (the most
    expensive op) is computed at most once.

    Attributes:
        x: ``[K, H, W]`` atom log-truths, clipped to probabilities ``[eps, 1 - eps]`` (straight-through).
        valid: ``bool [H, W]`` pixels that take part in any constraint.
        eps: the clipping of :func:`logic.ops.clamp_truth` and :func:`logic.ops.log_not`.
        negate_all: whether some constraint will need ``not k(p)`` for every class; if not,
            :meth:`negated_valid_of` negates only the classes asked for.
    """

    def __init__(
        self,
        log_probs: torch.Tensor,
        *,
        valid: torch.Tensor,
        eps: float = DEFAULT_EPS,
        negate_all: bool = True,
        all_valid: Optional[bool] = None,
    ) -> None:
        if log_probs.ndim != 3:
            raise ValueError(f"log_probs must be [K, H, W], got shape {tuple(log_probs.shape)}")
        if log_probs.shape[-2:] != valid.shape:
            raise ValueError(f"log_probs are {tuple(log_probs.shape[-2:])} but the constraints were built for {tuple(valid.shape)}")
        self.x = clamp_truth(log_probs, eps=eps)
        self.valid = valid
        # Masks are applied by multiplication (every value is finite after clamping), which is
        # cheaper than torch.where on CPU; None when every pixel is valid (the usual case after cropping).
        # ``all_valid``, when the caller knows it, spares reading ``valid`` back from the device.
        all_valid = bool(valid.all()) if all_valid is None else all_valid
        self.valid_weight: Optional[torch.Tensor] = None if all_valid else valid.to(self.x.dtype)
        self.eps = eps
        self.negate_all = negate_all
        self._negated: Optional[torch.Tensor] = None
        self._negated_valid: Optional[torch.Tensor] = None

    def negated_valid_of(self, classes: torch.Tensor) -> torch.Tensor:
        """``[len(classes), H, W]`` rows of :attr:`negated_valid`, computing only those if possible."""
        if self.negate_all or self._negated_valid is not None:
            return self.negated_valid[classes]
        n = self.log_not(self.x[classes])
        return n if self.valid_weight is None else n * self.valid_weight

    def log_not(self, x: torch.Tensor) -> torch.Tensor:
        return log_not(x, eps=self.eps)

    @property
    def negated(self) -> torch.Tensor:
        """``[K, H, W]`` ``not k(p)``."""
        if self._negated is None:
            self._negated = self.log_not(self.x)
        return self._negated

    @property
    def negated_valid(self) -> torch.Tensor:
        """``[K, H, W]`` ``not k(p)`` on valid pixels, 0 (neutral for ``and``) elsewhere."""
        if self._negated_valid is None:
            n = self.negated
            self._negated_valid = n if self.valid_weight is None else n * self.valid_weight
        return self._negated_valid
