"""From SAM's per-object mask logits to a per-pixel class distribution ``[background, k_1, ..., k_K]``:
a softmax over a constant 0 background logit and the objects' logits, instances of a class summed in
log space. The choice and its reasons: docs/method.md, "From object logits to a class distribution".
"""

from __future__ import annotations

import torch


def image_classes(object_classes: torch.Tensor) -> torch.Tensor:
    """Distinct classes of an image's objects, increasing: ``int64 [N] -> int64 [K]``."""
    return torch.unique(object_classes.reshape(-1).long(), sorted=True)


def object_channels(object_classes: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Channel of each object in ``[background, *classes]``: ``int64 [N]`` with values in ``1..K``."""
    idx = torch.searchsorted(classes, object_classes.reshape(-1).long())
    if len(object_classes) and not bool((classes[idx.clamp(max=len(classes) - 1)] == object_classes).all()):
        raise ValueError("an object's class is not in the class list")
    return idx + 1


def log_class_distribution(
    object_logits: torch.Tensor,
    channels: torch.Tensor,
    *,
    num_channels: int,
    background_logit: float = 0.0,
) -> torch.Tensor:
    """Per-pixel log class distribution from per-object mask logits (module docstring).

    Args:
        object_logits: ``float [N, h, w]`` SAM mask logits, one map per object (``N`` may be 0).
        channels: ``int64 [N]`` channel of each object, in ``1..num_channels-1``.
        num_channels: ``1 + K``, background plus the image's classes.
        background_logit: the constant background logit (0: SAM's threshold).

    Returns:
        ``float [num_channels, h, w]`` log-probabilities; ``logsumexp`` over dim 0 is 0. A class with
        no object gets ``-inf``.
    """
    n, h, w = object_logits.shape
    logits = object_logits.float()
    bg = torch.full((1, h, w), float(background_logit), dtype=logits.dtype, device=logits.device)
    log_z = torch.logsumexp(torch.cat([bg, logits], dim=0), dim=0, keepdim=True)  # [1, h, w]
    log_bg = bg - log_z
    if n == 0 or num_channels == 1:
        return torch.cat([log_bg, log_bg.new_full((num_channels - 1, h, w), float("-inf"))], dim=0)
    log_obj = logits - log_z  # [N, h, w]
    member = channels.to(logits.device).view(1, n) == torch.arange(1, num_channels, device=logits.device).view(-1, 1)
    offset = torch.zeros(member.shape, dtype=logits.dtype, device=logits.device).masked_fill(~member, float("-inf"))
    log_cls = torch.logsumexp(log_obj.unsqueeze(0) + offset[:, :, None, None], dim=1)  # [K, h, w]
    return torch.cat([log_bg, log_cls], dim=0)


def log_object_distribution(object_logits: torch.Tensor, *, background_logit: float = 0.0) -> torch.Tensor:
    """Per-pixel log distribution over ``[background, object 1, ..., object N]``: the softmax of
    :func:`log_class_distribution` before the objects of one class are summed (what instance-aware
    constraints read, :mod:`logic.constraints.objects`).

    Args:
        object_logits: ``float [N, h, w]`` SAM mask logits, one map per object.
        background_logit: the constant background logit.

    Returns:
        ``float [1 + N, h, w]`` log-probabilities; channel 0 equals :func:`log_class_distribution`'s.
    """
    n, h, w = object_logits.shape
    logits = object_logits.float()
    bg = torch.full((1, h, w), float(background_logit), dtype=logits.dtype, device=logits.device)
    return torch.log_softmax(torch.cat([bg, logits], dim=0), dim=0)


def channel_labels(classes: torch.Tensor) -> torch.Tensor:
    """Class index of each channel ``[background, *classes]``: ``int64 [1 + K]`` (0 first)."""
    return torch.cat([classes.new_zeros(1), classes.long()])
