"""Scaled-dot-product attention for SAM 1's (and HQ-SAM's) ViT image encoder.

``segment_anything``'s ``Attention`` materialises ``softmax(q k^T * scale + rel_pos)`` itself. Here
the decomposed relative-position bias of ``add_decomposed_rel_pos`` is built as an additive
attention mask ``[B, heads, HW, HW]`` and handed to ``torch.nn.functional.scaled_dot_product_attention``
(fused kernels on the GPU; the same maths). Same weights, same outputs: equal to the eager module
within float rounding in fp32 and within bf16 tolerance under bf16 autocast (tests/stage1/test_backends.py).

:func:`use_sdpa_attention` swaps the ``forward`` of every attention module of an encoder, in place
(the state dict is unchanged); :func:`use_eager_attention` undoes it. SAM 2's Hiera already uses SDPA.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import nn


def _rel_pos(q_size: int, k_size: int, rel_pos: torch.Tensor) -> torch.Tensor:
    """``get_rel_pos`` of segment_anything (interpolated when the table does not fit the size)."""
    max_rel_dist = int(2 * max(q_size, k_size) - 1)
    if rel_pos.shape[0] != max_rel_dist:
        resized = F.interpolate(rel_pos.reshape(1, rel_pos.shape[0], -1).permute(0, 2, 1), size=max_rel_dist,
                                mode="linear")
        rel_pos = resized.reshape(-1, max_rel_dist).permute(1, 0)
    q_coords = torch.arange(q_size, device=rel_pos.device)[:, None] * max(k_size / q_size, 1.0)
    k_coords = torch.arange(k_size, device=rel_pos.device)[None, :] * max(q_size / k_size, 1.0)
    relative = (q_coords - k_coords) + (k_size - 1) * max(q_size / k_size, 1.0)
    return rel_pos[relative.long()]


def sdpa_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``Attention.forward`` of segment_anything's ViT with SDPA: ``x`` ``[B, H, W, C]`` -> same shape.

    q, k, v stay 4-D ``[B, heads, HW, D]`` and the relative-position bias is ``[B, heads, HW, HW]``:
    the fused kernels (flash on the CPU, memory-efficient on CUDA) take only 4-D inputs, and a 3-D
    call falls back to the math path, which in bf16 upcasts and materialises the score matrix.
    """
    b, h, w, _ = x.shape
    q, k, v = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
    bias = None
    if self.use_rel_pos:
        rh = _rel_pos(h, h, self.rel_pos_h)
        rw = _rel_pos(w, w, self.rel_pos_w)
        r_q = q.reshape(b, self.num_heads, h, w, -1)
        rel_h = torch.einsum("bnhwc,hkc->bnhwk", r_q, rh.to(r_q.dtype))
        rel_w = torch.einsum("bnhwc,wkc->bnhwk", r_q, rw.to(r_q.dtype))
        bias = (rel_h[..., :, None] + rel_w[..., None, :]).reshape(b, self.num_heads, h * w, h * w).to(q.dtype)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)
    out = out.permute(0, 2, 1, 3).reshape(b, h, w, -1)
    return self.proj(out)


def _attention_modules(encoder: nn.Module):
    for module in encoder.modules():
        if type(module).__name__ == "Attention" and hasattr(module, "qkv") and hasattr(module, "use_rel_pos"):
            yield module


def use_sdpa_attention(encoder: nn.Module) -> int:
    """Switch every ViT attention module of ``encoder`` to :func:`sdpa_forward`; returns how many."""
    n = 0
    for module in _attention_modules(encoder):
        module.forward = types.MethodType(sdpa_forward, module)
        n += 1
    return n


def use_eager_attention(encoder: nn.Module) -> int:
    """Undo :func:`use_sdpa_attention` (back to the package's own ``forward``)."""
    n = 0
    for module in _attention_modules(encoder):
        module.__dict__.pop("forward", None)
        n += 1
    return n
