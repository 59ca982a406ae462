"""Let ``segment_anything`` import where torchvision is missing or broken.

``segment_anything`` imports four torchvision symbols at module import time:
``transforms.functional.resize`` / ``to_pil_image`` (``utils/transforms.py``) and
``ops.boxes.batched_nms`` / ``box_area`` (``automatic_mask_generator.py``). Where a working
torchvision is installed it is used unchanged. Where it is absent, or present but broken (a
CPU/CUDA or version mismatch raises at import, or its compiled ``nms`` op is missing), we register a
tiny ``torchvision`` stand-in in ``sys.modules`` that provides just those four functions with the
same semantics, written with torch and PIL. Nothing is installed on disk.

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
