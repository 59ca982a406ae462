"""Quantifiers over (masked) sets of positions: n-ary ``and`` / ``or`` along tensor dimensions.

``forall`` over a set is the product t-norm of its members, a sum of log-truths; ``exists`` is its
dual ``not forall not``. A boolean ``mask`` restricts the set: masked-out members contribute the
neutral element (truth 1, log-truth 0) to ``forall``, so ``exists`` over an empty set is false
(``log(eps)`` after clamping) and ``forall`` over an empty set is true (0).
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch

from logic.ops import DEFAULT_EPS, log_not

Dims = Union[int, Sequence[int], None]


def _masked(x: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    if mask is None:
        return x
    # where, not multiplication: x may be -inf where masked out.
    return torch.where(mask, x, x.new_zeros(()))


def _dims(dim: Dims, ndim: int) -> tuple:
    if dim is None:
        return tuple(range(ndim))
    return (dim,) if isinstance(dim, int) else tuple(dim)


def forall(x: torch.Tensor, *, dim: Dims = None, mask: Optional[torch.Tensor] = None, keepdim: bool = False) -> torch.Tensor:
    """``and`` over the positions of ``x`` along ``dim`` where ``mask`` is True.

    Args:
        x: ``[...]`` log-truths.
        dim: dimension(s) quantified over; None = all.
        mask: bool, broadcastable to ``x``; None = every position.
        keepdim: keep the reduced dimensions with size 1.

    Returns:
        log-truths with ``dim`` reduced.
    """
    x = _masked(x, mask)
    return x.sum(dim=_dims(dim, x.ndim), keepdim=keepdim)


def exists(
    x: torch.Tensor,
    *,
    dim: Dims = None,
    mask: Optional[torch.Tensor] = None,
    keepdim: bool = False,
    eps: float = DEFAULT_EPS,
) -> torch.Tensor:
    """``or`` over the positions of ``x`` along ``dim`` where ``mask`` is True: ``not forall not``.

    Args: as :func:`forall`, plus ``eps`` of :func:`logic.ops.log_not`.

    Returns:
        log-truths with ``dim`` reduced; ``log(1 - prod(1 - p))`` over the masked positions.
    """
    negated = log_not(x, eps=eps)
    return log_not(forall(negated, dim=dim, mask=mask, keepdim=keepdim), eps=eps)
