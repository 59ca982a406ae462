"""LoRA adapters on the mask decoder's attention projections (``train_params: lora``).

Every ``nn.Linear`` named ``q_proj``, ``k_proj``, ``v_proj`` or ``out_proj`` in the decoder's two-way
transformer (the same names in SAM 1, SAM 2.1 and HQ-SAM) gets two new parameters on the Linear
itself, ``lora_A`` ``[r, in]`` (Kaiming-uniform) and ``lora_B`` ``[out, r]`` (zeros), and a forward hook
that adds ``(x A^T B^T) * alpha / r`` to its output. At initialisation the decoder's outputs are
unchanged; the base weights keep their state-dict names, so an official decoder state still loads.

Why not ``peft``: ``peft`` 0.21 imports ``transformers``, ``accelerate`` and ``huggingface_hub`` at
import time (a few hundred MB of packages for four projection types); the adapter is this small
module, with the same maths as ``peft``'s ``LoraLayer`` (no dropout).
"""

from __future__ import annotations

import math
from typing import Dict, List

import torch
import torch.nn.functional as F
from torch import nn

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "out_proj")
LORA_KEYS = ("lora_A", "lora_B")


def _lora_hook(module: nn.Module, inputs, output: torch.Tensor) -> torch.Tensor:
    x = inputs[0]
    return output + F.linear(F.linear(x, module.lora_A.to(x.dtype)), module.lora_B.to(x.dtype)) * module.lora_scale


def lora_layers(decoder: nn.Module) -> Dict[str, nn.Linear]:
    """The decoder's attention projections, by name."""
    return {name: m for name, m in decoder.named_modules()
            if isinstance(m, nn.Linear) and name.rsplit(".", 1)[-1] in PROJECTIONS and ".transformer." in f".{name}"}


def add_lora(decoder: nn.Module, *, rank: int, alpha: float) -> List[nn.Parameter]:
    """Add LoRA adapters to ``decoder`` (idempotent); returns the adapter parameters."""
    if rank < 1:
        raise ValueError(f"lora rank must be >= 1, got {rank}")
    params: List[nn.Parameter] = []
    for layer in lora_layers(decoder).values():
        if not hasattr(layer, "lora_A"):
            w = layer.weight
            layer.lora_A = nn.Parameter(torch.empty(rank, layer.in_features, device=w.device, dtype=w.dtype))
            nn.init.kaiming_uniform_(layer.lora_A, a=math.sqrt(5))
            layer.lora_B = nn.Parameter(torch.zeros(layer.out_features, rank, device=w.device, dtype=w.dtype))
            layer.lora_scale = float(alpha) / rank
            layer.register_forward_hook(_lora_hook)
        params += [layer.lora_A, layer.lora_B]
    if not params:
        raise ValueError("the mask decoder has no attention projections (q_proj/k_proj/v_proj/out_proj) for LoRA")
    return params


def lora_state_dict(decoder: nn.Module) -> Dict[str, torch.Tensor]:
    """Only the adapter tensors of ``decoder`` (empty without adapters)."""
    return {k: v for k, v in decoder.state_dict().items() if k.rsplit(".", 1)[-1] in LORA_KEYS}


def has_lora(decoder: nn.Module) -> bool:
    return any(hasattr(m, "lora_A") for m in lora_layers(decoder).values())
