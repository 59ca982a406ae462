"""Seeded synthetic scenes with exact ground truth, in two visibly different domains.

Each scene shows 1..6 objects of a few VOC classes on a background. The class of an object is tied to
its shape and colour statistics *within a domain* (so a network can learn it), and the two domains
differ in both:

* ``"source"``: ellipses and rectangles, saturated flat colours with mild noise, on a smooth
  low-saturation gradient.
* ``"target"``: stars, rings, blobs and random polygons, textured (stripes, checkerboard, smooth
  noise), other hues and saturations, on a textured background with clutter (background shapes),
  slight blur, more crowding and occlusion.

Objects are painted in order, later ones occluding earlier ones; several instances of one class, and
touching or overlapping objects, are common. Everything derived from the painted instance map is
exact: the class map, the tight box of each instance's *visible* pixels, scribbles (3 px strokes along
the medial axis of each visible instance and of the background, always inside their region) and
clicks (one near the centre of each instance, a few in the background).

A scene depends only on ``(seed, domain, split, index)``; rendering takes a few milliseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np
from skimage.morphology import skeletonize

from wsss.core.weak_labels.classes import IGNORE_INDEX

DOMAINS: Tuple[str, ...] = ("source", "target")
SPLITS: Tuple[str, ...] = ("train", "val")

# VOC class indices drawn by default: aeroplane, bird, car, cat, person, tvmonitor.
DEFAULT_CLASSES: Tuple[int, ...] = (1, 3, 7, 8, 15, 20)


@dataclass(frozen=True)
class ClassStyle:
    """How one class looks in one domain.

    Attributes:
        shape: ``ellipse``, ``rectangle``, ``star``, ``ring``, ``blob`` or ``polygon``.
        hue: hue centre in ``[0, 1)``; saturation and value ranges are per domain.
        aspect: range of width / height of the shape before rotation.
        texture: ``flat``, ``stripes``, ``checker`` or ``noise``.
    """

    shape: str
    hue: float
    aspect: Tuple[float, float]
    texture: str


# Class styles per domain; classes outside these tables get a style derived from their index.
STYLES: Dict[str, Dict[int, ClassStyle]] = {
    "source": {
        1: ClassStyle("ellipse", 0.60, (2.2, 3.2), "flat"),
        3: ClassStyle("ellipse", 0.10, (0.9, 1.3), "flat"),
        7: ClassStyle("rectangle", 0.00, (1.6, 2.2), "flat"),
        8: ClassStyle("ellipse", 0.33, (1.2, 1.6), "flat"),
        15: ClassStyle("rectangle", 0.83, (0.35, 0.5), "flat"),
        20: ClassStyle("rectangle", 0.50, (1.2, 1.5), "flat"),
    },
    "target": {
        1: ClassStyle("polygon", 0.68, (2.0, 3.0), "stripes"),
        3: ClassStyle("star", 0.06, (0.9, 1.2), "noise"),
        7: ClassStyle("blob", 0.95, (1.4, 1.9), "checker"),
        8: ClassStyle("ring", 0.25, (1.0, 1.4), "stripes"),
        15: ClassStyle("polygon", 0.76, (0.4, 0.6), "checker"),
        20: ClassStyle("blob", 0.45, (1.1, 1.4), "noise"),
    },
}

_DOMAIN_CODE = {"source": 11, "target": 23}
_SPLIT_CODE = {"train": 1, "val": 2}


def class_style(domain: str, class_index: int) -> ClassStyle:
    """The style of ``class_index`` in ``domain`` (a deterministic fallback for classes not in :data:`STYLES`)."""
    table = STYLES[domain]
    if class_index in table:
        return table[class_index]
    shapes = ("ellipse", "rectangle") if domain == "source" else ("star", "ring", "blob", "polygon")
    textures = ("flat",) if domain == "source" else ("stripes", "checker", "noise")
    return ClassStyle(
        shapes[class_index % len(shapes)], (class_index * 0.137 + (0.0 if domain == "source" else 0.07)) % 1.0,
        (0.8, 1.6), textures[class_index % len(textures)],
    )


@dataclass(frozen=True)
class SceneObject:
    """One visible object instance.

    Attributes:
        instance_id: its value in :attr:`Scene.instances` (1-based, in painting order among kept objects).
        class_index: VOC class ``1..20``.
        box: ``(x0, y0, x1, y1)`` half-open pixel edges, tight around the instance's visible pixels.
    """

    instance_id: int
    class_index: int
    box: Tuple[int, int, int, int]


@dataclass
class Scene:
    """A rendered scene.

    Attributes:
        image: ``uint8 [H, W, 3]`` RGB.
        label: ``uint8 [H, W]`` class map (0 background, ``1..20``), exact.
        instances: ``uint8 [H, W]`` instance map (0 background, ``k`` = ``objects[k-1]``).
        objects: visible instances, painting order (later ones occlude earlier ones).
        scribbles: ``uint8 [H, W]`` ScribbleSup-style label map (255 unlabeled).
        points: ``float32 [P, 2]`` clicks ``(x, y)``: one per object, then background clicks.
        point_classes: ``int64 [P]`` (0 for background clicks); point_ranks: ``int64 [P]`` (0 for background).
    """

    image: np.ndarray
    label: np.ndarray
    instances: np.ndarray
    objects: List[SceneObject]
    scribbles: np.ndarray
    points: np.ndarray
    point_classes: np.ndarray
    point_ranks: np.ndarray


def scene_rng(*, seed: int, domain: str, split: str, index: int) -> np.random.Generator:
    """The generator of one scene: independent streams per ``(seed, domain, split, index)``."""
    if domain not in _DOMAIN_CODE:
        raise ValueError(f"domain must be one of {DOMAINS}, got {domain!r}")
    if split not in _SPLIT_CODE:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return np.random.default_rng(np.random.SeedSequence([int(seed), _DOMAIN_CODE[domain], _SPLIT_CODE[split], int(index)]))


# -- shapes ------------------------------------------------------------------------------------------
def _outline(rng: np.random.Generator, shape: str, n: int = 48) -> np.ndarray:
    """Unit-size outline ``float [K, 2]`` (roughly within the unit disc) of a shape kind."""
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    if shape in ("ellipse", "ring"):
        r = np.ones_like(t)
    elif shape == "rectangle":
        return np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], np.float64) * 0.85
    elif shape == "star":
        k = int(rng.integers(5, 8))
        t = np.linspace(0.0, 2.0 * np.pi, 2 * k, endpoint=False) + rng.uniform(0, np.pi)
        r = np.where(np.arange(2 * k) % 2 == 0, 1.0, rng.uniform(0.45, 0.6))
    elif shape == "blob":
        r = np.ones_like(t)
        for k in (2, 3, 4):
            r += rng.uniform(0.05, 0.18) * np.cos(k * t + rng.uniform(0, 2 * np.pi))
        r /= r.max()
    elif shape == "polygon":
        k = int(rng.integers(5, 8))
        t = np.sort(rng.uniform(0, 2 * np.pi, k))
        r = rng.uniform(0.75, 1.0, k)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def _shape_mask(
    rng: np.random.Generator, style: ClassStyle, *, height: int, width: int, centre: Tuple[float, float],
    radius: float, angle: float,
) -> np.ndarray:
    """``bool [H, W]`` mask of one object."""
    aspect = rng.uniform(*style.aspect)
    scale = np.array([radius * math.sqrt(aspect), radius / math.sqrt(aspect)])
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    outline = _outline(rng, style.shape)
    mask = np.zeros((height, width), np.uint8)

    def fill(unit: np.ndarray, value: int) -> None:
        pts = (unit * scale) @ rot.T + np.asarray(centre)
        cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], value, cv2.LINE_8, shift=4)

    fill(outline, 1)
    if style.shape == "ring":
        fill(outline * rng.uniform(0.45, 0.6), 0)
    return mask.astype(bool)


# -- appearance --------------------------------------------------------------------------------------
def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    hsv = np.array([[[h * 180.0, s * 255.0, v * 255.0]]], np.float32)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """``float32 [H, W]`` smooth noise in about ``[-1, 1]`` with features of ``cell`` pixels."""
    small = rng.standard_normal((height // cell + 2, width // cell + 2)).astype(np.float32)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC).clip(-2.5, 2.5) / 1.5


def _texture(rng: np.random.Generator, kind: str, height: int, width: int) -> np.ndarray:
    """``float32 [H, W]`` multiplicative brightness pattern around 1."""
    if kind == "flat":
        return np.ones((height, width), np.float32)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == "stripes":
        theta, period = rng.uniform(0, np.pi), rng.uniform(5, 10)
        phase = (xx * math.cos(theta) + yy * math.sin(theta)) * (2 * np.pi / period)
        return 1.0 + 0.28 * np.sign(np.sin(phase)).astype(np.float32)
    if kind == "checker":
        p = int(rng.integers(4, 8))
        return np.where(((xx // p + yy // p) % 2) == 0, 1.25, 0.75).astype(np.float32)
    if kind == "noise":
        return 1.0 + 0.3 * _smooth_noise(rng, height, width, int(rng.integers(3, 7)))
    raise ValueError(f"unknown texture {kind!r}")


def _object_colour(rng: np.random.Generator, domain: str, style: ClassStyle) -> np.ndarray:
    hue = (style.hue + rng.uniform(-0.03, 0.03)) % 1.0
    if domain == "source":
        return _hsv_to_rgb(hue, rng.uniform(0.6, 0.85), rng.uniform(0.65, 0.9))
    return _hsv_to_rgb(hue, rng.uniform(0.35, 0.6), rng.uniform(0.45, 0.75))


def _background(rng: np.random.Generator, domain: str, height: int, width: int) -> np.ndarray:
    """``float32 [H, W, 3]`` background picture (no objects; clutter counts as background)."""
    ramp = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    if domain == "source":
        top = _hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.0, 0.15), rng.uniform(0.75, 0.95))
        bottom = _hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.0, 0.15), rng.uniform(0.45, 0.7))
        return np.broadcast_to(top * (1 - ramp) + bottom * ramp, (height, width, 3)).astype(np.float32)
    base = _hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.1, 0.3), rng.uniform(0.35, 0.6))
    other = _hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.1, 0.3), rng.uniform(0.5, 0.8))
    mix = (0.5 + 0.5 * _smooth_noise(rng, height, width, int(rng.integers(12, 30)))).clip(0, 1)[..., None]
    pic = base * (1 - mix) + other * mix
    pic *= _texture(rng, str(rng.choice(["stripes", "checker", "noise"])), height, width)[..., None] * 0.3 + 0.7
    for _ in range(int(rng.integers(4, 10))):  # clutter: background things, class 0
        colour = _hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.05, 0.35), rng.uniform(0.3, 0.9))
        centre = (rng.uniform(0, width), rng.uniform(0, height))
        if rng.random() < 0.5:
            pt2 = (centre[0] + rng.uniform(-60, 60), centre[1] + rng.uniform(-60, 60))
            cv2.line(pic, tuple(int(v) for v in centre), tuple(int(v) for v in pt2), colour.tolist(),
                     int(rng.integers(1, 4)), cv2.LINE_8)
        else:
            cv2.circle(pic, tuple(int(v) for v in centre), int(rng.integers(3, 12)), colour.tolist(), -1, cv2.LINE_8)
    return pic.astype(np.float32)


# -- weak labels from the exact instance map --------------------------------------------------------------
def _bbox_slices(region: np.ndarray, pad: int) -> Tuple[slice, slice]:
    """Row and column slices of ``region``'s bounding box grown by ``pad`` (clipped to the array)."""
    rows, cols = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
    return (slice(max(rows[0] - pad, 0), rows[-1] + pad + 1), slice(max(cols[0] - pad, 0), cols[-1] + pad + 1))


