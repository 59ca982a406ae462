"""Stage 1 on described datasets, with the seeded tiny random SAM (configs/stage1/tiny_random.yaml).

The same weak labels of a few real VOC images are written as a COCO JSON and as a LabelMe folder; the
pseudo-masks stage 1 makes from each are byte-identical to those from the VOC layout. An EXIF-rotated
copy of a real image, annotated in LabelMe on the view the annotator saw, gives the same mask as the
upright original.
"""

from __future__ import annotations

import contextlib
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List

import cv2
import numpy as np
import pytest
import yaml
from PIL import Image

from stage1_pseudolabel.pipeline.config import build_config
from stage1_pseudolabel.pipeline.embed import main as embed_main
from stage1_pseudolabel.pipeline.embed import run_embed
from stage1_pseudolabel.pipeline.generate import run_generate
from stage1_pseudolabel.pipeline.train import run_train
from wsss.core.frames import voc_box_to_pixel
from wsss.core.weak_labels.classes import VOC_CLASSES
from wsss.core.weak_labels.images import read_image
from wsss.core.weak_labels.scribblesup import read_scribble_png

REPO = Path(__file__).resolve().parents[2]
TINY_CONFIG = REPO / "configs" / "stage1" / "tiny_random.yaml"
NUM_IMAGES = 3


def run_stage1(work: Path, *, root: Path = None, description: Path = None, **sections) -> Dict[str, bytes]:
    """embed + train (2 steps) + generate; returns ``{id: PNG bytes}``."""
    flags = {"work_dir": str(work), "data.root": str(root) if root else None,
             "data.dataset": str(description) if description else None,
             "train": {"max_steps": 2, "epochs": 1}, "superpixels": {"n_segments": 30}}
    cfg = build_config(config_file=str(TINY_CONFIG), overrides=flags).updated(**sections)
    run_embed(cfg, progress=False)
    run_train(cfg, progress=False)
    summary = run_generate(cfg, progress=False)
    assert not summary["problems"], summary["problems"]
    return {p.stem: p.read_bytes() for p in sorted(Path(summary["output_dir"]).glob("*.png"))}


def decode(png: bytes) -> np.ndarray:
    """Label values of a palette PNG's bytes."""
    return np.asarray(Image.open(io.BytesIO(png)))


