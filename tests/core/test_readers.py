"""Weak-label readers: the real VOC slice, one hand-made file per format, and every bad-input case."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wsss.core.datasets import voc_dataset
from wsss.core.masks import read_mask
from wsss.core.weak_labels import (
    CorruptImageError,
    InvalidMaskError,
    MalformedAnnotationError,
    MissingFileError,
    SizeMismatchError,
    UnknownClassError,
    WeakLabelWarning,
    parse_voc_xml,
    read_coco_instances,
    read_image,
    read_labelme,
    read_points_json,
    read_scribble_png,
    read_scribblesup_xml,
)

# -- real VOC slice ----------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["train", "val"])
def real_split(request, voc_root):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = voc_dataset(voc_root, split=request.param)
        result = dataset.load_all(errors="raise")
    return request.param, dataset, result.annotations, caught


@pytest.mark.realdata
def test_real_every_id_loads(real_split):
    split, dataset, annotations, _ = real_split
    expected_images, expected_objects = {"train": (334, 1238), "val": (100, 333)}[split]
    assert [a.image_id for a in annotations] == dataset.ids
    assert len(annotations) == expected_images
    assert sum(a.num_objects for a in annotations) == expected_objects
    for a in annotations:
        assert a.gt_path is not None and a.scribbles is not None and len(a.points) > 0
        assert set(np.unique(a.box_classes)) <= set(range(1, 21))


@pytest.mark.realdata
def test_real_boxes_lie_in_image(real_split):
    _, _, annotations, _ = real_split
    for a in annotations:
        b = a.boxes
        assert (b[:, 0] >= 0).all() and (b[:, 1] >= 0).all(), a.image_id
        assert (b[:, 2] <= a.width).all() and (b[:, 3] <= a.height).all(), a.image_id
        assert (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all(), a.image_id


@pytest.mark.realdata
def test_real_scribbles_and_clicks_agree_with_ground_truth(real_split):
    _, _, annotations, _ = real_split
    for a in annotations:
        gt = read_mask(a.gt_path, height=a.height, width=a.width)
        labelled = (a.scribbles != 255) & (gt != 255)
        assert labelled.any(), a.image_id
        assert np.array_equal(a.scribbles[labelled], gt[labelled]), a.image_id
        # Every box's class occurs in the ground truth inside the box.
        for (x0, y0, x1, y1), cls in zip(a.boxes.astype(int), a.box_classes):
            assert (gt[y0:y1, x0:x1] == cls).any(), (a.image_id, cls)
        # Clicks land on valid pixels (border clicks such as x = width are clamped).
        xy = np.round(a.points).astype(int)
        assert ((xy >= 0) & (xy < [a.width, a.height])).all(), a.image_id


@pytest.mark.realdata
def test_real_official_and_approximate_boxes_convert_from_one_based(voc_root):
    xml = parse_voc_xml(voc_root / "Annotations" / "2007_000032.xml")
    # <xmin>135</xmin><ymin>88</ymin><xmax>196</xmax><ymax>119</ymax>: 1-based inclusive.
    np.testing.assert_array_equal(xml.boxes[0], [134, 87, 196, 119])
    assert xml.classes.tolist() == [1, 1, 15, 15]
    assert xml.size == (281, 500)


# -- a tiny hand-made VOC folder ---------------------------------------------------------------------

H, W = 24, 32


def _voc_xml(objects, *, size=(H, W)) -> str:
    objs = "".join(
        f"<object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for name, b in objects
    )
    return (f"<annotation><filename>x.jpg</filename><size><width>{size[1]}</width><height>{size[0]}</height>"
            f"<depth>3</depth></size>{objs}</annotation>")


def _make_voc(root: Path, ids=("a", "b")) -> Path:
    for sub in ("JPEGImages", "Annotations", "SegmentationClass", "ImageSets/Segmentation", "scribbles", "points"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for image_id in ids:
        Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(root / "JPEGImages" / f"{image_id}.jpg")
        (root / "Annotations" / f"{image_id}.xml").write_text(_voc_xml([("dog", (3, 4, 10, 12)), ("person", (1, 1, 32, 24))]))
        gt = np.zeros((H, W), np.uint8)
        gt[3:12, 2:10] = 12
        Image.fromarray(gt).save(root / "SegmentationClass" / f"{image_id}.png")
    (root / "ImageSets/Segmentation/train.txt").write_text("".join(f"{i}\n" for i in ids))
    return root


def test_voc_hand_made_exact(tmp_path):
    root = _make_voc(tmp_path)
    scribbles = np.full((H, W), 255, np.uint8)
    scribbles[5:8, 4:8] = 12
    scribbles[20, :] = 0
    Image.fromarray(scribbles).save(root / "scribbles" / "a.png")
    (root / "points" / "a.json").write_text(json.dumps(
        {"objects": [{"x": 5.2, "y": 6.0, "cls": 12, "rank": 1}], "background": [{"x": 30.0, "y": 2.0, "cls": 0}]}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = voc_dataset(root, split="train")["a"]
    assert (a.height, a.width) == (H, W)
    np.testing.assert_array_equal(a.boxes, [[2, 3, 10, 12], [0, 0, 32, 24]])
    assert a.box_classes.tolist() == [12, 15]
    np.testing.assert_array_equal(a.scribbles, scribbles)
    np.testing.assert_allclose(a.points, [[5.2, 6.0], [30.0, 2.0]])
    assert a.point_classes.tolist() == [12, 0]
    assert a.gt_path == root / "SegmentationClass" / "a.png"
    # Optional files absent for "b": no scribbles, no clicks, not an error.
    b = voc_dataset(root, split="train")["b"]
    assert b.scribbles is None and len(b.points) == 0 and b.num_objects == 2


def test_optional_folders_absent(tmp_path):
    root = _make_voc(tmp_path)
    for sub in ("scribbles", "points", "Annotations"):
        shutil.rmtree(root / sub)
    a = voc_dataset(root, split="train", ids=["a"])[0]
    assert a.num_objects == 0 and a.scribbles is None and len(a.points) == 0


# -- ScribbleSup ---------------------------------------------------------------------------------------

SCRIBBLE_XML = """<annotation><filename>x.jpg</filename><size><width>11</width><height>9</height></size>
<polygon><tag>aeroplane</tag><point><X>2</X><Y>5</Y></point><point><X>8</X><Y>5</Y></point></polygon>
<polygon><tag>background</tag><point><X>3</X><Y>1</Y></point></polygon>
</annotation>"""


def test_scribblesup_xml_exact(tmp_path):
    path = tmp_path / "s.xml"
    path.write_text(SCRIBBLE_XML)
    expected = np.full((9, 11), 255, np.uint8)
    expected[4:7, 1:10] = 1  # (2,5)-(8,5) widened to 3 px: rows 4..6, columns 1..9
    expected[0:3, 2:5] = 0  # single point (3,1): a 3x3 dot
    np.testing.assert_array_equal(read_scribblesup_xml(path), expected)
    np.testing.assert_array_equal(read_scribblesup_xml(path, height=9, width=11), expected)
    with pytest.raises(SizeMismatchError, match="s.xml"):
        read_scribblesup_xml(path, height=10, width=11)


def test_scribblesup_xml_polyline_with_corner(tmp_path):
    path = tmp_path / "c.xml"
    path.write_text("<annotation><polygon><tag>bird</tag><point><X>2</X><Y>2</Y></point>"
                    "<point><X>2</X><Y>7</Y></point><point><X>7</X><Y>7</Y></point></polygon></annotation>")
    out = read_scribblesup_xml(path, height=10, width=10)
    expected = np.full((10, 10), 255, np.uint8)
    expected[1:9, 1:4] = 3
    expected[6:9, 1:9] = 3
    np.testing.assert_array_equal(out, expected)


def test_scribblesup_release_class_names_and_points_outside(tmp_path):
    """The release's own names (bike, table, plant, plane, monitor) are VOC's bicycle, diningtable,
    pottedplant, aeroplane, tvmonitor; a stroke running out of the image is drawn up to its edge, a
    repeated point adds nothing."""
    names = ["plane", "bike", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "table", "dog",
             "horse", "motorbike", "person", "plant", "sheep", "sofa", "train", "monitor"]
    polys = "".join(f"<polygon><tag>{n}</tag><point><X>{2 * i + 1}</X><Y>1</Y></point></polygon>"
                    for i, n in enumerate(names))
    polys += ("<polygon><tag>background</tag><point><X>-4</X><Y>5</Y></point><point><X>3</X><Y>5</Y></point>"
              "<point><X>3</X><Y>5</Y></point></polygon>")
    path = tmp_path / "2007_000032.xml"
    path.write_text(f"<annotation><size><width>41</width><height>8</height></size>{polys}</annotation>")
    out = read_scribblesup_xml(path)
    assert [int(out[1, 2 * i + 1]) for i in range(20)] == list(range(1, 21))  # the dots, in VOC order
    expected_bg = np.zeros((8, 41), bool)
    expected_bg[4:7, 0:5] = True  # (-4,5)-(3,5) clipped at column 0, 3 px wide
    np.testing.assert_array_equal(out == 0, expected_bg)


def test_scribble_png_exact_and_bad(tmp_path):
    labels = np.full((6, 7), 255, np.uint8)
    labels[1, 1:4] = 5
    labels[4, :] = 0
    img = Image.fromarray(labels).convert("P")
    img.putpalette(list(range(256)) * 3)
    img.save(tmp_path / "ok.png")
    np.testing.assert_array_equal(read_scribble_png(tmp_path / "ok.png", height=6, width=7), labels)
    with pytest.raises(SizeMismatchError, match="ok.png"):
        read_scribble_png(tmp_path / "ok.png", height=7, width=7)
    labels[0, 0] = 21
    Image.fromarray(labels).save(tmp_path / "bad.png")
    with pytest.raises(InvalidMaskError, match=r"bad\.png.*21"):
        read_scribble_png(tmp_path / "bad.png")


# -- points --------------------------------------------------------------------------------------------


def test_points_json_exact(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"objects": [{"y": 3.5, "x": 1.25, "rank": 2, "cls": 7}],
                                "background": [{"x": 0.0, "y": 9.0, "cls": 0}]}))
    clicks = read_points_json(path)
    np.testing.assert_allclose(clicks.points, [[1.25, 3.5], [0.0, 9.0]])
    assert clicks.classes.tolist() == [7, 0] and clicks.ranks.tolist() == [2, 0]
    path.write_text(json.dumps({"objects": [{"x": 1, "y": 1, "cls": 33}]}))
    with pytest.raises(UnknownClassError, match="p.json"):
        read_points_json(path)
    path.write_text("{not json")
    with pytest.raises(MalformedAnnotationError, match="p.json"):
        read_points_json(path)


# -- COCO ----------------------------------------------------------------------------------------------


def test_coco_instances_exact(tmp_path):
    coco = {
        "images": [{"id": 7, "file_name": "img7.jpg", "height": 50, "width": 60},
                   {"id": 8, "file_name": "img8.jpg", "height": 40, "width": 40}],
        "categories": [{"id": 1, "name": "person"}, {"id": 5, "name": "airplane"}, {"id": 25, "name": "giraffe"},
                       {"id": 63, "name": "couch"}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 5, "bbox": [10.0, 20.0, 30.0, 15.5], "iscrowd": 0},
            {"id": 2, "image_id": 7, "category_id": 25, "bbox": [0, 0, 5, 5], "iscrowd": 0},  # ignored class
            {"id": 3, "image_id": 7, "category_id": 1, "bbox": [1, 1, 8, 8], "iscrowd": 1},  # crowd: ignored
            {"id": 4, "image_id": 8, "category_id": 63, "bbox": [2, 3, 4, 5], "iscrowd": 0},
        ],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(coco))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = read_coco_instances(path, image_dir=tmp_path / "imgs")
    assert [a.image_id for a in out] == ["img7", "img8"]
    assert out[0].image_path == tmp_path / "imgs" / "img7.jpg"
    np.testing.assert_allclose(out[0].boxes, [[10.0, 20.0, 40.0, 35.5]])
    assert out[0].box_classes.tolist() == [1]
    np.testing.assert_allclose(out[1].boxes, [[2, 3, 6, 8]])
    assert out[1].box_classes.tolist() == [18]  # couch -> sofa
    assert len(read_coco_instances(path, include_crowd=True)[0].boxes) == 2


def test_coco_bad_inputs(tmp_path):
    path = tmp_path / "c.json"
    base = {"images": [{"id": 1, "file_name": "i.jpg", "height": 10, "width": 10}],
            "categories": [{"id": 1, "name": "dog"}]}
    path.write_text(json.dumps({**base, "annotations": [{"image_id": 2, "category_id": 1, "bbox": [0, 0, 1, 1]}]}))
    with pytest.raises(MalformedAnnotationError, match=r"c\.json.*unknown image id 2"):
        read_coco_instances(path)
    anns = [{"image_id": 1, "category_id": 1, "bbox": [5, 5, 20, 2]},  # clipped
            {"image_id": 1, "category_id": 1, "bbox": [-3, 8, 5, 5]},  # clipped
            {"image_id": 1, "category_id": 1, "bbox": [-4, -4, 2, 2]}]  # empty after clipping
    path.write_text(json.dumps({**base, "annotations": anns}))
    with pytest.warns(WeakLabelWarning) as record:
        out = read_coco_instances(path)
    messages = [str(w.message) for w in record]
    assert len(messages) == 2, messages  # one per file and repair kind
    assert "c.json [i.jpg]: 2 box(es) extend outside the 10x10 image and were clipped" in messages[0]
    assert "c.json [i.jpg]: 1 box(es) are empty after clipping" in messages[1]
    np.testing.assert_allclose(out[0].boxes, [[5, 5, 10, 7], [0, 8, 2, 10]])


# -- LabelMe -------------------------------------------------------------------------------------------


def test_labelme_exact(tmp_path):
    data = {
        "version": "5.4.1", "flags": {}, "imagePath": "pic.jpg", "imageData": None, "imageHeight": 20, "imageWidth": 30,
        "shapes": [
            {"label": "cat", "points": [[15, 12], [5, 6]], "shape_type": "rectangle", "group_id": None, "flags": {}},
            {"label": "person", "points": [[2, 2], [2, 8]], "shape_type": "line", "flags": {}},
            {"label": "background", "points": [[10, 18], [20, 18], [20, 16]], "shape_type": "linestrip", "flags": {}},
            {"label": "person", "points": [[3.0, 4.0]], "shape_type": "point", "flags": {}},
            {"label": "background", "points": [[29.0, 0.0]], "shape_type": "point", "flags": {}},
            {"label": "cat", "points": [[1, 1], [5, 1], [5, 5]], "shape_type": "polygon", "flags": {}},
        ],
    }
    path = tmp_path / "pic.json"
    path.write_text(json.dumps(data))
    with pytest.warns(WeakLabelWarning, match=r"pic\.json.*polygon.*ignored") as record:
        a = read_labelme(path)
    assert len(record) == 1
    assert a.image_id == "pic" and a.image_path == tmp_path / "pic.jpg" and (a.height, a.width) == (20, 30)
    np.testing.assert_allclose(a.boxes, [[5, 6, 16, 13]])  # corner pixels (5,6) and (15,12) inside
    assert a.box_classes.tolist() == [8]
    np.testing.assert_allclose(a.points, [[3, 4], [29, 0]])
    assert a.point_classes.tolist() == [15, 0]
    expected = np.full((20, 30), 255, np.uint8)
    expected[1:10, 1:4] = 15  # line (2,2)-(2,8), 3 px wide
    expected[17:20, 9:22] = 0  # linestrip (10,18)-(20,18)
    expected[15:20, 19:22] = 0  # ... then up to (20,16)
    np.testing.assert_array_equal(a.scribbles, expected)


def test_labelme_clipping_and_bad_label(tmp_path):
    path = tmp_path / "r.json"
    shapes = [{"label": "dog", "points": [[35, 12], [5, 6]], "shape_type": "rectangle"},
              {"label": "dog", "points": [[40.0, 3.0]], "shape_type": "point"}]
    path.write_text(json.dumps({"shapes": shapes, "imagePath": "r.jpg", "imageHeight": 20, "imageWidth": 30}))
    with pytest.warns(WeakLabelWarning) as record:
        a = read_labelme(path)
    assert [str(w.message).split(": ", 1)[0] for w in record] == [str(path)] * 2
    np.testing.assert_allclose(a.boxes, [[5, 6, 30, 13]])
    assert a.box_classes.tolist() == [12] and a.scribbles is None and len(a.points) == 0
    shapes[0]["label"] = "unicorn"
    path.write_text(json.dumps({"shapes": shapes, "imagePath": "r.jpg", "imageHeight": 20, "imageWidth": 30}))
    with pytest.raises(UnknownClassError, match=r"r\.json.*unicorn"):
        read_labelme(path)


# -- bad input through the VOC reader, and batches that go on ------------------------------------------


def test_missing_image(tmp_path):
    root = _make_voc(tmp_path)
    (root / "JPEGImages" / "a.jpg").unlink()
    with pytest.raises(MissingFileError, match=r"a\.jpg"):
        voc_dataset(root)["a"]


def test_corrupt_jpeg(tmp_path):
    root = _make_voc(tmp_path)
    data = (root / "JPEGImages" / "a.jpg").read_bytes()
    (root / "JPEGImages" / "a.jpg").write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(CorruptImageError, match=r"a\.jpg"):
        voc_dataset(root)["a"]
    (root / "JPEGImages" / "b.jpg").write_bytes(b"this is not a jpeg")
    with pytest.raises(CorruptImageError, match=r"b\.jpg"):
        read_image(root / "JPEGImages" / "b.jpg")


def test_malformed_xml(tmp_path):
    root = _make_voc(tmp_path)
    (root / "Annotations" / "a.xml").write_text("<annotation><object><name>dog</name>")
    with pytest.raises(MalformedAnnotationError, match=r"a\.xml.*malformed XML"):
        voc_dataset(root)["a"]
    (root / "Annotations" / "a.xml").write_text("<annotation><object><name>dog</name><bndbox><xmin>x</xmin>"
                                                "</bndbox></object></annotation>")
    with pytest.raises(MalformedAnnotationError, match=r"a\.xml.*xmin"):
        voc_dataset(root)["a"]


def test_unknown_class_name(tmp_path):
    root = _make_voc(tmp_path)
    (root / "Annotations" / "a.xml").write_text(_voc_xml([("dragon", (1, 1, 5, 5))]))
    with pytest.raises(UnknownClassError, match=r"a\.xml.*'dragon'"):
        voc_dataset(root)["a"]
    # Aliases of annotation tools are accepted.
    (root / "Annotations" / "a.xml").write_text(_voc_xml([("TV", (1, 1, 5, 5)), ("motorcycle", (1, 1, 5, 5))]))
    assert voc_dataset(root)["a"].box_classes.tolist() == [20, 14]


def test_box_outside_image_clipped_with_one_warning(tmp_path):
    root = _make_voc(tmp_path)
    (root / "Annotations" / "a.xml").write_text(_voc_xml([("dog", (-5, 2, 10, 30)), ("cat", (20, 0, 40, 10)),
                                                          ("cow", (2, 2, 4, 4))]))
    with pytest.warns(WeakLabelWarning, match=r"a\.xml: 2 box\(es\) extend outside") as record:
        a = voc_dataset(root)["a"]
    assert len([w for w in record if issubclass(w.category, WeakLabelWarning)]) == 1
    np.testing.assert_array_equal(a.boxes, [[0, 1, 10, H], [19, 0, W, 10], [1, 1, 4, 4]])


def test_box_empty_after_clipping_is_skipped(tmp_path):
    root = _make_voc(tmp_path)
    (root / "Annotations" / "a.xml").write_text(_voc_xml([("dog", (40, 2, 50, 10)), ("cat", (2, 2, 8, 8))]))
    with pytest.warns(WeakLabelWarning, match=r"a\.xml: 1 box\(es\) are empty after clipping"):
        a = voc_dataset(root)["a"]
    assert a.box_classes.tolist() == [8]


def test_scribble_size_mismatch(tmp_path):
    root = _make_voc(tmp_path)
    Image.fromarray(np.full((H + 1, W), 255, np.uint8)).save(root / "scribbles" / "a.png")
    with pytest.raises(SizeMismatchError, match=r"scribbles/a\.png.*32x25 \(WxH\).*32x24"):
        voc_dataset(root)["a"]


def test_mask_values_out_of_range(tmp_path):
    root = _make_voc(tmp_path)
    gt = np.zeros((H, W), np.uint8)
    gt[0, 0] = 77
    Image.fromarray(gt).save(root / "SegmentationClass" / "a.png")
    with pytest.raises(InvalidMaskError, match=r"SegmentationClass/a\.png.*77"):
        read_mask(root / "SegmentationClass" / "a.png")
    scribbles = np.full((H, W), 255, np.uint8)
    scribbles[2, 2] = 40
    Image.fromarray(scribbles).save(root / "scribbles" / "a.png")
    with pytest.raises(InvalidMaskError, match=r"scribbles/a\.png.*40"):
        voc_dataset(root)["a"]


def test_batch_skips_bad_files_and_reports_them(tmp_path):
    root = _make_voc(tmp_path, ids=("a", "b", "c", "d"))
    (root / "JPEGImages" / "a.jpg").unlink()
    (root / "Annotations" / "c.xml").write_text("<annotation")
    dataset = voc_dataset(root)
    with pytest.raises(MissingFileError):
        dataset.load_all(errors="raise")
    result = dataset.load_all(errors="skip")
    assert [a.image_id for a in result.annotations] == ["b", "d"]
    assert [(p.image_id, p.kind) for p in result.problems] == [("a", "MissingFileError"),
                                                              ("c", "MalformedAnnotationError")]
    assert result.problems[0].path == root / "JPEGImages" / "a.jpg"
    report = result.report()
    assert "loaded 2 image(s), skipped 2" in report and "a.jpg" in report and "c.xml" in report
    problems = []
    assert [a.image_id for a in dataset.iter_valid(problems)] == ["b", "d"] and len(problems) == 2
