"""Model parts mmsegmentation does not ship, registered in mmseg's ``MODELS``.

``DeepLabV2Head``: the ASPP of DeepLab v2 (Chen et al., TPAMI 2017, "ASPP-L"): parallel 3x3
classifiers with dilations 6, 12, 18, 24 on the backbone's last (stride 8) features, whose class
scores are summed. No image pooling, no batch norm, no 1x1 projection, unlike DeepLab v3's ASPP.
"""

from __future__ import annotations

from typing import List, Sequence

import torch
import torch.nn as nn
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS
from torch import Tensor


@MODELS.register_module()
class DeepLabV2Head(BaseDecodeHead):
    """DeepLab v2 ASPP: ``sum_d conv3x3_dilation=d(dropout(x))`` to ``num_classes`` channels.

    Args:
        dilations: dilation of each branch (DeepLab v2's ASPP-L: 6, 12, 18, 24).
        **kwargs: as ``BaseDecodeHead``; ``channels`` is unused by the branches (they output classes)
            and defaults to ``in_channels``.
    """

    def __init__(self, dilations: Sequence[int] = (6, 12, 18, 24), **kwargs) -> None:
        kwargs.setdefault("channels", kwargs.get("in_channels"))
        kwargs.setdefault("init_cfg", dict(type="Normal", std=0.01, override=dict(name="aspp")))
        super().__init__(**kwargs)
        del self.conv_seg  # each branch is a classifier; an unused conv_seg would break DDP
        self.dilations = tuple(dilations)
        self.aspp = nn.ModuleList(
            nn.Conv2d(self.in_channels, self.out_channels, 3, padding=d, dilation=d) for d in self.dilations
        )

    def forward(self, inputs: List[Tensor]) -> Tensor:
        x = self._transform_inputs(inputs)
        if self.dropout is not None:
            x = self.dropout(x)
        return torch.stack([branch(x) for branch in self.aspp]).sum(0)
