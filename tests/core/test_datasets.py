"""Dataset descriptions (wsss.core.datasets), image orientation and modes, and the bad-input policy."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from wsss.core.datasets import DatasetDescriptionError, DescribedDataset, load_description, voc_dataset, voc_split_list
from wsss.core.weak_labels.classes import VOC_CLASSES, voc_palette
from wsss.core.weak_labels.errors import (
    MalformedAnnotationError,
    MissingFileError,
    SizeMismatchError,
    UnknownClassError,
    WeakLabelWarning,
)
from wsss.core.weak_labels.images import choose_orientation, image_size, read_image

REPO = Path(__file__).resolve().parents[2]
EXIF_ORIENTATION = 0x0112


def write_yaml(path: Path, values: dict) -> Path:
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def save_with_orientation(path: Path, stored: np.ndarray, orientation: int) -> None:
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    Image.fromarray(np.ascontiguousarray(stored)).save(path, exif=exif)


# -- orientation ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("orientation, stored_from_upright", [
    (1, lambda a: a),
    (2, lambda a: a[:, ::-1]),
    (3, lambda a: a[::-1, ::-1]),
    (4, lambda a: a[::-1]),
    (5, lambda a: a.transpose(1, 0, 2)),
    (6, lambda a: np.rot90(a, 1)),
    (7, lambda a: a[::-1, ::-1].transpose(1, 0, 2)),
    (8, lambda a: np.rot90(a, -1)),
])
def test_exif_orientation_shows_the_upright_view(tmp_path, orientation, stored_from_upright):
    """EXIF 1..8 as defined by the standard: the stored pixels are the upright view transformed; the
    reader returns the upright view (as viewers show it), or the stored pixels on request."""
    upright = rgb(5, 8)
    stored = stored_from_upright(upright)
    path = tmp_path / f"o{orientation}.png"
    save_with_orientation(path, stored, orientation)
    np.testing.assert_array_equal(read_image(path), upright)
    np.testing.assert_array_equal(read_image(path, orientation="stored"), stored)
    assert image_size(path) == (5, 8)
    assert image_size(path, orientation="stored") == stored.shape[:2]


def test_choose_orientation(tmp_path):
    path = tmp_path / "r.png"
    save_with_orientation(path, rgb(8, 5), 6)  # shown 5 high, 8 wide
    assert choose_orientation(path, height=8, width=5) == "stored"  # COCO: stored first
    assert choose_orientation(path, height=5, width=8) == "exif"
    assert choose_orientation(path, height=8, width=5, prefer=("exif", "stored")) == "stored"
    with pytest.raises(SizeMismatchError, match=r"r\.png.*7x7.*no orientation matches"):
        choose_orientation(path, height=7, width=7)


@pytest.mark.parametrize("mode", ["L", "CMYK", "P", "RGBA", "LA", "I;16", "1"])
def test_any_image_mode_reads_as_rgb(tmp_path, mode):
    base = rgb(6, 7)
    if mode == "I;16":
        grey16 = (np.arange(42, dtype=np.uint16).reshape(6, 7) * 1500)
        img = Image.fromarray(grey16)
        expected = np.repeat((grey16 >> 8).astype(np.uint8)[..., None], 3, axis=2)
    else:
        img = Image.fromarray(base).convert(mode)
        expected = np.asarray(img.convert("RGB"))
    path = tmp_path / ("im.tif" if mode == "CMYK" else f"im_{mode.replace(';', '_')}.png")
    img.save(path)
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == (6, 7, 3)
    np.testing.assert_array_equal(out, expected)


# -- descriptions ----------------------------------------------------------------------------------------
def test_shipped_descriptions_parse(tmp_path):
    for name in ("voc2012", "coco2017", "labelme_example"):
        values = yaml.safe_load((REPO / "configs" / "datasets" / f"{name}.yaml").read_text())
        values["root"] = str(tmp_path)  # the data is not here; the file itself must be valid
        desc = load_description(write_yaml(tmp_path / f"{name}.yaml", values))
        assert desc.sources
    voc = load_description(REPO / "configs/datasets/voc2012.yaml", overrides={"root": str(tmp_path)})
    assert voc.classes == VOC_CLASSES and set(voc.splits) == {"train", "val", "trainval", "trainaug", "train_aug", "test"}
    assert voc.ground_truth.fallback == tmp_path / "SegmentationClassAug"  # SBD's masks of train_aug
    with pytest.raises(DatasetDescriptionError, match=r"voc2012\.yaml: images folder .*JPEGImages not found"):
        DescribedDataset(voc)


def test_description_base_and_errors(tmp_path):
    base = write_yaml(tmp_path / "base.yaml", {"root": str(tmp_path), "classes": ["background", "a", "b"],
                                               "sources": [{"format": "voc_xml", "path": "xml"}]})
    child = write_yaml(tmp_path / "child.yaml", {"_base_": "base.yaml", "colours": {"b": [1, 2, 3]}})
    desc = load_description(child)
    assert desc.classes == ("background", "a", "b") and desc.images == tmp_path / "JPEGImages"
    palette = desc.palette()
    assert palette[2].tolist() == [1, 2, 3] and palette[1].tolist() == voc_palette()[1].tolist()
    assert desc.path == child and base.is_file()
    bad = {
        "typo": ({"clases": ["background", "a"]}, "unknown key.*clases"),
        "dupe": ({"classes": ["background", "a", "A"]}, "repeated"),
        "too many": ({"classes": ["background"] + [f"c{i}" for i in range(255)]}, "at most 254"),
        "format": ({"sources": [{"format": "yolo", "path": "x"}]}, "yolo.*not one of"),
        "colour": ({"colours": {"zebra": [0, 0, 0]}}, "zebra.*not a class"),
        "policy": ({"unknown_classes": "drop"}, "unknown_classes"),
    }
    for name, (change, message) in bad.items():
        path = write_yaml(tmp_path / f"bad_{name.replace(' ', '_')}.yaml", {"_base_": "base.yaml", **change})
        with pytest.raises(DatasetDescriptionError, match=message):
            load_description(path)
    ok254 = write_yaml(tmp_path / "ok254.yaml", {"_base_": "base.yaml",
                                                 "classes": ["background"] + [f"c{i}" for i in range(254)]})
    assert load_description(ok254).num_foreground == 254


# -- COCO -----------------------------------------------------------------------------------------------
def coco_dataset(tmp_path: Path, images, annotations, categories, **desc) -> Path:
    (tmp_path / "img").mkdir(exist_ok=True)
    doc = {"images": images, "annotations": annotations, "categories": categories}
    (tmp_path / "instances.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    values = {"root": str(tmp_path), "images": "img", "classes": {"from": "coco"},
              "sources": [{"format": "coco", "path": "instances.json"}],
              "ground_truth": {"format": "coco", "path": "instances.json"}, **desc}
    return write_yaml(tmp_path / "coco.yaml", values)


def test_coco_dataset_and_bad_inputs(tmp_path):
    """Every per-image problem names the file and leaves the other images usable."""
    (tmp_path / "img").mkdir()
    for name in ("ok", "dupe", "badcat", "poly", "émoji_ß"):
        Image.fromarray(rgb(20, 30)).save(tmp_path / "img" / f"{name}.jpg")
    Image.fromarray(rgb(20, 30)).convert("L").save(tmp_path / "img" / "grey.png")
    images = [
        {"id": 1, "file_name": "ok.jpg", "height": 20, "width": 30},
        {"id": 2, "file_name": "dupe.jpg", "height": 20, "width": 30},
        {"id": 3, "file_name": "dupe.jpg", "height": 20, "width": 30},
        {"id": 4, "file_name": "badcat.jpg", "height": 20, "width": 30},
        {"id": 5, "file_name": "poly.jpg", "height": 20, "width": 30},
        {"id": 6, "file_name": "missing.jpg", "height": 20, "width": 30},
        {"id": 7, "file_name": "émoji_ß.jpg", "height": 20, "width": 30},
        {"id": 8, "file_name": "grey.png", "height": 20, "width": 30},
    ]
    square = [[2, 3, 12, 3, 12, 9, 2, 9]]
    annotations = [
        {"id": 1, "image_id": 1, "category_id": 7, "bbox": [2, 3, 10, 6], "segmentation": square, "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 9, "bbox": [20, 10, 5, 5], "iscrowd": 0},
        {"id": 3, "image_id": 2, "category_id": 7, "bbox": [1, 1, 3, 3]},
        {"id": 4, "image_id": 4, "category_id": 99, "bbox": [1, 1, 3, 3]},
        {"id": 5, "image_id": 5, "category_id": 9, "segmentation": square},
        {"id": 6, "image_id": 6, "category_id": 7, "bbox": [1, 1, 3, 3]},
        {"id": 7, "image_id": 7, "category_id": 7, "bbox": [1, 1, 3, 3]},
        {"id": 8, "image_id": 8, "category_id": 9, "bbox": [0, 0, 40, 5]},
        {"id": 9, "image_id": 77, "category_id": 9, "bbox": [0, 0, 4, 5]},
    ]
    categories = [{"id": 9, "name": "zebra"}, {"id": 7, "name": "tv"}]  # id order, COCO's own names
    path = coco_dataset(tmp_path, images, annotations, categories)
    with pytest.warns(WeakLabelWarning) as record:
        ds = DescribedDataset(path)
    messages = [str(r.message) for r in record]
    assert any("instances.json" in m and "1 annotation(s) refer to image ids not in images" in m for m in messages)
    assert any("segmentation but no bbox" in m for m in messages)
    assert ds.classes == ("background", "tv", "zebra")  # category-id order; "tv" is not aliased away
    assert ds.ids == sorted(["ok", "dupe", "badcat", "poly", "missing", "émoji_ß", "grey"])

    ok = ds.load("ok")
    np.testing.assert_array_equal(ok.boxes, [[2, 3, 12, 9], [20, 10, 25, 15]])
    assert ok.box_classes.tolist() == [1, 2] and ok.orientation == "stored"
    gt = ds.read_gt("ok")
    assert gt.shape == (20, 30) and set(np.unique(gt).tolist()) == {0, 1}
    assert gt[3:9, 2:12].all() and gt.sum() == 60  # the 10 x 6 polygon
    np.testing.assert_array_equal(ds.load("poly").boxes, [[2, 3, 12, 9]])  # derived from the polygon
    assert ds.load("émoji_ß").image_path.name == "émoji_ß.jpg"
    with pytest.warns(WeakLabelWarning, match="clipped"):
        assert ds.load("grey").read_image().shape == (20, 30, 3)
    for image_id, error, message in [
        ("dupe", MalformedAnnotationError, r"instances\.json.*dupe\.jpg.*listed by two images entries"),
        ("badcat", MalformedAnnotationError, r"instances\.json.*category id 99"),
        ("missing", MissingFileError, r"missing\.jpg.*not found"),
    ]:
        with pytest.raises(error, match=message):
            ds.load(image_id)
    problems = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WeakLabelWarning)
        loaded = [a.image_id for a in ds.iter_valid(problems)]
    assert sorted(loaded) == sorted(["ok", "poly", "émoji_ß", "grey"])
    assert sorted(p.image_id for p in problems) == ["badcat", "dupe", "missing"]

    # a class list that misses a category: an error naming the file and the valid names, or ignored
    strict = coco_dataset(tmp_path, images, annotations, categories, classes=["background", "tv"])
    with pytest.raises(UnknownClassError, match=r"instances\.json.*'zebra'.*valid classes: tv"):
        DescribedDataset(strict)
    lenient = coco_dataset(tmp_path, images, annotations, categories, classes=["background", "tv"],
                           unknown_classes="ignore", polygon_only="error")
    with pytest.warns(WeakLabelWarning, match="'zebra' are not classes"):
        ds = DescribedDataset(lenient)
    assert ds.load("ok").box_classes.tolist() == [1]
    refuse = coco_dataset(tmp_path, images, annotations, categories, polygon_only="error")
    with pytest.raises(MalformedAnnotationError, match=r"instances\.json.*poly\.jpg.*no bbox"):
        DescribedDataset(refuse).load("poly")


def test_coco_orientation_and_empty_file(tmp_path):
    (tmp_path / "img").mkdir()
    save_with_orientation(tmp_path / "img" / "a.png", rgb(8, 5), 6)  # stored 8x5 (HxW), shown 5x8
    save_with_orientation(tmp_path / "img" / "b.png", rgb(8, 5), 6)
    save_with_orientation(tmp_path / "img" / "c.png", rgb(8, 5), 6)
    images = [{"id": 1, "file_name": "a.png", "height": 8, "width": 5},
              {"id": 2, "file_name": "b.png", "height": 5, "width": 8},
              {"id": 3, "file_name": "c.png", "height": 6, "width": 6}]
    path = coco_dataset(tmp_path, images, [], [{"id": 1, "name": "x"}])
    ds = DescribedDataset(path)
    assert ds.load("a").orientation == "stored" and ds.load("a").read_image().shape == (8, 5, 3)
    assert ds.load("b").orientation == "exif" and ds.load("b").read_image().shape == (5, 8, 3)
    with pytest.raises(SizeMismatchError, match=r"c\.png.*no orientation matches"):
        ds.load("c")
    (tmp_path / "instances.json").write_text("")
    with pytest.raises(MalformedAnnotationError, match=r"instances\.json: malformed JSON"):
        DescribedDataset(path)


# -- LabelMe and VOC-style folders -----------------------------------------------------------------------
def labelme_file(path: Path, image: str, h: int, w: int, shapes) -> None:
    path.write_text(json.dumps({"version": "5.4.1", "imagePath": image, "imageHeight": h, "imageWidth": w,
                                "imageData": None, "flags": {}, "shapes": shapes}, ensure_ascii=False),
                    encoding="utf-8")


def test_labelme_folder(tmp_path):
    Image.fromarray(rgb(10, 12)).save(tmp_path / "chat_été.jpg")
    Image.fromarray(rgb(10, 12)).save(tmp_path / "b.jpg")
    labelme_file(tmp_path / "chat_été.json", "chat_été.jpg", 10, 12, [
        {"label": "dog", "points": [[1, 1], [4, 5]], "shape_type": "rectangle"},
        {"label": "cat", "points": [[6, 6], [9, 6]], "shape_type": "line"},
        {"label": "background", "points": [[0, 9]], "shape_type": "point"},
        {"label": "dog", "points": [[1, 1], [5, 1], [5, 6], [1, 6]], "shape_type": "polygon"},
    ])
    (tmp_path / "b.json").write_text("")  # an empty annotation file
    desc = write_yaml(tmp_path / "d.yaml", {"root": str(tmp_path), "images": ".", "classes": {"from": "labelme"},
                                            "sources": [{"format": "labelme", "path": "."}],
                                            "ground_truth": {"format": "labelme", "path": "."}})
    with pytest.warns(WeakLabelWarning, match=r"b\.json: malformed JSON.*left out of the class list"):
        ds = DescribedDataset(desc)  # the class list is read from the files; b is reported when loaded
    assert ds.classes == ("background", "cat", "dog") and ds.ids == ["b", "chat_été"]
    with pytest.raises(MalformedAnnotationError, match=r"b\.json: malformed JSON"):
        ds.load("b")
    (tmp_path / "b.json").unlink()
    ds = DescribedDataset(desc)
    assert ds.ids == ["chat_été"]
    with pytest.warns(WeakLabelWarning, match="polygon"):
        a = ds.load("chat_été")
    np.testing.assert_array_equal(a.boxes, [[1, 1, 5, 6]])
    assert a.box_classes.tolist() == [2] and a.point_classes.tolist() == [0]
    assert set(np.unique(a.scribbles).tolist()) == {1, 255}
    gt = ds.read_gt("chat_été")
    assert gt[1:7, 1:6].tolist() == np.full((6, 5), 2).tolist() and gt.sum() == 2 * 30

    (tmp_path / "b.json").write_text("")
    fixed = write_yaml(tmp_path / "fixed.yaml", {"root": str(tmp_path), "images": ".", "classes": ["background", "cat"],
                                                 "unknown_classes": "ignore",
                                                 "sources": [{"format": "labelme", "path": "."}]})
    ds = DescribedDataset(fixed)
    with pytest.warns(WeakLabelWarning, match="'dog' are not classes"):
        assert ds.load("chat_été").num_objects == 0
    with pytest.raises(MalformedAnnotationError, match=r"b\.json: malformed JSON"):
        ds.load("b")
    strict = write_yaml(tmp_path / "strict.yaml", {"root": str(tmp_path), "images": ".", "classes": ["background", "cat"],
                                                   "sources": [{"format": "labelme", "path": "."}]})
    with pytest.raises(UnknownClassError, match=r"chat_été\.json.*'dog'.*valid classes: cat"):
        DescribedDataset(strict).load("chat_été")


def test_voc_dataset_reads_the_voc_files(voc_root):
    """``--data DIR`` (the VOC description with its root at DIR) gives what VOC's files say, read here
    with the standard library: the split's id list, each XML's boxes (1-based inclusive corners ->
    half-open pixel edges), the ground-truth PNG and the image size."""
    import xml.etree.ElementTree as ET

    ds = voc_dataset(voc_root, split="val")
    listed = (voc_root / "ImageSets/Segmentation/val.txt").read_text().split()
    assert ds.ids == listed and ds.classes == VOC_CLASSES
    for image_id in ds.ids[:12]:
        a = ds.load(image_id)
        objects = ET.parse(voc_root / "Annotations" / f"{image_id}.xml").getroot().findall("object")
        boxes = [[float(o.find(f"bndbox/{k}").text) for k in ("xmin", "ymin", "xmax", "ymax")] for o in objects]
        np.testing.assert_array_equal(a.boxes, [[x0 - 1, y0 - 1, x1, y1] for x0, y0, x1, y1 in boxes])
        assert a.box_classes.tolist() == [VOC_CLASSES.index(o.find("name").text.strip()) for o in objects]
        assert (a.width, a.height) == Image.open(voc_root / "JPEGImages" / f"{image_id}.jpg").size
        np.testing.assert_array_equal(ds.read_gt(image_id),
                                      np.asarray(Image.open(voc_root / "SegmentationClass" / f"{image_id}.png")))
    with pytest.raises(DatasetDescriptionError, match="split 'nope' is not one of"):
        voc_dataset(voc_root, split="nope")


def test_voc_description_split_alternatives_and_instances(tmp_path):
    """train_aug is whichever of trainaug.txt (wsss-voc-data) and DeepLab's two-column train_aug.txt
    exists; the instance PNGs are SegmentationObject's, else SBD's SegmentationObjectAug."""
    root = tmp_path / "VOC2012"
    for sub in ("JPEGImages", "ImageSets/Segmentation", "SegmentationObject", "SegmentationObjectAug"):
        (root / sub).mkdir(parents=True)
    (root / "ImageSets/Segmentation/train_aug.txt").write_text("/JPEGImages/a.jpg /SegmentationClassAug/a.png\n"
                                                               "/JPEGImages/b.jpg /SegmentationClassAug/b.png\n")
    for image_id, folder in (("a", "SegmentationObject"), ("b", "SegmentationObjectAug")):
        Image.fromarray(rgb(4, 5)).save(root / "JPEGImages" / f"{image_id}.jpg")
        Image.fromarray(np.ones((4, 5), np.uint8)).save(root / folder / f"{image_id}.png")
    for split in ("train_aug", "trainaug"):
        assert voc_dataset(root, split=split).ids == ["a", "b"]
    ds = voc_dataset(root, split="train_aug")
    assert [ds.instance_path(i) for i in ds.ids] == [root / "SegmentationObject/a.png",
                                                     root / "SegmentationObjectAug/b.png"]
    (root / "ImageSets/Segmentation/trainaug.txt").write_text("b\n")  # wsss-voc-data's list comes first
    assert voc_dataset(root, split="train_aug").ids == ["b"]
    with pytest.raises(MissingFileError, match=r"test\.txt.*wsss-voc-data --voc-test"):
        voc_split_list(root, "test")


def test_read_image_is_writable(tmp_path):
    Image.fromarray(rgb(4, 5)).save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    out[0, 0] = 0  # callers (the dense CRF, augmentations) write into it
    assert out.flags.c_contiguous and out.flags.writeable


def test_voc_style_folders_default_ids_and_unknown_names(tmp_path):
    """Without splits the ids are the images that have annotations in some source; an XML name outside
    the class list is an error naming the file and the valid names, or ignored with one warning."""
    (tmp_path / "img").mkdir()
    (tmp_path / "xml").mkdir()
    (tmp_path / "clicks").mkdir()
    for name in ("a", "b", "c"):
        Image.fromarray(rgb(10, 12)).save(tmp_path / "img" / f"{name}.png")
    objects = "".join(f"<object><name>{n}</name><bndbox><xmin>2</xmin><ymin>3</ymin><xmax>6</xmax><ymax>8</ymax>"
                      "</bndbox></object>" for n in ("dog", "zebra"))
    (tmp_path / "xml" / "a.xml").write_text(f"<annotation>{objects}</annotation>")
    (tmp_path / "clicks" / "b.json").write_text(json.dumps({"objects": [{"x": 3, "y": 4, "cls": 1}]}))
    (tmp_path / "strokes").mkdir()
    (tmp_path / "strokes" / "b.xml").write_text(
        "<annotation><polygon><tag>dog</tag><point><X>1</X><Y>1</Y></point><point><X>5</X><Y>1</Y></point></polygon>"
        "<polygon><tag>yak</tag><point><X>1</X><Y>6</Y></point></polygon></annotation>")
    values = {"root": str(tmp_path), "images": "img", "classes": ["background", "dog"],
              "sources": [{"format": "voc_xml", "path": "xml"}, {"format": "points", "path": "clicks"},
                          {"format": "scribblesup", "path": "strokes"}]}
    ds = DescribedDataset(write_yaml(tmp_path / "d.yaml", values))
    assert ds.ids == ["a", "b"]  # c has no annotation
    with pytest.raises(UnknownClassError, match=r"b\.xml.*'yak'"):
        ds.load("b")
    lenient = DescribedDataset(write_yaml(tmp_path / "l.yaml", {**values, "unknown_classes": "ignore"}))
    with pytest.warns(WeakLabelWarning, match=r"b\.xml.*'yak'.*ignored"):
        b = lenient.load("b")
    assert set(np.unique(b.scribbles).tolist()) == {1, 255}
    assert b.image_path == tmp_path / "img" / "b.png" and b.points.tolist() == [[3, 4]] and b.num_objects == 0
    with pytest.raises(UnknownClassError, match=r"a\.xml.*'zebra'.*valid classes: dog"):
        ds.load("a")
    with pytest.warns(WeakLabelWarning, match=r"a\.xml.*'zebra'.*ignored") as record:
        a = lenient.load("a")
    assert len(record) == 1
    np.testing.assert_array_equal(a.boxes, [[1, 2, 6, 8]])
    assert a.box_classes.tolist() == [1]


def test_many_classes_get_distinct_colours(tmp_path):
    """A 254-class list: every label value has its own colour, masks with values above 20 round-trip."""
    from wsss.core.masks import read_mask, write_mask

    values = {"root": str(tmp_path), "classes": ["background"] + [f"c{i}" for i in range(254)],
              "colours": {"c0": [1, 2, 3]}, "sources": [{"format": "voc_xml", "path": "xml"}]}
    desc = load_description(write_yaml(tmp_path / "d.yaml", values))
    palette = desc.palette()
    assert len({tuple(c) for c in palette[:255].tolist()}) == 255 and palette[1].tolist() == [1, 2, 3]
    mask = np.arange(255, dtype=np.uint8).reshape(15, 17)
    write_mask(tmp_path / "m.png", mask, num_foreground=254, palette=palette)
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png", num_foreground=254), mask)
    with Image.open(tmp_path / "m.png") as im:
        assert np.asarray(im.getpalette(), np.uint8).reshape(-1, 3)[1].tolist() == [1, 2, 3]


def test_two_labelme_files_for_one_image(tmp_path):
    Image.fromarray(rgb(10, 12)).save(tmp_path / "p.jpg")
    Image.fromarray(rgb(10, 12)).save(tmp_path / "q.jpg")
    box = [{"label": "cat", "points": [[1, 1], [4, 5]], "shape_type": "rectangle"}]
    labelme_file(tmp_path / "p.json", "p.jpg", 10, 12, box)
    labelme_file(tmp_path / "p_copy.json", "p.jpg", 10, 12, box)
    labelme_file(tmp_path / "q.json", "q.jpg", 10, 12, box)
    ds = DescribedDataset(write_yaml(tmp_path / "d.yaml", {
        "root": str(tmp_path), "images": ".", "classes": ["background", "cat"],
        "sources": [{"format": "labelme", "path": "."}]}))
    for image_id in ("p", "p_copy"):
        with pytest.raises(MalformedAnnotationError, match=r"p(_copy)?\.json.*annotate the same image .*p\.jpg"):
            ds.load(image_id)
    assert ds.load("q").num_objects == 1