def _medial_strokes(region: np.ndarray, *, keep_fraction: float, min_dist: float, step: int = 1) -> np.ndarray:
    """``bool [H, W]`` 3 px strokes along the skeleton of ``region``, where the region is thick.

    Skeleton pixels are kept where the distance to the region's border is at least
    ``max(min_dist, keep_fraction * max distance)``; strokes are clipped to the region. With
    ``step = 2`` the skeleton is taken on every second pixel (for large regions: 4x faster), and the
    3 x 3 dilation joins its points into a continuous stroke.
    """
    out = np.zeros_like(region)
    if not region.any():
        return out
    sy, sx = _bbox_slices(region, 1)
    crop = region[sy, sx]
    coarse = crop[::step, ::step]
    dist = cv2.distanceTransform(coarse.astype(np.uint8), cv2.DIST_L2, 3) * step
    keep_coarse = skeletonize(coarse) & (dist >= max(min_dist, keep_fraction * float(dist.max())))
    keep = np.zeros_like(crop)
    keep[::step, ::step] = keep_coarse
    if int(keep_coarse.sum()) * step < 0.3 * math.sqrt(float(crop.sum())):
        keep |= _axis_stroke(crop)  # round region: its skeleton is about a point
    out[sy, sx] = cv2.dilate(keep.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & crop
    return out


def _axis_stroke(region: np.ndarray) -> np.ndarray:
    """``bool`` 1 px segment through the thickest point of ``region`` along its principal axis, inside it."""
    dist = cv2.distanceTransform(region.astype(np.uint8), cv2.DIST_L2, 3)
    cy, cx = np.unravel_index(int(np.argmax(dist)), dist.shape)
    ys, xs = np.nonzero(region)
    coords = np.stack([xs, ys]).astype(np.float64)
    if coords.shape[1] > 2:
        _, vecs = np.linalg.eigh(np.cov(coords))
        axis = vecs[:, -1]
    else:
        axis = np.array([1.0, 0.0])
    half = 0.35 * math.sqrt(float(region.sum()))
    line = np.zeros(region.shape, np.uint8)
    p0 = (int(round(cx - half * axis[0])), int(round(cy - half * axis[1])))
    p1 = (int(round(cx + half * axis[0])), int(round(cy + half * axis[1])))
    cv2.line(line, p0, p1, 1, 1, cv2.LINE_8)
    stroke = line.astype(bool) & (dist >= min(2.0, float(dist.max())))
    stroke[cy, cx] = True
    return stroke


def _click(rng: np.random.Generator, region: np.ndarray, fraction: float) -> Tuple[float, float]:
    """A click ``(x, y)`` on a random pixel of ``region`` at least ``fraction`` of its max depth inside."""
    sy, sx = _bbox_slices(region, 1)
    dist = cv2.distanceTransform(region[sy, sx].astype(np.uint8), cv2.DIST_L2, 3)
    ys, xs = np.nonzero(dist >= fraction * float(dist.max()))
    k = int(rng.integers(len(ys)))
    # Sub-pixel jitter as in real click data; the click still rounds to the chosen pixel.
    return float(xs[k] + sx.start + rng.uniform(-0.3, 0.3)), float(ys[k] + sy.start + rng.uniform(-0.3, 0.3))


def render_scene(
    *, seed: int, domain: str, split: str = "train", index: int, height: int, width: int,
    classes: Sequence[int] = DEFAULT_CLASSES, min_visible: int = 80,
) -> Scene:
    """Render one scene (deterministic in ``seed, domain, split, index`` and the other arguments).

    Args:
        domain: ``"source"`` or ``"target"``.
        height, width: image size.
        classes: VOC class indices objects are drawn from.
        min_visible: an object with fewer visible pixels after occlusion is dropped (not drawn).
    """
    rng = scene_rng(seed=seed, domain=domain, split=split, index=index)
    short = min(height, width)
    max_objects = 4 if domain == "source" else 6
    n = int(rng.integers(1, max_objects + 1))

    specs = []  # (class, style, mask)
    for k in range(n):
        if specs and rng.random() < 0.35:
            cls = specs[int(rng.integers(len(specs)))][0]  # another instance of a class already present
        else:
            cls = int(rng.choice(np.asarray(classes)))
        style = class_style(domain, cls)
        radius = rng.uniform(0.12, 0.24) * short
        if specs and rng.random() < (0.35 if domain == "source" else 0.55):
            # touching or overlapping a previous object
            _, _, prev_centre, prev_radius = specs[int(rng.integers(len(specs)))][:4]
            theta = rng.uniform(0, 2 * np.pi)
            reach = (prev_radius + radius) * rng.uniform(0.55, 0.95)
            centre = (prev_centre[0] + reach * math.cos(theta), prev_centre[1] + reach * math.sin(theta))
        else:
            centre = (rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height)
        angle = rng.uniform(-0.25, 0.25) if domain == "source" else rng.uniform(-np.pi, np.pi)
        mask = _shape_mask(rng, style, height=height, width=width, centre=centre, radius=radius, angle=angle)
        specs.append((cls, style, centre, radius, mask))

    # Occlusion: later objects cover earlier ones; drop objects left with too few visible pixels.
    order = np.zeros((height, width), np.int32)
    for k, spec in enumerate(specs):
        order[spec[4]] = k + 1
    areas = np.bincount(order.reshape(-1), minlength=len(specs) + 1)[1:]
    kept = [k for k in range(len(specs)) if areas[k] >= min_visible]
    if not kept and areas.max() > 0:  # never an empty scene
        kept = [int(np.argmax(areas))]

    image = _background(rng, domain, height, width)
    instances = np.zeros((height, width), np.uint8)
    label = np.zeros((height, width), np.uint8)
    objects: List[SceneObject] = []
    for new_id, k in enumerate(kept, start=1):
        cls, style = specs[k][0], specs[k][1]
        visible = order == k + 1
        sy, sx = _bbox_slices(visible, 0)
        crop = visible[sy, sx]
        colour = _object_colour(rng, domain, style)
        texture = _texture(rng, style.texture, crop.shape[0], crop.shape[1])
        image[sy, sx][crop] = colour * texture[crop][:, None]
        instances[visible] = new_id
        label[visible] = cls
        objects.append(SceneObject(instance_id=new_id, class_index=cls, box=(sx.start, sy.start, sx.stop, sy.stop)))

    sigma = 4.0 if domain == "source" else 7.0
    image += sigma * rng.standard_normal(image.shape, dtype=np.float32)
    if domain == "target":
        image = cv2.GaussianBlur(image, (0, 0), 0.7)
    image = image.clip(0, 255).astype(np.uint8)

    scribbles = np.full((height, width), IGNORE_INDEX, np.uint8)
    points, point_classes, point_ranks = [], [], []
    rank: Dict[int, int] = {}
    for obj in objects:
        region = instances == obj.instance_id
        scribbles[_medial_strokes(region, keep_fraction=0.3, min_dist=2.0)] = obj.class_index
        rank[obj.class_index] = rank.get(obj.class_index, 0) + 1
        points.append(_click(rng, region, 0.6))
        point_classes.append(obj.class_index)
        point_ranks.append(rank[obj.class_index])
    background = instances == 0
    if background.any():
        scribbles[_medial_strokes(background, keep_fraction=0.2, min_dist=6.0, step=2)] = 0
        for _ in range(int(rng.integers(1, 4))):
            points.append(_click(rng, background, 0.5))
            point_classes.append(0)
            point_ranks.append(0)

    return Scene(
        image=image, label=label, instances=instances, objects=objects, scribbles=scribbles,
        points=np.asarray(points, np.float32).reshape(-1, 2), point_classes=np.asarray(point_classes, np.int64),
        point_ranks=np.asarray(point_ranks, np.int64),
    )