def strokes_of(scribbles: np.ndarray) -> List[tuple]:
    """Polylines (``int [K, 2]`` (x, y), class) along the scribbles: one per contour of each class."""
    strokes = []
    for cls in sorted(int(v) for v in np.unique(scribbles) if v != 255):
        contours, _ = cv2.findContours((scribbles == cls).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        for contour in contours:
            strokes.append((contour.reshape(-1, 2), cls))
    return strokes


@pytest.fixture(scope="module")
def formats(voc_root, tmp_path_factory):
    """The first train images as a VOC layout (boxes, scribbles as ScribbleSup XML strokes, clicks), a
    LabelMe folder and a COCO JSON holding the same labels, and a description for each."""
    root = tmp_path_factory.mktemp("formats")
    ids = (voc_root / "ImageSets/Segmentation/train.txt").read_text().split()[:NUM_IMAGES]
    voc = root / "voc"
    for sub in ("JPEGImages", "Annotations", "points", "SegmentationClass"):
        (voc / sub).parent.mkdir(parents=True, exist_ok=True)
        (voc / sub).symlink_to(voc_root / sub, target_is_directory=True)
    (voc / "ImageSets/Segmentation").mkdir(parents=True)
    (voc / "ImageSets/Segmentation/train.txt").write_text("\n".join(ids) + "\n")
    (voc / "scribbles").mkdir()
    labelme = root / "labelme"
    labelme.mkdir()
    coco = {"images": [], "annotations": [], "categories": [{"id": 100 + k, "name": n}  # ids unlike class indices
                                                           for k, n in enumerate(VOC_CLASSES[1:])][::-1]}
    for n, image_id in enumerate(ids):
        xml = ET.parse(voc_root / "Annotations" / f"{image_id}.xml").getroot()
        h, w = read_image(voc_root / "JPEGImages" / f"{image_id}.jpg").shape[:2]
        shapes = []
        coco["images"].append({"id": n + 1, "file_name": f"{image_id}.jpg", "height": h, "width": w})
        for obj in xml.findall("object"):
            name = obj.findtext("name").strip()
            b = obj.find("bndbox")
            x0, y0, x1, y1 = voc_box_to_pixel(*(float(b.findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax")))
            shapes.append({"label": name, "points": [[x0, y0], [x1 - 1, y1 - 1]], "shape_type": "rectangle"})
            coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": n + 1, "iscrowd": 0,
                                        "category_id": 100 + VOC_CLASSES.index(name) - 1,
                                        "bbox": [x0, y0, x1 - x0, y1 - y0]})
        scribbles = read_scribble_png(voc_root / "scribbles" / f"{image_id}.png", height=h, width=w)
        strokes = strokes_of(scribbles)
        assert strokes
        polygons = "".join(
            f"<polygon><tag>{VOC_CLASSES[c]}</tag>"
            + "".join(f"<point><X>{x}</X><Y>{y}</Y></point>" for x, y in pts.tolist()) + "</polygon>"
            for pts, c in strokes)
        (voc / "scribbles" / f"{image_id}.xml").write_text(f"<annotation>{polygons}</annotation>")
        shapes += [{"label": VOC_CLASSES[c], "points": pts.tolist(), "shape_type": "linestrip"} for pts, c in strokes]
        clicks = json.loads((voc_root / "points" / f"{image_id}.json").read_text())
        shapes += [{"label": VOC_CLASSES[p["cls"]], "points": [[p["x"], p["y"]]], "shape_type": "point"}
                   for p in clicks.get("objects", [])]
        shapes += [{"label": "background", "points": [[p["x"], p["y"]]], "shape_type": "point"}
                   for p in clicks.get("background", [])]
        (labelme / f"{image_id}.json").write_text(json.dumps(
            {"version": "5.4.1", "flags": {}, "imagePath": f"../voc/JPEGImages/{image_id}.jpg", "imageData": None,
             "imageHeight": h, "imageWidth": w, "shapes": shapes}))
    (root / "instances.json").write_text(json.dumps(coco))
    common = {"root": str(root), "images": "voc/JPEGImages", "classes": list(VOC_CLASSES),
              "splits": {"train": "voc/ImageSets/Segmentation/train.txt"}}
    descriptions = {
        "labelme": {**common, "sources": [{"format": "labelme", "path": "labelme"}]},
        "coco": {**common, "classes": {"from": "coco"}, "sources": [{"format": "coco", "path": "instances.json"}]},
    }
    for name, values in descriptions.items():
        (root / f"{name}.yaml").write_text(yaml.safe_dump(values))
    return {"root": root, "voc": voc, "ids": ids, "labelme": root / "labelme.yaml", "coco": root / "coco.yaml"}


def test_labelme_masks_equal_voc_masks(formats):
    reference = run_stage1(formats["root"] / "w_voc", root=formats["voc"])
    assert sorted(reference) == sorted(formats["ids"])
    assert any(len(np.unique(decode(png))) > 1 for png in reference.values())  # not trivially all background
    masks = run_stage1(formats["root"] / "w_labelme", description=formats["labelme"])
    assert masks == reference


def test_coco_masks_equal_voc_masks(formats):
    """COCO holds boxes only: compared with the VOC layout's boxes."""
    only_boxes = {"data": {"weak_labels": ["boxes"]}, "prompts": {"mode": "box"}}
    reference = run_stage1(formats["root"] / "w_voc_boxes", root=formats["voc"], **only_boxes)
    masks = run_stage1(formats["root"] / "w_coco", description=formats["coco"], **only_boxes)
    assert sorted(masks) == sorted(formats["ids"]) and masks == reference


def test_exif_rotated_copy_gives_the_upright_mask(voc_root, tmp_path):
    """Stored pixels turned 90 degrees with EXIF orientation 6: LabelMe shows (and the annotator boxed)
    the upright view; the pseudo-mask is the upright original's, byte for byte."""
    image_id = (voc_root / "ImageSets/Segmentation/train.txt").read_text().split()[0]
    upright = read_image(voc_root / "JPEGImages" / f"{image_id}.jpg")
    h, w = upright.shape[:2]
    xml = ET.parse(voc_root / "Annotations" / f"{image_id}.xml").getroot()
    shapes = []
    for obj in xml.findall("object"):
        b = obj.find("bndbox")
        x0, y0, x1, y1 = voc_box_to_pixel(*(float(b.findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax")))
        shapes.append({"label": obj.findtext("name").strip(), "points": [[x0, y0], [x1 - 1, y1 - 1]],
                       "shape_type": "rectangle"})
    masks = {}
    for name in ("upright", "rotated"):
        folder = tmp_path / name
        folder.mkdir()
        if name == "upright":
            Image.fromarray(upright).save(folder / "photo.png")
        else:
            exif = Image.Exif()
            exif[0x0112] = 6  # "turn 90 degrees clockwise to view"
            Image.fromarray(np.ascontiguousarray(np.rot90(upright, 1))).save(folder / "photo.png", exif=exif)
            assert Image.open(folder / "photo.png").size == (h, w)  # stored turned
        (folder / "photo.json").write_text(json.dumps({"imagePath": "photo.png", "imageHeight": h, "imageWidth": w,
                                                       "shapes": shapes}))
        (folder / "d.yaml").write_text(yaml.safe_dump({"root": str(folder), "images": ".", "classes": list(VOC_CLASSES),
                                                       "sources": [{"format": "labelme", "path": "."}]}))
        masks[name] = run_stage1(tmp_path / f"w_{name}", description=folder / "d.yaml", data=dict(weak_labels=["boxes"]), prompts=dict(mode="box"))
    assert list(masks["upright"]) == ["photo"]
    assert masks["rotated"] == masks["upright"]
    assert len(np.unique(decode(masks["upright"]["photo"]))) > 1
    assert np.asarray(Image.open(tmp_path / "w_rotated/pseudo_masks/photo.png")).shape == (h, w)


def test_stage1_cli_refuses_a_bad_description_in_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"root": str(tmp_path), "clases": ["background", "x"],
                                   "sources": [{"format": "labelme", "path": "."}]}))
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        status = embed_main(["--config", str(TINY_CONFIG), "--dataset", str(bad), "--work-dir", str(tmp_path / "w"),
                             "--no-progress"])
    assert status == 2
    assert "bad.yaml" in err.getvalue() and "clases" in err.getvalue() and "Traceback" not in err.getvalue()


@pytest.mark.parametrize("method", ["box", "grabcut"])
def test_baselines_read_descriptions(formats, tmp_path, method):
    """The classical baselines give the same masks from the LabelMe description as from the VOC layout."""
    from stage1_pseudolabel.baselines.cli import run_baseline

    voc = run_baseline(method, formats["voc"], tmp_path / "voc", split="train", progress=False)
    described = run_baseline(method, None, tmp_path / "labelme", split="train", progress=False,
                             dataset=formats["labelme"])
    assert not voc.failed and not described.failed and sorted(described.written) == sorted(formats["ids"])
    for image_id in formats["ids"]:
        assert (tmp_path / "labelme" / f"{image_id}.png").read_bytes() == (tmp_path / "voc" / f"{image_id}.png").read_bytes()


def test_formulas_name_the_description_classes(tmp_path):
    """The logic loss's class atoms are the description's names (not VOC's, not class<i>)."""
    from stage1_pseudolabel.pipeline.prepare import class_names

    (tmp_path / "lm").mkdir()
    description = tmp_path / "d.yaml"
    description.write_text(yaml.safe_dump({"root": str(tmp_path), "images": "lm", "classes": ["background", "cup", "disc"],
                                           "sources": [{"format": "labelme", "path": "lm"}]}))
    rule = "forall p in pixels: cup(p) -> forall q in N8(p): cup(q) or disc(q)"
    cfg = build_config(config_file=str(TINY_CONFIG), overrides={"data.dataset": str(description)},
                       cfg_options=[f"loss={json.dumps({'cup_in_disc': {'weight': 1.0, 'formula': rule}})}"])
    assert class_names(cfg) == ("background", "cup", "disc")
    cfg.constraints.with_class_names(class_names(cfg))  # compiles: the atoms are classes of the description
    bad = build_config(config_file=str(TINY_CONFIG), overrides={"data.dataset": str(description)},
                       cfg_options=[f"loss={json.dumps({'r': {'weight': 1.0, 'formula': rule.replace('cup', 'cat')}})}"])
    with pytest.raises(ValueError, match="unknown class 'cat'"):  # logic.formula.FormulaError
        bad.constraints.with_class_names(class_names(bad))  # as open_dataset binds them


def test_shipped_coco_stage1_config():
    cfg = build_config(config_file=str(REPO / "configs/stage1/coco_box.yaml"))
    assert cfg.data.dataset == "configs/datasets/coco2017.yaml" and (REPO / cfg.data.dataset).is_file()
    assert cfg.data.weak_labels == ["boxes"] and cfg.prompts.mode == "box"
