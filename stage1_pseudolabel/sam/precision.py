"""The ``precision`` option: autocast contexts for the encoder and the decoder.

``fp32`` runs without autocast; ``bf16`` / ``fp16`` run the model under ``torch.autocast`` of the
device type (both exist on the CPU too, where the tests exercise them; fp16 is fast on GPUs only).
Training in fp16 scales its loss with a gradient scaler (:mod:`stage1_pseudolabel.pipeline.train`).
The logic loss is always computed in fp32 (its callers cast the logits with ``.float()``,
:mod:`stage1_pseudolabel.sam.class_distribution`), and cached embeddings are fp16 whatever the
precision.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import ContextManager, Tuple, Union

import torch

PRECISIONS: Tuple[str, ...] = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def set_tf32(enabled: bool) -> None:
    """CUDA fp32 matmuls and cuDNN convolutions in TF32 or in full fp32 (process-wide; no effect on a CPU)."""
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def autocast(precision: str, device: Union[str, torch.device]) -> ContextManager:
    """The autocast context of ``precision`` on ``device`` (a null context for ``fp32``)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=_DTYPES[precision])
