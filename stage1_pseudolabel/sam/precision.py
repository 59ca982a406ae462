"""The ``precision`` option: autocast contexts for the encoder and the decoder.

``fp32`` runs as before; ``bf16`` / ``fp16`` run the model under ``torch.autocast`` of the device
type (on the CPU, bf16 autocast is real and is what the tests exercise; fp16 autocast needs a GPU in
practice). The logic loss is always computed in fp32 (its callers cast the logits with ``.float()``,
:mod:`stage1_pseudolabel.sam.class_distribution`), and cached embeddings are fp16 whatever the
precision.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import ContextManager, Tuple, Union

import torch

PRECISIONS: Tuple[str, ...] = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(precision: str, device: Union[str, torch.device]) -> ContextManager:
    """The autocast context of ``precision`` on ``device`` (a null context for ``fp32``)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return nullcontext()
    device_type = torch.device(device).type
    if precision == "fp16" and device_type == "cpu":
        raise ValueError("precision fp16 needs a CUDA device (CPU autocast supports bf16): use bf16 or fp32")
    return torch.autocast(device_type=device_type, dtype=_DTYPES[precision])
