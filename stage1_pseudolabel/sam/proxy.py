"""Architecture of the proxy SAM (a stand-in for pretrained SAM, see :mod:`stage1_pseudolabel.proxy`).

Same interface as ``segment_anything``'s ``Sam``: ``.image_encoder`` (with ``img_size``),
``.prompt_encoder`` and ``.mask_decoder`` are the real ``segment_anything`` classes except the image
encoder, which is a compact CNN instead of a ViT. Frames follow SAM's rule: the image is resized so
its longest side is ``image_size`` and padded to a square, the embedding is
``256 x (image_size / encoder_stride)^2``, and the decoder's low-res masks are 4x the embedding size.
The default ``image_size=128, encoder_stride=8`` gives a ``256 x 16 x 16`` embedding and
``64 x 64`` low-res masks (SAM: 1024 input, ``256 x 64 x 64``, ``256 x 256``), which keeps proxy
pretraining and stage 1 affordable on a 2-core CPU. On the synthetic scenes (160..240 px) this frame
loses almost nothing: ground-truth masks taken through the 64 x 64 low-res frame and back score
98.5 mIoU.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from stage1_pseudolabel.sam.modeling import sam_modeling

#: Keyword arguments of :func:`build_proxy_sam` that the default checkpoint was built with.
DEFAULT_CONFIG = dict(
    image_size=128,
    encoder_stride=8,
    encoder_widths=(16, 32, 64),
    encoder_blocks=3,
    prompt_embed_dim=256,
    decoder_depth=2,
    decoder_mlp_dim=512,
    decoder_heads=8,
    iou_head_hidden_dim=128,
)


class _ConvBNAct(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1) -> None:
        pad = dilation * (k - 1) // 2
        super().__init__(
            nn.Conv2d(cin, cout, k, stride=stride, padding=pad, dilation=dilation, bias=False),
            nn.BatchNorm2d(cout),
            nn.GELU(),
        )


class _ResBlock(nn.Module):
    """Residual block of two 3x3 convolutions (the second dilated to widen the receptive field)."""

    def __init__(self, ch: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = _ConvBNAct(ch, ch, 3)
        self.conv2 = nn.Sequential(
            nn.Conv2d(ch, ch, 3, padding=dilation, dilation=dilation, bias=False), nn.BatchNorm2d(ch)
        )
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.conv2(self.conv1(x)))


class ProxyImageEncoder(nn.Module):
    """Compact CNN image encoder with SAM's neck: ``[B, 3, S, S]`` to ``[B, 256, S/stride, S/stride]``.

    A strided stem (one stage per factor of 2 of ``encoder_stride``), residual blocks with growing
    dilation at the embedding resolution, a global-context term (pooled features broadcast back),
    a space-to-depth skip of the stride-``encoder_stride/2`` features (so the embedding keeps the
    sub-cell detail that the decoder's 4x upscaling needs for precise borders), and SAM's neck
    (1x1 conv, LayerNorm2d, 3x3 conv, LayerNorm2d; the 3x3 conv is depthwise here, for speed).
    """

    def __init__(
        self,
        img_size: int = 256,
        stride: int = 8,
        widths: Sequence[int] = (32, 64, 128),
        blocks: int = 4,
        out_chans: int = 256,
    ) -> None:
        super().__init__()
        n_down = stride.bit_length() - 1
        if 2**n_down != stride or n_down < 1:
            raise ValueError(f"encoder_stride must be a power of two >= 2, got {stride}")
        if img_size % stride:
            raise ValueError(f"image_size {img_size} is not a multiple of encoder_stride {stride}")
        widths = list(widths) + [widths[-1]] * max(0, n_down - len(widths))
        self.img_size = img_size
        self.stride = stride
        stages, cin = [], 3
        for i in range(n_down):
            stages.append(nn.Sequential(_ConvBNAct(cin, widths[i], 3, stride=2), _ConvBNAct(widths[i], widths[i], 3)))
            cin = widths[i]
        self.stem = nn.Sequential(*stages[:-1])
        self.last = stages[-1]
        skip = widths[n_down - 2] if n_down >= 2 else 3
        self.blocks = nn.Sequential(*[_ResBlock(cin, dilation=2 ** (i % 3)) for i in range(blocks)])
        self.context = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cin, 1), nn.GELU())
        self.neck = nn.Sequential(
            nn.Conv2d(cin + 4 * skip, out_chans, kernel_size=1, bias=False),
            sam_modeling().common.LayerNorm2d(out_chans),
            nn.Conv2d(out_chans, out_chans, kernel_size=3, padding=1, groups=out_chans, bias=False),
            sam_modeling().common.LayerNorm2d(out_chans),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fine = self.stem(x)
        x = self.blocks(self.last(fine))
        x = x + self.context(x)
        return self.neck(torch.cat([x, F.pixel_unshuffle(fine, 2)], dim=1))


def build_proxy_sam(
    *,
    image_size: int = DEFAULT_CONFIG["image_size"],
    encoder_stride: int = DEFAULT_CONFIG["encoder_stride"],
    encoder_widths: Sequence[int] = DEFAULT_CONFIG["encoder_widths"],
    encoder_blocks: int = DEFAULT_CONFIG["encoder_blocks"],
    prompt_embed_dim: int = DEFAULT_CONFIG["prompt_embed_dim"],
    decoder_depth: int = DEFAULT_CONFIG["decoder_depth"],
    decoder_mlp_dim: int = DEFAULT_CONFIG["decoder_mlp_dim"],
    decoder_heads: int = DEFAULT_CONFIG["decoder_heads"],
    iou_head_hidden_dim: int = DEFAULT_CONFIG["iou_head_hidden_dim"],
) -> nn.Module:
    """The proxy SAM (a stand-in for pretrained SAM) as a ``segment_anything`` ``Sam``, random weights.

    Model type ``"proxy"`` of :func:`stage1_pseudolabel.sam.backends.sam1.build_sam` calls this, then
    loads ``data/checkpoints/proxy_sam.pth`` strictly like an official checkpoint.
    """
    emb = image_size // encoder_stride
    m = sam_modeling()
    sam = m.Sam(
        image_encoder=ProxyImageEncoder(image_size, encoder_stride, tuple(encoder_widths), encoder_blocks, prompt_embed_dim),
        prompt_encoder=m.PromptEncoder(
            embed_dim=prompt_embed_dim,
            image_embedding_size=(emb, emb),
            input_image_size=(image_size, image_size),
            mask_in_chans=16,
        ),
        mask_decoder=m.MaskDecoder(
            num_multimask_outputs=3,
            transformer=m.TwoWayTransformer(
                depth=decoder_depth, embedding_dim=prompt_embed_dim, mlp_dim=decoder_mlp_dim, num_heads=decoder_heads
            ),
            transformer_dim=prompt_embed_dim,
            iou_head_depth=3,
            iou_head_hidden_dim=iou_head_hidden_dim,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    return sam.eval()
