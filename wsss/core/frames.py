"""Every coordinate frame of the toolkit, and the only place where one is converted into another.

Frames: annotation files (VOC XML boxes 1-based and inclusive, COCO ``[x, y, w, h]``, LabelMe
corner pixels); the pixel frame (0-based ``(x, y)``, boxes half-open in pixel edges); SAM's 1024
frame (longest side resized, zero-padded) or SAM 2's square frame (:class:`SamFrame`); the low-res
mask frame (256 x 256 over the padded frame), where the logic loss is evaluated. Each in full:
docs/design.md ("Coordinate frames").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Tuple

import cv2
import numpy as np

if TYPE_CHECKING:  # torch is imported where used, so that the readers and CLIs start without it
    import torch


def voc_box_to_pixel(xmin: float, ymin: float, xmax: float, ymax: float) -> Tuple[float, float, float, float]:
    """VOC 1-based inclusive ``xmin..xmax`` to 0-based half-open pixel edges ``x0..x1``."""
    return float(xmin) - 1.0, float(ymin) - 1.0, float(xmax), float(ymax)


def pixel_box_to_voc(x0: float, y0: float, x1: float, y1: float) -> Tuple[int, int, int, int]:
    """Inverse of :func:`voc_box_to_pixel` (rounded to whole pixels)."""
    return int(round(x0)) + 1, int(round(y0)) + 1, int(round(x1)), int(round(y1))


def coco_box_to_pixel(x: float, y: float, w: float, h: float) -> Tuple[float, float, float, float]:
    """COCO ``[x, y, width, height]`` (top-left pixel edge and extent) to ``(x0, y0, x1, y1)`` pixel edges."""
    return float(x), float(y), float(x) + float(w), float(y) + float(h)


def labelme_rectangle_to_pixel(xa: float, ya: float, xb: float, yb: float) -> Tuple[float, float, float, float]:
    """LabelMe rectangle corners (0-based pixel indices, any order, both inside) to pixel edges."""
    return min(xa, xb), min(ya, yb), max(xa, xb) + 1.0, max(ya, yb) + 1.0


def clip_box(box: np.ndarray, height: int, width: int) -> np.ndarray:
    """Clip ``(x0, y0, x1, y1)`` boxes (``[..., 4]``) to the image; may leave empty boxes (x1 <= x0)."""
    out = np.array(box, dtype=np.float32, copy=True)
    out[..., [0, 2]] = out[..., [0, 2]].clip(0, width)
    out[..., [1, 3]] = out[..., [1, 3]].clip(0, height)
    return out


@dataclass(frozen=True)
class SamFrame:
    """Conversions between the pixel frame of one ``height x width`` image and SAM's frames.

    Construct with keyword arguments: ``SamFrame(height=H, width=W)``; ``encoder_size`` and
    ``lowres`` default to SAM's 1024 and 256. ``padded=False`` is SAM 2's geometry: the image is
    resized to the full ``encoder_size`` square (no aspect ratio kept, no padding).
    """

    height: int
    width: int
    encoder_size: int = 1024
    lowres: int = 256
    padded: bool = True

    def __post_init__(self) -> None:
        if self.height <= 0 or self.width <= 0:
            raise ValueError(f"image size must be positive, got {self.width}x{self.height}")
        if self.encoder_size % self.lowres:
            raise ValueError("encoder_size must be a multiple of lowres")

    # -- sizes -------------------------------------------------------------------------------------
    @property
    def resized_hw(self) -> Tuple[int, int]:
        """Size of the image inside the 1024 frame (``ResizeLongestSide.get_preprocess_shape``; the
        whole square when not ``padded``)."""
        if not self.padded:
            return self.encoder_size, self.encoder_size
        scale = self.encoder_size / max(self.height, self.width)
        return int(self.height * scale + 0.5), int(self.width * scale + 0.5)

    @property
    def scale_xy(self) -> Tuple[float, float]:
        rh, rw = self.resized_hw
        return rw / self.width, rh / self.height

    @property
    def stride(self) -> int:
        """Size of one low-res cell in 1024-frame pixels (4 for SAM)."""
        return self.encoder_size // self.lowres

    @property
    def valid_lowres_hw(self) -> Tuple[int, int]:
        """Rows and columns of the low-res frame whose cell centre lies inside the resized image."""
        rh, rw = self.resized_hw
        s = self.stride
        return max(1, math.ceil((rh - s / 2) / s)), max(1, math.ceil((rw - s / 2) / s))

    def valid_lowres(self, device=None) -> torch.Tensor:
        """``bool [lowres, lowres]``: True on cells that show image, False on padding."""
        import torch

        vh, vw = self.valid_lowres_hw
        valid = torch.zeros(self.lowres, self.lowres, dtype=torch.bool, device=device)
        valid[:vh, :vw] = True
        return valid

    # -- prompts: pixel -> 1024 frame ----------------------------------------------------------------
    def boxes_to_sam(self, boxes: np.ndarray) -> np.ndarray:
        """``[N, 4]`` pixel boxes to the 1024 frame (what SAM's prompt encoder takes)."""
        sx, sy = self.scale_xy
        return np.asarray(boxes, np.float32).reshape(-1, 4) * np.array([sx, sy, sx, sy], np.float32)

    def points_to_sam(self, points: np.ndarray) -> np.ndarray:
        """``[..., 2]`` pixel ``(x, y)`` points to the 1024 frame."""
        sx, sy = self.scale_xy
        return np.asarray(points, np.float32) * np.array([sx, sy], np.float32)

    # -- weak labels: pixel -> low-res frame ---------------------------------------------------------
    def boxes_to_lowres(self, boxes: np.ndarray) -> np.ndarray:
        """``[N, 4]`` pixel boxes to integer half-open low-res cell boxes ``(c0, r0, c1, r1)``.

        Edges are rounded to the nearest cell edge (a cell more than half covered by the box is in
        it), and every non-empty box keeps at least one cell, so a small object is never dropped.
        """
        b = self.boxes_to_sam(boxes) / self.stride
        vh, vw = self.valid_lowres_hw
        out = np.floor(b + 0.5).astype(np.int64)
        out[:, [0, 2]] = out[:, [0, 2]].clip(0, vw)
        out[:, [1, 3]] = out[:, [1, 3]].clip(0, vh)
        out[:, 2] = np.maximum(out[:, 2], np.minimum(out[:, 0] + 1, vw))
        out[:, 3] = np.maximum(out[:, 3], np.minimum(out[:, 1] + 1, vh))
        out[:, 0] = np.minimum(out[:, 0], out[:, 2] - 1)
        out[:, 1] = np.minimum(out[:, 1], out[:, 3] - 1)
        return out

    def _lowres_sample_grid(self) -> Tuple[np.ndarray, np.ndarray]:
        """Pixel row / column hit by the centre of each valid low-res row / column."""
        vh, vw = self.valid_lowres_hw
        sx, sy = self.scale_xy
        s = self.stride
        rows = np.floor((np.arange(vh) + 0.5) * s / sy).astype(np.int64).clip(0, self.height - 1)
        cols = np.floor((np.arange(vw) + 0.5) * s / sx).astype(np.int64).clip(0, self.width - 1)
        return rows, cols

    def label_map_to_lowres(self, label_map: np.ndarray, *, ignore_index: int = 255, keep_thin: bool = False) -> np.ndarray:
        """``uint8 [H, W]`` label map to ``uint8 [lowres, lowres]``; padding cells get ``ignore_index``.

        Nearest sampling at cell centres. With ``keep_thin`` (scribbles), a cell that misses every
        labelled pixel at its centre takes the most frequent label found in its footprint, so that a
        3-pixel stroke survives downsampling of a large image.
        """
        if label_map.shape != (self.height, self.width):
            raise ValueError(f"label map is {label_map.shape}, frame expects {(self.height, self.width)}")
        rows, cols = self._lowres_sample_grid()
        out = np.full((self.lowres, self.lowres), ignore_index, np.uint8)
        sampled = label_map[rows[:, None], cols[None, :]]
        if keep_thin:
            vh, vw = len(rows), len(cols)
            # Footprint of each cell in pixels, then a per-label max-pool (labels are few).
            labels = [v for v in np.unique(label_map) if v != ignore_index]
            best = np.zeros((vh, vw), np.float32)
            for v in labels:
                frac = cv2.resize((label_map == v).astype(np.float32), (vw, vh), interpolation=cv2.INTER_AREA)
                take = (sampled == ignore_index) & (frac > best) & (frac > 0)
                sampled = np.where(take, v, sampled)
                best = np.maximum(best, np.where(take, frac, best))
        out[: len(rows), : len(cols)] = sampled
        return out

    def image_to_lowres(self, image: np.ndarray) -> np.ndarray:
        """``uint8 [H, W, 3]`` image to ``uint8 [lowres, lowres, 3]`` (area resampling, zero padding)."""
        vh, vw = self.valid_lowres_hw
        out = np.zeros((self.lowres, self.lowres, 3), np.uint8)
        out[:vh, :vw] = cv2.resize(image, (vw, vh), interpolation=cv2.INTER_AREA)
        return out

    # -- predictions: low-res frame -> pixel ---------------------------------------------------------
    def lowres_to_pixels(self, maps: torch.Tensor) -> torch.Tensor:
        """``[..., lowres, lowres]`` maps (logits) back to ``[..., H, W]``, as SAM's ``postprocess_masks``
        (SAM 2, not ``padded``: one bilinear resize to ``H x W``, as ``SAM2Transforms.postprocess_masks``)."""
        import torch.nn.functional as F

        lead = maps.shape[:-2]
        x = maps.reshape(-1, 1, self.lowres, self.lowres).float()
        if not self.padded:
            x = F.interpolate(x, (self.height, self.width), mode="bilinear", align_corners=False)
            return x.reshape(*lead, self.height, self.width)
        x = F.interpolate(x, (self.encoder_size, self.encoder_size), mode="bilinear", align_corners=False)
        rh, rw = self.resized_hw
        x = F.interpolate(x[..., :rh, :rw], (self.height, self.width), mode="bilinear", align_corners=False)
        return x.reshape(*lead, self.height, self.width)
