"""Overlay pictures: weak labels drawn on the image, masks blended over it, and the comparison grid.

The grid has one row per selected image (best, median and worst by the fine-tuned per-image mIoU)
and the columns *image*, *weak labels* (boxes, scribbles, clicks), one column per method's mask, and
*ground truth*. Drawn with matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from wsss.core.evaluation.metrics import confusion_matrix, iou_per_class
from wsss.core.weak_labels.annotation import ImageAnnotation
from wsss.core.weak_labels.classes import IGNORE_INDEX, VOC_CLASSES, voc_palette


def per_image_miou(pred: np.ndarray, gt: np.ndarray, *, num_labels: int = 21) -> float:
    """mIoU (0..100) of one image over the classes present in its ground truth or prediction."""
    iou = iou_per_class(confusion_matrix(pred, gt, num_labels=num_labels))
    return float(np.nanmean(iou) * 100.0) if np.isfinite(iou).any() else float("nan")


def select_best_median_worst(scores: Dict[str, float]) -> List[Tuple[str, str, float]]:
    """``[("best", id, score), ("median", ...), ("worst", ...)]`` from per-image scores (NaN left out).

    Fewer rows when there are fewer than three distinct images; ties broken by id for determinism.
    """
    items = sorted(((s, i) for i, s in scores.items() if s == s), key=lambda t: (-t[0], t[1]))
    if not items:
        return []
    picks = [("best", 0), ("median", len(items) // 2), ("worst", len(items) - 1)]
    out, seen = [], set()
    for name, k in picks:
        if k in seen:
            continue
        seen.add(k)
        out.append((name, items[k][1], items[k][0]))
    return out


def colorize(mask: np.ndarray) -> np.ndarray:
    """``uint8 [H, W]`` label map to ``uint8 [H, W, 3]`` VOC colours (255 void shown light grey)."""
    pal = voc_palette().copy()
    pal[IGNORE_INDEX] = (224, 224, 192)
    return pal[np.asarray(mask, np.uint8)]


def blend(image: np.ndarray, mask: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """The mask's colours over the image (background pixels keep the dimmed image)."""
    col = colorize(mask).astype(np.float32)
    img = image.astype(np.float32)
    a = np.where((mask > 0)[..., None], alpha, 0.0)
    out = img * (1 - a) + col * a
    out = np.where((mask == 0)[..., None], img * 0.75, out)
    return out.clip(0, 255).astype(np.uint8)


def draw_weak_labels(image: np.ndarray, ann: ImageAnnotation) -> np.ndarray:
    """The image with the weak labels drawn: scribble pixels, boxes (class colours) and clicks."""
    pal = voc_palette()
    out = (image.astype(np.float32) * 0.8).astype(np.uint8)
    h, w = image.shape[:2]
    thick = max(1, round(max(h, w) / 200))
    if ann.scribbles is not None:
        s = ann.scribbles
        labelled = s != IGNORE_INDEX
        if labelled.any():
            dil = cv2.dilate(labelled.astype(np.uint8), np.ones((thick, thick), np.uint8)) > 0
            grown = s.copy()
            if thick > 1:
                # widen thin strokes so they stay visible when the picture is shrunk
                for v in np.unique(s[labelled]):
                    grown[(cv2.dilate((s == v).astype(np.uint8), np.ones((thick, thick), np.uint8)) > 0) & ~labelled] = v
            col = pal[grown].copy()
            col[grown == 0] = (255, 255, 255)  # background strokes in white
            out[dil] = col[dil]
    for box, cls in zip(ann.boxes, ann.box_classes):
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        colour = tuple(int(c) for c in pal[int(cls)])
        cv2.rectangle(out, (x0, y0), (max(x0, x1 - 1), max(y0, y1 - 1)), colour, thick)
    for (x, y), cls in zip(ann.points, ann.point_classes):
        colour = (255, 255, 255) if int(cls) == 0 else tuple(int(c) for c in pal[int(cls)])
        r = max(2, 2 * thick)
        cv2.circle(out, (int(round(x)), int(round(y))), r + 1, (0, 0, 0), -1)
        cv2.circle(out, (int(round(x)), int(round(y))), r, colour, -1)
    return out


@dataclass
class OverlayRow:
    """One row of the grid: the image, its weak labels, the masks to show (title -> mask) and GT."""

    label: str
    image_id: str
    image: np.ndarray
    annotation: ImageAnnotation
    masks: Dict[str, np.ndarray]
    gt: Optional[np.ndarray] = None
    scores: Dict[str, float] = field(default_factory=dict)
    #: the weak labels the run used (e.g. ``boxes``), named over the column that draws them
    weak_labels: Optional[str] = None


