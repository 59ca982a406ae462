"""Writing synthetic scenes as a VOC2012-layout dataset (:func:`wsss.core.datasets.voc_dataset` reads it).

Layout under ``root``::

    JPEGImages/<id>.jpg           RGB image (JPEG quality 95)
    SegmentationClass/<id>.png    exact class map (VOC palette PNG; no void border)
    SegmentationObject/<id>.png   instance map, 1..N in the order of the XML objects
    Annotations/<id>.xml          one VOC box per instance, tight around its visible pixels (1-based inclusive)
    scribbles/<id>.png            ScribbleSup-style strokes (255 unlabeled)
    points/<id>.json              What's-the-Point-style clicks
    ImageSets/Segmentation/{train,val,trainval}.txt
    synthetic.json                the generator's parameters

Ids are ``<domain>_<split>_<index:05d>``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence, Tuple
from xml.sax.saxutils import escape

from PIL import Image

from wsss.core.frames import pixel_box_to_voc
from wsss.core.masks import write_mask
from wsss.core.synthetic.scenes import DEFAULT_CLASSES, SPLITS, Scene, render_scene, scene_rng
from wsss.core.weak_labels.classes import VOC_CLASSES
from wsss.core.weak_labels.errors import PathLike


def scene_id(*, domain: str, split: str, index: int) -> str:
    return f"{domain}_{split}_{index:05d}"


def voc_xml(scene: Scene, *, image_id: str, domain: str) -> str:
    """The VOC annotation XML of a scene (boxes converted by :func:`wsss.core.frames.pixel_box_to_voc`)."""
    height, width = scene.label.shape
    lines = [
        "<annotation>", "\t<folder>synthetic</folder>", f"\t<filename>{image_id}.jpg</filename>",
        f"\t<source><database>wsss synthetic scenes ({escape(domain)})</database></source>",
        f"\t<size><width>{width}</width><height>{height}</height><depth>3</depth></size>",
        "\t<segmented>1</segmented>",
    ]
    for obj in scene.objects:
        xmin, ymin, xmax, ymax = pixel_box_to_voc(*obj.box)
        truncated = int(obj.box[0] == 0 or obj.box[1] == 0 or obj.box[2] == width or obj.box[3] == height)
        lines += [
            "\t<object>", f"\t\t<name>{VOC_CLASSES[obj.class_index]}</name>", "\t\t<pose>Unspecified</pose>",
            f"\t\t<truncated>{truncated}</truncated>", "\t\t<difficult>0</difficult>",
            f"\t\t<bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox>",
            "\t</object>",
        ]
    lines.append("</annotation>")
    return "\n".join(lines) + "\n"


def points_json(scene: Scene) -> dict:
    """The What's-the-Point JSON of a scene's clicks."""
    objects, background = [], []
    for (x, y), cls, rank in zip(scene.points.tolist(), scene.point_classes.tolist(), scene.point_ranks.tolist()):
        if cls == 0:
            background.append({"x": x, "y": y, "cls": 0})
        else:
            objects.append({"x": x, "y": y, "cls": cls, "rank": rank})
    return {"objects": objects, "background": background}


def write_scene(root: Path, scene: Scene, *, image_id: str, domain: str) -> None:
    """Write one scene's files under ``root`` (folders must exist)."""
    Image.fromarray(scene.image).save(root / "JPEGImages" / f"{image_id}.jpg", quality=95)
    # Reproducible from the seed: atomic renames, but no fsync (durable=False) to keep bulk writing fast.
    write_mask(root / "SegmentationClass" / f"{image_id}.png", scene.label, durable=False)
    write_mask(root / "SegmentationObject" / f"{image_id}.png", scene.instances, num_foreground=254, durable=False)
    write_mask(root / "scribbles" / f"{image_id}.png", scene.scribbles, durable=False)
    (root / "Annotations" / f"{image_id}.xml").write_text(voc_xml(scene, image_id=image_id, domain=domain))
    (root / "points" / f"{image_id}.json").write_text(json.dumps(points_json(scene)))


def write_dataset(
    root: PathLike,
    *,
    domain: str = "source",
    num_train: int = 200,
    num_val: int = 50,
    seed: int = 0,
    size_range: Tuple[int, int] = (160, 240),
    classes: Sequence[int] = DEFAULT_CLASSES,
) -> Path:
    """Render and write a synthetic VOC-layout dataset. Returns ``root``.

    Args:
        domain: ``"source"`` or ``"target"``.
        num_train, num_val: images per split.
        seed: the same seed gives the same files; image ``i`` of a split does not depend on the counts.
        size_range: each image's height and width are drawn from ``[min, max]``.
        classes: VOC class indices to draw.
    """
    root = Path(root)
    for sub in ("JPEGImages", "SegmentationClass", "SegmentationObject", "Annotations", "scribbles", "points",
                "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    lists = {}
    for split, count in zip(SPLITS, (num_train, num_val)):
        ids = []
        for index in range(count):
            size_rng = scene_rng(seed=seed + 7919, domain=domain, split=split, index=index)
            height, width = (int(v) for v in size_rng.integers(size_range[0], size_range[1] + 1, size=2))
            scene = render_scene(seed=seed, domain=domain, split=split, index=index, height=height, width=width,
                                 classes=classes)
            image_id = scene_id(domain=domain, split=split, index=index)
            write_scene(root, scene, image_id=image_id, domain=domain)
            ids.append(image_id)
        lists[split] = ids
    for split, ids in list(lists.items()) + [("trainval", lists["train"] + lists["val"])]:
        (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    meta = {"domain": domain, "seed": seed, "num_train": num_train, "num_val": num_val,
            "size_range": list(size_range), "classes": [VOC_CLASSES[c] for c in classes]}
    (root / "synthetic.json").write_text(json.dumps(meta, indent=2) + "\n")
    return root
