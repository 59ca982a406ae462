"""Connectives of a product t-norm fuzzy logic whose truth values are log-probabilities.

A truth value is a tensor of log-probabilities in ``[-inf, 0]`` (``0`` certainly true, ``-inf``
certainly false): ``not x = log(1 - exp(x))`` (log1mexp), ``x and y = x + y``, and ``or`` / ``->``
built from them. :func:`clamp_truth` (atoms) and :func:`log_not` (its own input) are the only places
where values are clipped; the semantics, the clamping and its gradients: ``logic/README.md``.
"""

from __future__ import annotations

import math

import torch

#: Probabilities are clipped to ``[eps, 1 - eps]``: the largest penalty of one atom is ``-log(eps)``
#: (13.8 nats) and the largest gradient of ``not`` is ``~1/eps``, well inside float32.
DEFAULT_EPS = 1e-6
_LN2 = math.log(2.0)


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(x))`` for ``x < 0`` without cancellation (Maechler 2012): ``log(-expm1(x))``
    above ``-ln 2``, ``log1p(-exp(x))`` below. For every ``x`` in ``[-inf, 0)`` both branches are
    finite (``-expm1(x)`` in ``(0, 1]``, ``exp(x)`` in ``[0, 1)``), so computing both and selecting
    cannot leak inf/NaN."""
    near = torch.log(torch.expm1(x).neg_())
    far = torch.log1p(torch.exp(x).neg_())
    return torch.where(x > -_LN2, near, far)


class _LogNot(torch.autograd.Function):
    """``log(1 - exp(min(x, top)))`` with the derivative at the clamped point (straight-through)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, top: float) -> torch.Tensor:  # type: ignore[override]
        xc = x.clamp(max=top)
        ctx.save_for_backward(xc)
        return _log1mexp(xc)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (xc,) = ctx.saved_tensors
        # d/dx log(1 - e^x) = -e^x / (1 - e^x) = 1 / -expm1(-x): in [-1/eps, 0], finite down to -inf.
        return grad / torch.expm1(xc.neg()).neg_(), None


class _ClampTruth(torch.autograd.Function):
    """``clamp(x, low, high)`` in the forward pass, identity in the backward pass."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, low: float, high: float) -> torch.Tensor:  # type: ignore[override]
        return x.clamp(min=low, max=high)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return grad, None, None


def clamp_truth(x: torch.Tensor, *, eps: float = DEFAULT_EPS) -> torch.Tensor:
    """Clip atom log-truths to probabilities ``[eps, 1 - eps]`` with a straight-through gradient.

    Args:
        x: ``[...]`` log-probabilities; ``0`` and ``-inf`` allowed.
        eps: clip width.

    Returns:
        ``[...]`` log-truths in ``[log(eps), log1p(-eps)]``; gradient passed through unchanged.
    """
    return _ClampTruth.apply(x, math.log(eps), math.log1p(-eps))


def log_not(x: torch.Tensor, *, eps: float = DEFAULT_EPS) -> torch.Tensor:
    """Negation ``log(1 - exp(x))``, evaluated at ``min(x, log1p(-eps))`` (module docstring).

    Args:
        x: ``[...]`` log-truths in ``[-inf, 0]``.
        eps: inputs above ``log1p(-eps)`` (truth ``1 - eps``) count as ``log1p(-eps)``, so
            ``log_not(0) = log(eps)``.

    Returns:
        ``[...]`` finite log-truths in ``[log(eps), 0]``.
    """
    return _LogNot.apply(x, math.log1p(-eps))


def log_and(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Product t-norm conjunction ``x + y`` (broadcasting)."""
    return x + y


def log_or(x: torch.Tensor, y: torch.Tensor, *, eps: float = DEFAULT_EPS) -> torch.Tensor:
    """Probabilistic sum ``not(not x and not y)``, i.e. ``log(p + q - p q)`` (broadcasting)."""
    return log_not(log_not(x, eps=eps) + log_not(y, eps=eps), eps=eps)


def log_implies(x: torch.Tensor, y: torch.Tensor, *, eps: float = DEFAULT_EPS) -> torch.Tensor:
    """Reichenbach implication ``not x or y = not(x and not y)``, i.e. ``log(1 - p + p q)``."""
    return log_not(x + log_not(y, eps=eps), eps=eps)
