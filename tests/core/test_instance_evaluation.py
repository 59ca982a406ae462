"""Instance evaluation (mask AP through pycocotools' COCOeval) and the instance baselines."""

from __future__ import annotations

import json

from PIL import Image

import numpy as np
import pytest

from wsss.core import instances as inst
from wsss.core.evaluation.instances import (coco_ground_truth, document_from_instances, evaluate_instances, main,
                                            voc_ground_truth, voc_instances)
from wsss.core.synthetic import write_dataset
from wsss.core.datasets import voc_dataset
from wsss.core.weak_labels import read_image
from wsss.core.weak_labels.voc import read_id_list
from stage1_pseudolabel.baselines import box_fill, grabcut_fill
from stage1_pseudolabel.baselines.cli import main as baselines_main
from stage1_pseudolabel.baselines.instances import box_fill_instances, grabcut_instances, run_instance_baseline


def square(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


# -- the evaluator against hand-computed COCO AP --------------------------------------------------------
def test_ap_matches_hand_computed_values():
    # ground truth: two persons (10x10 = 100 px each) in one 40x40 image
    a, b = square(40, 40, 0, 10, 0, 10), square(40, 40, 20, 30, 20, 30)
    gt = document_from_instances([("img", 40, 40, [(15, a), (15, b)])])
    # one exact hit (score .9) and one false positive (score .8) elsewhere: recall 1/2 at precision 1,
    # so 51 of COCO's 101 recall points have precision 1: AP = 51/101 at every IoU threshold
    fp = square(40, 40, 32, 40, 0, 8)
    pred = document_from_instances([("img", 40, 40, [])])
    pred["annotations"] = inst.object_annotations(1, [a, fp], [15, 15], [0.9, 0.8])
    m = evaluate_instances(pred, gt)
    assert (m["AP"], m["AP50"], m["AP75"]) == (pytest.approx(100 * 51 / 101, abs=0.01),) * 3
    # two hits of IoU 62/100: matched at IoU thresholds .50, .55, .60 of the ten -> AP 30, AP50 100, AP75 0
    part_a, part_b = a.copy(), b.copy()
    part_a[:, :][np.nonzero(a)[0][62:], np.nonzero(a)[1][62:]] = False
    part_b[np.nonzero(b)[0][62:], np.nonzero(b)[1][62:]] = False
    assert part_a.sum() == part_b.sum() == 62
    pred["annotations"] = inst.object_annotations(1, [part_a, part_b], [15, 15], [0.9, 0.8])
    m = evaluate_instances(pred, gt)
    assert (m["AP"], m["AP50"], m["AP75"]) == (pytest.approx(30.0, abs=0.01), 100.0, 0.0)
    # the right mask with the wrong class is no hit; a predicted image unknown to the ground truth is refused
    pred["annotations"] = inst.object_annotations(1, [a, b], [8, 8], [0.9, 0.8])
    assert evaluate_instances(pred, gt)["AP"] == 0.0
    with pytest.raises(ValueError, match="not in the ground truth"):
        evaluate_instances(document_from_instances([("other", 40, 40, [])]), gt)


def test_coco_ground_truth_with_polygons_and_category_names(tmp_path):
    gt_file = tmp_path / "gt.json"
    gt_file.write_text(json.dumps({
        "images": [{"id": 42, "file_name": "a.jpg", "height": 30, "width": 30}],
        "annotations": [{"id": 5, "image_id": 42, "category_id": 5, "iscrowd": 0, "area": 100,
                         "bbox": [10, 10, 10, 10], "segmentation": [[10, 10, 20, 10, 20, 20, 10, 20]]},
                        {"id": 6, "image_id": 42, "category_id": 24, "iscrowd": 0, "area": 4,
                         "bbox": [0, 0, 2, 2], "segmentation": [[0, 0, 2, 0, 2, 2, 0, 2]]}],
        "categories": [{"id": 5, "name": "airplane"}, {"id": 24, "name": "zebra"}],
    }))
    gt = coco_ground_truth(gt_file)
    assert [a["category_id"] for a in gt["annotations"]] == [1]  # airplane -> aeroplane; zebra dropped
    pred = document_from_instances([("a", 30, 30, [(1, square(30, 30, 10, 20, 10, 20))])])
    assert evaluate_instances(pred, gt)["AP"] == 100.0
    pred_file = tmp_path / "pred.json"
    inst.write_document(pred_file, pred)
    assert main(["--pred", str(pred_file), "--coco", str(gt_file), "--json", str(tmp_path / "m.json")]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["pred.json"]["AP"] == 100.0


def test_synthetic_ground_truth_comes_from_segmentation_object(tmp_path):
    root = write_dataset(tmp_path / "syn", domain="target", num_train=3, num_val=0, seed=1, size_range=(90, 110))
    ds = voc_dataset(root, split="train")
    gt = voc_ground_truth(root, ds.ids)
    assert gt["info"]["gt_source"] == {"instances": 3, "class_components": 0}
    for k, image_id in enumerate(ds.ids):
        ann = ds.load(image_id)
        objects, _, crowd = voc_instances(root, image_id)
        assert crowd == []
        # one instance per XML object, in its order, with its class and its (tight) box
        assert [c for c, _ in objects] == ann.box_classes.tolist()
        for (c, m), box in zip(objects, ann.boxes):
            assert inst.mask_bbox(m) == [box[0], box[1], box[2] - box[0], box[3] - box[1]]


# -- real VOC images ----------------------------------------------------------------------------------
@pytest.mark.realdata
def test_ground_truth_as_pseudo_labels_gives_ap_100_on_real_voc(voc_root, tmp_path):
    ids = read_id_list(voc_root / "ImageSets/Segmentation/train.txt")[:40]
    gt = voc_ground_truth(voc_root, ids)
    # the slice has no SegmentationObject: approximate instances (class components), and it says so
    assert gt["info"]["gt_source"] == {"instances": 0, "class_components": 40}
    assert "approximate" in gt["info"]["note"]
    # perfect pseudo-labels written as stage 1 writes them, read back from disk
    shapes = {im["name"]: (im["height"], im["width"]) for im in gt["images"]}
    items = [(i, *shapes[i], voc_instances(voc_root, i)[0]) for i in ids]  # crowd specks not predicted
    path = tmp_path / "perfect.json"
    inst.write_document(path, document_from_instances(items, score=1.0))
    m = evaluate_instances(inst.read_document(path), gt)
    print("GT as pseudo-labels on", len(ids), "real VOC train images:", m)
    assert (m["AP"], m["AP50"], m["AP75"]) == (100.0, 100.0, 100.0)
    assert m["gt_objects"] == m["pred_objects"] > len(ids)
    # the CLI: the same check as a row (--gt-as-pred), and the ground truth written for stage 2
    boxes = tmp_path / "box.json"
    run_instance_baseline("box", voc_root, boxes, ids=ids[:5])
    assert main(["--pred", str(boxes), "--voc", str(voc_root), "--gt-as-pred", "--json", str(tmp_path / "m.json"),
                 "--write-gt", str(tmp_path / "gt.json")]) == 0
    rows = json.loads((tmp_path / "m.json").read_text())
    assert rows["ground truth as pred"]["AP"] == 100.0 and rows["ground truth as pred"]["images"] == 5
    assert 0 < rows["box.json"]["AP"] < 100
    written = inst.read_document(tmp_path / "gt.json")
    assert [im["name"] for im in written["images"]] == ids[:5]
    assert evaluate_instances(written, voc_ground_truth(voc_root, ids[:5]))["AP"] == 100.0



def test_a_voc_split_image_without_ground_truth_is_an_error(tmp_path, capsys):
    """--voc --split: every image the list names must have ground truth; one without is named, exit 2."""
    root = write_dataset(tmp_path / "syn", domain="target", num_train=3, num_val=0, seed=1, size_range=(90, 110))
    ids = read_id_list(root / "ImageSets/Segmentation/train.txt")
    (root / "SegmentationClass" / f"{ids[1]}.png").unlink()
    pred = tmp_path / "pred.json"
    inst.write_document(pred, voc_ground_truth(root, [ids[0]]))
    assert main(["--pred", str(pred), "--voc", str(root), "--split", "train"]) == 2
    err = capsys.readouterr().err
    assert "SegmentationClass: no ground truth for 1 image(s)" in err and ids[1] in err


@pytest.mark.realdata
def test_box_fill_instances_score_below_grabcut_on_real_voc(voc_root, tmp_path, capsys):
    ids = read_id_list(voc_root / "ImageSets/Segmentation/val.txt")[:16]
    gt = voc_ground_truth(voc_root, ids)
    results = {}
    for method in ("box", "grabcut"):
        run_instance_baseline(method, voc_root, tmp_path / f"{method}.json", ids=ids)
        results[method] = evaluate_instances(inst.read_document(tmp_path / f"{method}.json"), gt)
    with capsys.disabled():
        print(f"\nreal VOC val[:16], mask AP/AP50/AP75: box fill {results['box']['AP']}/{results['box']['AP50']}/"
              f"{results['box']['AP75']}, GrabCut {results['grabcut']['AP']}/{results['grabcut']['AP50']}/"
              f"{results['grabcut']['AP75']}")
    assert results["box"]["AP"] < results["grabcut"]["AP"]
    assert results["box"]["AP75"] < results["grabcut"]["AP75"]


@pytest.mark.realdata
def test_instance_baselines_rebuild_the_semantic_baselines(voc_root):
    ds = voc_dataset(voc_root, split="val", verify_images=False)
    for image_id in ds.ids[:3]:
        ann = ds.load(image_id)
        image = read_image(ann.image_path)
        for fn_inst, fn_sem in ((box_fill_instances, box_fill), (grabcut_instances, grabcut_fill)):
            objects = fn_inst(image, ann)
            rebuilt = np.zeros((ann.height, ann.width), np.uint8)
            for _, c, m in objects:
                assert not rebuilt[m].any()  # disjoint
                rebuilt[m] = c
            assert np.array_equal(rebuilt, fn_sem(image, ann)), (image_id, fn_inst.__name__)


def test_baselines_cli_writes_instances_that_rebuild_its_pngs(tmp_path, capsys):
    root = write_dataset(tmp_path / "syn", domain="target", num_train=4, num_val=0, seed=2, size_range=(90, 110))
    assert baselines_main(["--method", "box", "--data", str(root), "--out-dir", str(tmp_path / "png"),
                           "--no-progress"]) == 0
    for i in range(2):
        assert baselines_main(["--method", "box", "--data", str(root), "--out-dir", str(tmp_path / "inst"),
                               "--instances", "--shard-index", str(i), "--num-shards", "2"]) == 0
    assert "2 image(s) written" in capsys.readouterr().out
    shards = sorted((tmp_path / "inst").glob("instances.shard*.json"))
    doc = inst.merge_documents([inst.read_document(p) for p in shards])
    assert len(doc["images"]) == 4
    for im in doc["images"]:
        png = np.array(Image.open(tmp_path / "png" / f"{im['name']}.png"))
        assert np.array_equal(inst.semantic_from_instances(doc, im["name"]), png)
    # rerun: images already in the file are kept
    before = shards[0].read_bytes()
    assert baselines_main(["--method", "box", "--data", str(root), "--out-dir", str(tmp_path / "inst"),
                           "--instances", "--shard-index", "0", "--num-shards", "2"]) == 0
    assert "2 already present" in capsys.readouterr().out and shards[0].read_bytes() == before
    assert baselines_main(["--method", "box", "--data", str(root), "--out-dir", str(tmp_path / "inst"),
                           "--instances", "--shard-index", "0", "--num-shards", "2", "--overwrite"]) == 0
    assert "2 image(s) written" in capsys.readouterr().out
    assert json.loads(shards[0].read_text())["annotations"] == json.loads(before)["annotations"]
