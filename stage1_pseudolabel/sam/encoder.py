"""The frozen image encoder's input: resize the longest side, normalise, zero-pad to a square.

SAM's own preprocessing (``ResizeLongestSide.apply_image`` then ``Sam.preprocess``), written once for
embedding, generation, the benchmarks and the proxy's pretraining. Frames are those of
:class:`wsss.core.frames.SamFrame`: the resized image occupies the top-left ``resized_hw`` of the
``S x S`` input (``S`` = ``image_encoder.img_size``, 1024 for SAM).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn

from wsss.core.frames import SamFrame


def resize_for_encoder(image: np.ndarray, *, encoder_size: int) -> torch.Tensor:
    """``uint8 [H, W, 3]`` to ``uint8 [3, h', w']`` with the longest side ``encoder_size``.

    Same resampling as ``segment_anything.utils.transforms.ResizeLongestSide.apply_image`` (PIL
    bilinear); the size is :attr:`SamFrame.resized_hw`.
    """
    from PIL import Image

    frame = SamFrame(height=image.shape[0], width=image.shape[1], encoder_size=encoder_size, lowres=encoder_size // 4)
    rh, rw = frame.resized_hw
    resized = np.asarray(Image.fromarray(image).resize((rw, rh), Image.BILINEAR))
    return torch.from_numpy(resized.copy()).permute(2, 0, 1).contiguous()


def preprocess(model: nn.Module, images: Sequence[torch.Tensor], *, device: Optional[torch.device] = None) -> torch.Tensor:
    """Normalise and zero-pad resized ``uint8 [3, h', w']`` images to the encoder's square input:
    ``float [B, 3, S, S]`` on ``device`` (default: where the model's ``pixel_mean`` is)."""
    device = model.pixel_mean.device if device is None else device
    size = int(model.image_encoder.img_size)
    mean = model.pixel_mean.to(device)
    std = model.pixel_std.to(device)
    batch = torch.zeros((len(images), 3, size, size), dtype=torch.float32, device=device)
    for i, img in enumerate(images):
        x = (img.to(device, non_blocking=True).float() - mean) / std
        batch[i, :, : x.shape[1], : x.shape[2]] = x
    return batch


@torch.inference_mode()
def encode(model: nn.Module, images: Sequence[torch.Tensor], *, device: torch.device) -> torch.Tensor:
    """Image embeddings ``float [B, 256, h, w]`` of resized ``uint8 [3, h', w']`` images."""
    return model.image_encoder(preprocess(model, images, device=device))
