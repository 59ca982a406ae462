"""Colour: CIE-LAB, the space in which colour affinities of neighbouring pixels are measured."""

from __future__ import annotations

import torch


def rgb_to_lab(image: torch.Tensor) -> torch.Tensor:
    """``[H, W, 3]`` RGB (uint8 or float in 0..255) to ``float [H, W, 3]`` CIE-LAB (D65)."""
    rgb = image.float() / 255.0
    lin = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    m = torch.tensor([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]],
                     dtype=lin.dtype, device=lin.device)
    xyz = lin @ m.T / torch.tensor([0.950456, 1.0, 1.088754], dtype=lin.dtype, device=lin.device)
    f = torch.where(xyz > 0.008856, xyz.clamp_min(1e-12) ** (1 / 3), 7.787 * xyz + 16 / 116)
    lab_l = torch.where(xyz[..., 1] > 0.008856, 116 * f[..., 1] - 16, 903.3 * xyz[..., 1])
    return torch.stack([lab_l, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], dim=-1)
