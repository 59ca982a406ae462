"""Let ``segment_anything`` import where torchvision is missing or broken.

``segment_anything`` imports four torchvision symbols at module import time:
``transforms.functional.resize`` / ``to_pil_image`` (``utils/transforms.py``) and
``ops.boxes.batched_nms`` / ``box_area`` (``automatic_mask_generator.py``). Where a working
torchvision is installed it is used unchanged. Where it is absent, or present but broken (a
CPU/CUDA or version mismatch raises at import, or its compiled ``nms`` op is missing), we register a
tiny ``torchvision`` stand-in in ``sys.modules`` that provides just those four functions with the
same semantics, written with torch and PIL. Nothing is installed on disk.

``sam2`` (SAM 2.1) and ``segment_anything_hq`` (HQ-SAM) import the same ops and, for
``sam2.utils.transforms.SAM2Transforms``, the transform modules ``Normalize``, ``Resize`` and
``ToTensor`` (``SAM2Transforms`` scripts ``Resize`` + ``Normalize`` with ``torch.jit.script``, so the
stand-ins below are TorchScript-compatible modules). ``Resize`` on a float tensor is
``F.interpolate(bilinear, align_corners=False, antialias=True)``, what torchvision >= 0.17 does.

Call :func:`ensure_torchvision` before the first ``import segment_anything``;
:func:`stage1_pseudolabel.sam.modeling.sam_modeling` does so (importing this package does nothing).
"""

from __future__ import annotations

import sys
import types
from typing import Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from PIL import Image

_STAND_IN_ATTR = "__wsss_stand_in__"


def _real_torchvision_works() -> bool:
    try:
        from torchvision.ops.boxes import batched_nms, box_area  # noqa: F401
        from torchvision.transforms.functional import resize, to_pil_image  # noqa: F401

        # A torchvision built for another torch imports but fails on its first compiled op.
        batched_nms(torch.zeros(1, 4), torch.zeros(1), torch.zeros(1, dtype=torch.long), 0.5)
        return True
    except Exception:  # ImportError, RuntimeError (missing operator), OSError (bad .so)
        return False


def to_pil_image(pic: Union[np.ndarray, torch.Tensor]) -> Image.Image:
    """Array ``HxWxC`` (uint8) or tensor ``CxHxW`` (uint8 or float in [0, 1]) to a PIL image."""
    if isinstance(pic, torch.Tensor):
        arr = pic.detach().cpu()
        if arr.is_floating_point():
            arr = (arr * 255).round().clamp(0, 255).to(torch.uint8)
        arr = arr.permute(1, 2, 0).numpy() if arr.ndim == 3 else arr.numpy()
    else:
        arr = np.asarray(pic)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    return Image.fromarray(arr)


def resize(img: Union[Image.Image, torch.Tensor], size: Sequence[int], antialias: bool = True):
    """Bilinear resize to ``size = (h, w)``, as ``torchvision.transforms.functional.resize``."""
    h, w = int(size[0]), int(size[1])
    if isinstance(img, Image.Image):
        return img.resize((w, h), Image.BILINEAR)
    squeeze = img.ndim == 3
    x = img[None] if squeeze else img
    out = F.interpolate(x.float(), size=(h, w), mode="bilinear", align_corners=False, antialias=antialias)
    out = out[0] if squeeze else out
    return out.to(img.dtype) if not img.is_floating_point() else out


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Areas of ``Nx4`` XYXY boxes."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    order = scores.argsort(descending=True)
    boxes = boxes[order]
    area = box_area(boxes)
    lt = torch.maximum(boxes[:, None, :2], boxes[None, :, :2])
    rb = torch.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    iou = inter / (area[:, None] + area[None, :] - inter).clamp(min=1e-12)
    keep = torch.ones(len(boxes), dtype=torch.bool, device=boxes.device)
    for i in range(len(boxes)):  # greedy NMS is sequential by definition; N is small (mask proposals)
        if keep[i]:
            suppress = iou[i] > iou_threshold
            suppress[: i + 1] = False
            keep &= ~suppress
    return order[keep]


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Class-aware NMS: boxes of different ``idxs`` never suppress each other."""
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    offsets = idxs.to(boxes) * (boxes.max() + 1)
    return _nms(boxes + offsets[:, None], scores, iou_threshold)


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel of a ``float [..., C, H, W]`` tensor (torchvision's ``Normalize``)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], inplace: bool = False) -> None:
        super().__init__()
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]

    def forward(self, tensor: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, dtype=tensor.dtype, device=tensor.device).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=tensor.dtype, device=tensor.device).view(-1, 1, 1)
        return (tensor - mean) / std


class Resize(nn.Module):
    """Bilinear, antialiased resize of a ``float [C, H, W]`` or ``[B, C, H, W]`` tensor to ``(h, w)``."""

    def __init__(self, size: Sequence[int], antialias: bool = True) -> None:
        super().__init__()
        if isinstance(size, int):
            raise NotImplementedError("the torchvision stand-in's Resize takes an (h, w) size")
        self.size = [int(size[0]), int(size[1])]
        self.antialias = bool(antialias)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        squeeze = img.dim() == 3
        x = img.unsqueeze(0) if squeeze else img
        out = F.interpolate(x, size=(self.size[0], self.size[1]), mode="bilinear", align_corners=False,
                            antialias=self.antialias)
        return out.squeeze(0) if squeeze else out


class ToTensor:
    """``uint8 [H, W, C]`` array or PIL image to ``float [C, H, W]`` in ``[0, 1]`` (torchvision's ``ToTensor``)."""

    def __call__(self, pic) -> torch.Tensor:
        arr = np.asarray(pic)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).contiguous()
        return t.float().div(255) if t.dtype == torch.uint8 else t.float()


def _install_stand_in() -> None:
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]  # drop a half-imported broken torchvision
    root = types.ModuleType("torchvision")
    setattr(root, _STAND_IN_ATTR, True)
    root.__version__ = "0.0.0+wsss-stand-in"
    transforms = types.ModuleType("torchvision.transforms")
    functional = types.ModuleType("torchvision.transforms.functional")
    functional.resize = resize
    functional.to_pil_image = to_pil_image
    ops = types.ModuleType("torchvision.ops")
    ops_boxes = types.ModuleType("torchvision.ops.boxes")
    ops_boxes.batched_nms = batched_nms
    ops_boxes.box_area = box_area
    ops.boxes = ops_boxes
    ops.batched_nms = batched_nms
    ops.box_area = box_area
    transforms.functional = functional
    transforms.Normalize = Normalize
    transforms.Resize = Resize
    transforms.ToTensor = ToTensor
    root.transforms = transforms
    root.ops = ops
    sys.modules.update(
        {
            "torchvision": root,
            "torchvision.transforms": transforms,
            "torchvision.transforms.functional": functional,
            "torchvision.ops": ops,
            "torchvision.ops.boxes": ops_boxes,
        }
    )


def ensure_torchvision() -> bool:
    """Make the torchvision symbols ``segment_anything`` needs importable.

    Returns:
        True if the real torchvision is used, False if the stand-in was installed.
    """
    mod = sys.modules.get("torchvision")
    if mod is not None and getattr(mod, _STAND_IN_ATTR, False):
        return False
    if _real_torchvision_works():
        return True
    _install_stand_in()
    return False


def using_stand_in() -> bool:
    return bool(getattr(sys.modules.get("torchvision"), _STAND_IN_ATTR, False))
