"""What every constraint type shares: the atoms it reads, and the per-grounding interface.

A constraint is compiled once per image from weak labels into index tensors and masks, then evaluated
many times on ``log_probs [K, H, W]`` (``log p(class k at pixel (h, w))``, channel 0 background).
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

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


def as_tensor(value, *, dtype: torch.dtype, device=None) -> torch.Tensor:
    """``torch.as_tensor`` that accepts numpy arrays, tensors and lists alike."""
    return torch.as_tensor(value, dtype=dtype, device=device) if not isinstance(value, torch.Tensor) else value.to(device=device, dtype=dtype)


def box_spans(boxes: torch.Tensor, *, height: int, width: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(bool [N, H], bool [N, W])``: the rows and the columns of each of ``boxes`` (``long [N, 4]``
    half-open ``x0 y0 x1 y1``) in an ``H x W`` map."""
    rows = torch.arange(height, device=boxes.device)
    cols = torch.arange(width, device=boxes.device)
    in_rows = (rows[None, :] >= boxes[:, 1:2]) & (rows[None, :] < boxes[:, 3:4])
    in_cols = (cols[None, :] >= boxes[:, 0:1]) & (cols[None, :] < boxes[:, 2:3])
    return in_rows, in_cols


def boxes_cover(boxes: torch.Tensor, *, height: int, width: int) -> torch.Tensor:
    """``bool [H, W]``: pixels inside at least one of ``boxes`` (``long [N, 4]`` half-open ``x0 y0 x1 y1``)."""
    in_rows, in_cols = box_spans(boxes, height=height, width=width)
    return (in_rows[:, :, None] & in_cols[:, None, :]).any(dim=0)
