"""wsss-voc-data: the VOC layout of the papers' protocol from files in the official formats.

Every input is written here as its release ships it: a VOC trainval tar (``VOCdevkit/VOC2012/...``),
SBD's ``benchmark.tgz`` (``benchmark_RELEASE/dataset/{cls,inst}/*.mat``, MATLAB structs written with
scipy, as torchvision's SBD loader reads them), the ScribbleSup zip (``pascal_2012/*.xml`` with the
release's own class names), the What's-the-Point dict, and a VOC test tar.
"""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wsss.core.datasets.voc_build import TRAIN_AUG_SIZE, build, main, train_aug_ids
from wsss.core.masks import read_mask
from wsss.core.weak_labels.images import read_label_png
from wsss.core.weak_labels.points import read_points_json
from wsss.core.weak_labels.scribblesup import read_scribblesup_xml
from wsss.core.datasets import voc_dataset
from wsss.core.weak_labels.voc import read_id_list

H, W = 24, 32
VOC_TRAIN, VOC_VAL = ["2007_000001", "2007_000002"], ["2007_000003"]
SBD_TRAIN, SBD_VAL = ["2007_000001", "2008_000010", "2008_000011"], ["2007_000003", "2008_000012"]
ALL = sorted(set(VOC_TRAIN + VOC_VAL + SBD_TRAIN + SBD_VAL))


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array.astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _jpg(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (H, W, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def _add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


def _xml(objects) -> bytes:
    body = "".join(f"<object><name>{n}</name><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin><xmax>{b[2]}</xmax>"
                   f"<ymax>{b[3]}</ymax></bndbox></object>" for n, b in objects)
    return f"<annotation><size><width>{W}</width><height>{H}</height></size>{body}</annotation>".encode()


def voc_class_map(k: int) -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    m[2:10, 3 + k:12 + k] = 15
    m[1, :] = 255  # VOC's void band
    return m


def sbd_instances(k: int):
    """25 objects (more than 20: object ids are not classes), all of class 1 + k."""
    inst = np.zeros((H, W), np.uint8)
    for n in range(25):
        inst[n // 5 * 4 : n // 5 * 4 + 3, n % 5 * 6 : n % 5 * 6 + 5] = n + 1
    return inst, np.full((25, 1), 1 + k, np.uint8)


def sbd_class_map(k: int) -> np.ndarray:
    return ((sbd_instances(k)[0] > 0) * (1 + k)).astype(np.uint8)


@pytest.fixture(scope="module")
def downloads(tmp_path_factory):
    from scipy.io import savemat

    d = tmp_path_factory.mktemp("downloads")
    with tarfile.open(d / "VOCtrainval_11-May-2012.tar", "w") as tf:
        for k, image_id in enumerate(ALL):
            _add(tf, f"VOCdevkit/VOC2012/JPEGImages/{image_id}.jpg", _jpg(k))
            _add(tf, f"VOCdevkit/VOC2012/Annotations/{image_id}.xml", _xml([("person", (4 + k, 3, 12 + k, 10))]))
        for k, image_id in enumerate(VOC_TRAIN + VOC_VAL):
            _add(tf, f"VOCdevkit/VOC2012/SegmentationClass/{image_id}.png", _png(voc_class_map(k)))
        for split, ids in (("train", VOC_TRAIN), ("val", VOC_VAL)):
            _add(tf, f"VOCdevkit/VOC2012/ImageSets/Segmentation/{split}.txt", "".join(f"{i}\n" for i in ids).encode())
    mats = d / "mats"
    mats.mkdir()
    with tarfile.open(d / "benchmark.tgz", "w:gz") as tf:
        for k, image_id in enumerate(sorted(set(SBD_TRAIN + SBD_VAL))):
            savemat(mats / "cls.mat", {"GTcls": {"Segmentation": sbd_class_map(k), "CategoriesPresent": [1 + k]}})
            inst, cats = sbd_instances(k)
            savemat(mats / "inst.mat", {"GTinst": {"Segmentation": inst, "Categories": cats}})
            tf.add(mats / "cls.mat", f"benchmark_RELEASE/dataset/cls/{image_id}.mat")
            tf.add(mats / "inst.mat", f"benchmark_RELEASE/dataset/inst/{image_id}.mat")
        for split, ids in (("train", SBD_TRAIN), ("val", SBD_VAL)):
            _add(tf, f"benchmark_RELEASE/dataset/{split}.txt", "".join(f"{i}\n" for i in ids).encode())
    with zipfile.ZipFile(d / "scribble_annotation.zip", "w") as zf:
        for image_id in ALL[:2]:
            zf.writestr(f"scribble_annotation/pascal_2012/{image_id}.xml", (
                f"<annotation><filename>{image_id}.jpg</filename><size><width>{W}</width><height>{H}</height></size>"
                "<polygon><tag>bike</tag><point><X>5</X><Y>5</Y></point><point><X>15</X><Y>5</Y></point></polygon>"
                "<polygon><tag>background</tag><point><X>-3</X><Y>20</Y></point><point><X>40</X><Y>20</Y></point>"
                "</polygon></annotation>"))
        zf.writestr("scribble_annotation/pascal_context/ignored.xml", "<annotation/>")
    release = {ALL[0]: [{"x": 6.0, "y": 5.0, "cls": 2, "rank": 1}, {"x": 99.0, "y": 3.0, "cls": 15, "rank": 1}],
               ALL[1]: [], ALL[2]: [{"x": 8.5, "y": 9.0, "cls": 15, "rank": 2}]}
    (d / "pascal2012_trainval_main.json").write_text(json.dumps(release))
    with tarfile.open(d / "VOC2012test.tar", "w") as tf:
        _add(tf, "VOCdevkit/VOC2012/JPEGImages/2008_000099.jpg", _jpg(99))
        _add(tf, "VOCdevkit/VOC2012/ImageSets/Segmentation/test.txt", b"2008_000099\n")
    return d


@pytest.fixture(scope="module")
def built(downloads, tmp_path_factory):
    out = tmp_path_factory.mktemp("voc") / "VOC2012"
    report = build(voc=downloads / "VOCtrainval_11-May-2012.tar", sbd=downloads / "benchmark.tgz",
                   scribbles=downloads / "scribble_annotation.zip", points=downloads / "pascal2012_trainval_main.json",
                   voc_test=downloads / "VOC2012test.tar", out=out, workers=2, background=4)
    return out, report


def test_train_aug_list_and_ground_truth_from_sbd(built):
    out, report = built
    expected = sorted(set(VOC_TRAIN + SBD_TRAIN + SBD_VAL) - set(VOC_VAL))
    assert read_id_list(out / "ImageSets/Segmentation/trainaug.txt") == expected
    assert read_id_list(out / "ImageSets/Segmentation/aug.txt") == sorted(set(expected) - set(VOC_TRAIN))
    # SBD's class maps for its images VOC has none of (train_aug and val), objects for all SBD images
    assert report["sbd"] == {"trainaug": 5, "class_maps_from_sbd": 3, "class_maps_from_voc": 3,
                             "object_maps_from_sbd": 5}
    sbd_ids = sorted(set(SBD_TRAIN + SBD_VAL))
    for image_id in ("2008_000010", "2008_000011"):  # SBD only: GTcls exactly, no 255 band
        np.testing.assert_array_equal(read_mask(out / "SegmentationClassAug" / f"{image_id}.png"),
                                      sbd_class_map(sbd_ids.index(image_id)))
    for k, image_id in enumerate(VOC_TRAIN + VOC_VAL):  # VOC's own ground truth where VOC has it
        np.testing.assert_array_equal(read_mask(out / "SegmentationClassAug" / f"{image_id}.png"), voc_class_map(k))
    inst = read_label_png(out / "SegmentationObjectAug" / "2008_000010.png", num_foreground=254)
    np.testing.assert_array_equal(inst, sbd_instances(0)[0])


def test_the_10582_rule_on_lists_of_the_official_sizes():
    voc_train = [f"t{i}" for i in range(1464)]
    voc_val = [f"v{i}" for i in range(1449)]
    sbd = voc_train[:1137] + voc_val[:1100] + [f"s{i}" for i in range(11355 - 2237)]  # 2,237 shared with VOC
    ids = train_aug_ids(voc_train, voc_val, sbd[:8498], sbd[8498:])
    assert len(ids) == TRAIN_AUG_SIZE and not set(ids) & set(voc_val)
    altered = sbd[:1136] + ["new"] + sbd[1137:]  # one VOC train image of SBD swapped for a new one
    with pytest.raises(ValueError, match="10582"):
        train_aug_ids(voc_train, voc_val, altered[:8498], altered[8498:])


def test_train_aug_is_a_split_with_sbd_ground_truth(built, tmp_path):
    out, _ = built
    ds = voc_dataset(out, split="train_aug", verify_images=False)
    assert ds.ids == read_id_list(out / "ImageSets/Segmentation/trainaug.txt")
    assert ds.load("2008_000010").gt_path == out / "SegmentationClassAug" / "2008_000010.png"
    assert ds.load("2007_000001").gt_path == out / "SegmentationClass" / "2007_000001.png"
    # DeepLab's two-column train_aug.txt reads as the same ids
    deeplab = tmp_path / "VOC2012"
    (deeplab / "ImageSets/Segmentation").mkdir(parents=True)
    (deeplab / "JPEGImages").symlink_to(out / "JPEGImages")
    (deeplab / "ImageSets/Segmentation/train_aug.txt").write_text(
        "".join(f"/JPEGImages/{i}.jpg /SegmentationClassAug/{i}.png\n" for i in ds.ids))
    assert voc_dataset(deeplab, split="trainaug", verify_images=False).ids == ds.ids


def test_described_voc_reads_train_aug_and_its_ground_truth(built, tmp_path):
    from wsss.core.datasets import DescribedDataset

    out, _ = built
    desc = tmp_path / "voc.yaml"
    repo = Path(__file__).resolve().parents[2]
    desc.write_text(f"_base_: {repo / 'configs/datasets/voc2012.yaml'}\nroot: {out}\n")
    ds = DescribedDataset(desc, split="train_aug")
    assert ds.ids == read_id_list(out / "ImageSets/Segmentation/trainaug.txt")
    assert all(ds.has_gt(i) for i in ds.ids)
    np.testing.assert_array_equal(ds.read_gt("2008_000011"), sbd_class_map(sorted(set(SBD_TRAIN + SBD_VAL)).index("2008_000011")))


def test_scribbles_points_and_test_images(built, downloads):
    out, report = built
    assert report["scribble_files"] == 2 and report["test_images"] == 1
    for image_id in ALL[:2]:
        got = read_mask(out / "scribbles" / f"{image_id}.png")
        with zipfile.ZipFile(downloads / "scribble_annotation.zip") as zf:
            xml = out / f"{image_id}.xml"
            xml.write_bytes(zf.read(f"scribble_annotation/pascal_2012/{image_id}.xml"))
        np.testing.assert_array_equal(got, read_scribblesup_xml(xml))
        assert set(np.unique(got)) == {0, 2, 255}  # "bike" is bicycle (2); the background stroke clipped
    clicks = read_points_json(out / "points" / f"{ALL[0]}.json")
    fg = clicks.classes > 0
    np.testing.assert_array_equal(clicks.points[fg], [[6, 5], [99, 3]])  # as released, outside ones kept
    assert clicks.classes[fg].tolist() == [2, 15]
    bg = clicks.points[~fg].astype(int)
    scribbles = read_mask(out / "scribbles" / f"{ALL[0]}.png")
    assert len(bg) == 4 and (scribbles[bg[:, 1], bg[:, 0]] == 0).all()  # on the background strokes
    assert len(read_points_json(out / "points" / f"{ALL[2]}.json").classes) == 1  # no scribbles: no background
    assert (out / "JPEGImages" / "2008_000099.jpg").is_file()


def test_a_second_run_writes_nothing_and_a_missing_download_is_named(built, downloads, capsys):
    out, _ = built
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    build(voc=downloads / "VOCtrainval_11-May-2012.tar", sbd=downloads / "benchmark.tgz",
          scribbles=downloads / "scribble_annotation.zip", points=downloads / "pascal2012_trainval_main.json",
          out=out, workers=1, background=4)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == stamps
    # an unpacked VOC folder is built where it is
    assert build(voc=out.parent, sbd=out / "SBD", workers=1)["out_dir"] == str(out)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == stamps
    assert main(["--voc", str(downloads / "VOCtrainval_11-May-2012.tar"), "--sbd", str(downloads / "nope.tgz"),
                 "--out-dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert "nope.tgz" in err and "benchmark.tgz" in err and "SBD" in err


def test_more_than_20_objects_give_instance_ground_truth(built):
    from wsss.core.evaluation.instances import voc_instances

    out, _ = built
    objects, source, _ = voc_instances(out, "2008_000010")
    assert source == "instances" and len(objects) == 25
    assert {c for c, _ in objects} == {1 + sorted(set(SBD_TRAIN + SBD_VAL)).index("2008_000010")}


def test_evaluate_train_aug_pseudo_labels_against_voc_and_sbd(built, tmp_path):
    """wsss-evaluate --data DIR --split train_aug: VOC's masks for VOC's images, SBD's for the rest."""
    import shutil

    from wsss.core.evaluation.cli import main as evaluate

    out, _ = built
    ids = read_id_list(out / "ImageSets/Segmentation/trainaug.txt")
    pred = tmp_path / "pred"
    pred.mkdir()
    for image_id in ids:
        shutil.copy(out / "SegmentationClassAug" / f"{image_id}.png", pred / f"{image_id}.png")
    assert evaluate(["--pred", str(pred), "--data", str(out), "--split", "train_aug", "--json", str(tmp_path / "m.json")]) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["mIoU"] == 100.0 and metrics["num_images"] == len(ids) == 5
    wrong = read_mask(pred / "2008_000010.png")
    write_mask_path = pred / "2008_000010.png"
    from wsss.core.masks import write_mask

    write_mask(write_mask_path, np.zeros_like(wrong))  # an SBD image predicted all background
    assert evaluate(["--pred", str(pred), "--data", str(out), "--split", "train_aug", "--json", str(tmp_path / "m.json")]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["mIoU"] < 100.0