def overlay_grid(rows: Sequence[OverlayRow], out_png: Path, *, cell_inches: float = 2.4, dpi: int = 100) -> Path:
    """Write the comparison grid PNG (rows x [image, weak labels, masks..., ground truth])."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    if not rows:
        raise ValueError("overlay_grid needs at least one row")
    used = rows[0].weak_labels
    weak_title = f"weak labels used:\n{used}" if used else "weak labels"
    titles = ["image", weak_title] + list(rows[0].masks) + ["ground truth"]
    ncol = len(titles)
    h, w = rows[0].image.shape[:2]
    aspect = h / max(w, 1)
    fig, axes = plt.subplots(len(rows), ncol, figsize=(cell_inches * ncol, cell_inches * aspect * len(rows) + 0.6),
                             squeeze=False)
    for r, row in enumerate(rows):
        panels = [row.image, draw_weak_labels(row.image, row.annotation)]
        names = ["image", weak_title]
        for name, m in row.masks.items():
            panels.append(blend(row.image, m))
            score = row.scores.get(name)
            names.append(f"{name}" + (f"\n{score:.1f} mIoU" if score is not None and score == score else ""))
        if row.gt is not None:
            panels.append(blend(row.image, row.gt))
        else:
            panels.append(np.full_like(row.image, 255))
        names.append("ground truth")
        for c, (ax, panel, name) in enumerate(zip(axes[r], panels, names)):
            ax.imshow(panel, interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(name if r == 0 or c >= 2 else "", fontsize=8)
            if c == 0:
                ax.set_ylabel(f"{row.label}\n{row.image_id}", fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=dpi)
    plt.close(fig)
    return out_png


def read_violation_maps(path: Path) -> Dict[str, np.ndarray]:
    """``{constraint: float32 [h, w]}`` of one image's ``generate --diagnostics`` file, cropped to the
    image's low-res cells; empty if the file is missing."""
    path = Path(path)
    if not path.is_file():
        return {}
    with np.load(path) as f:
        valid = f["valid"]
        rows, cols = np.nonzero(valid.any(1))[0], np.nonzero(valid.any(0))[0]
        crop = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)) if len(rows) else (slice(0, 0), slice(0, 0))
        return {name: f[name].astype(np.float32)[crop] for name in f.files if name != "valid"}


def violation_grid(rows: Sequence[OverlayRow], maps: Sequence[Dict[str, np.ndarray]], out_png: Path, *,
                   cell_inches: float = 2.2, dpi: int = 100) -> Optional[Path]:
    """Write a grid of where each constraint is violated: one row per image (the image, then one heat
    map per constraint, minus the summed grounding log-truths per low-res cell; one colour scale per
    constraint, shared by the rows). None if no row has maps."""
    names = sorted({n for m in maps for n in m}, key=lambda n: [k for m in maps for k in m].index(n))
    if not names:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    top = {n: max((float(np.percentile(m[n], 99.5)) for m in maps if n in m and m[n].size), default=1.0) or 1.0 for n in names}
    fig, axes = plt.subplots(len(rows), 1 + len(names), squeeze=False,
                             figsize=(cell_inches * (1 + len(names)), cell_inches * len(rows) + 0.6))
    for r, (row, m) in enumerate(zip(rows, maps)):
        axes[r][0].imshow(row.image)
        axes[r][0].set_ylabel(f"{row.label}\n{row.image_id}", fontsize=8)
        for c, name in enumerate(names, start=1):
            ax = axes[r][c]
            if name in m:
                ax.imshow(m[name], cmap="magma", vmin=0.0, vmax=top[name], interpolation="nearest")
                ax.set_xlabel(f"-log-truth {m[name].sum():.3g}", fontsize=7)
            if r == 0:
                ax.set_title(name, fontsize=8)
        for ax in axes[r]:
            ax.set_xticks([]), ax.set_yticks([])
    axes[0][0].set_title("image", fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=dpi)
    plt.close(fig)
    return out_png


def class_legend(classes: Sequence[str] = VOC_CLASSES, present: Optional[Sequence[int]] = None) -> List[Tuple[str, str]]:
    """``[(name, "#rrggbb")]`` for the legend of the report (only ``present`` classes when given)."""
    pal = voc_palette()
    idx = range(len(classes)) if present is None else sorted(set(int(i) for i in present))
    return [(classes[i], "#%02x%02x%02x" % tuple(int(c) for c in pal[i])) for i in idx if i < len(classes)]
