"""Classical baselines: box fill and GrabCut, their CLI, resumability, sharding and bad input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from stage1_pseudolabel.baselines import box_fill, grabcut_fill
from stage1_pseudolabel.baselines.cli import main as baselines_main
from stage1_pseudolabel.baselines.cli import run_baseline
from wsss.core.evaluation import evaluate_folders
from wsss.core.masks import read_mask, validate_mask_dir, write_mask
from wsss.core.weak_labels.annotation import ImageAnnotation
from wsss.core.weak_labels.voc import read_id_list


def _ann(boxes, classes, h=40, w=50, scribbles=None):
    return ImageAnnotation(image_id="x", image_path=None, height=h, width=w, boxes=np.asarray(boxes, np.float32),
                           box_classes=np.asarray(classes), scribbles=scribbles)


def test_box_fill_smaller_boxes_on_top_and_half_open_edges():
    ann = _ann([[0, 0, 50, 40], [10, 5, 20, 15]], [15, 8])  # large person, small cat inside
    out = box_fill(None, ann)
    assert out.shape == (40, 50) and out.dtype == np.uint8
    assert (out[5:15, 10:20] == 8).all()
    assert out[15, 10] == 15 and out[5, 20] == 15  # x1 / y1 are exclusive
    assert (out == 15).sum() == 40 * 50 - 100
    # order in the annotation does not matter
    ann2 = _ann([[10, 5, 20, 15], [0, 0, 50, 40]], [8, 15])
    assert (box_fill(None, ann2) == out).all()


def test_box_fill_no_boxes_is_background():
    assert (box_fill(None, _ann(np.zeros((0, 4)), [])) == 0).all()


def _disc_image(h=64, w=64, r=14, centre=(32, 32), seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    disc = (yy - centre[1]) ** 2 + (xx - centre[0]) ** 2 <= r * r
    img = np.empty((h, w, 3), np.uint8)
    img[:] = (40, 160, 60)
    img[disc] = (200, 40, 40)
    img = (img.astype(np.int16) + rng.integers(-10, 10, img.shape)).clip(0, 255).astype(np.uint8)
    return img, disc


def test_grabcut_recovers_an_object_inside_its_box():
    img, disc = _disc_image()
    ann = _ann([[14, 14, 51, 51]], [8], h=64, w=64)
    out = grabcut_fill(img, ann)
    pred = out == 8
    iou = (pred & disc).sum() / (pred | disc).sum()
    box_iou = disc.sum() / (37 * 37)
    assert iou > 0.85 > box_iou
    assert set(np.unique(out)) <= {0, 8}


def test_grabcut_scribbles_are_hard_constraints():
    img, disc = _disc_image()
    scribbles = np.full((64, 64), 255, np.uint8)
    scribbles[30:33, 20:45] = 8  # a stroke of the object's class
    scribbles[16:18, 16:20] = 0  # background stroke inside the box corner
    scribbles[44:47, 44:47] = 3  # another class's stroke inside the box
    ann = _ann([[14, 14, 51, 51]], [8], h=64, w=64, scribbles=scribbles)
    out = grabcut_fill(img, ann)
    assert (out[scribbles == 8] == 8).all()
    assert (out[scribbles == 0] == 0).all()
    assert (out[scribbles == 3] != 8).all()


def test_grabcut_box_covering_the_whole_image_does_not_fail():
    img, disc = _disc_image(r=28)
    ann = _ann([[0, 0, 64, 64]], [8], h=64, w=64)
    out = grabcut_fill(img, ann)
    assert out.shape == (64, 64) and (out == 8).any()


@pytest.fixture(scope="module")
def synthetic_target(tmp_path_factory):
    from wsss.core.synthetic import write_dataset

    root = tmp_path_factory.mktemp("syn_target")
    return write_dataset(root, domain="target", num_train=6, num_val=1, seed=3)


def test_cli_on_synthetic_scenes_writes_valid_masks_and_grabcut_beats_box(synthetic_target, tmp_path):
    ids = read_id_list(synthetic_target / "ImageSets/Segmentation/train.txt")
    scores = {}
    for method in ("box", "grabcut"):
        out = tmp_path / method
        rc = baselines_main(["--method", method, "--data", str(synthetic_target), "--split", "train",
                             "--out-dir", str(out), "--no-progress"])
        assert rc == 0
        assert validate_mask_dir(out, ids=ids, gt_dir=synthetic_target / "SegmentationClass") == []
        metrics = evaluate_folders(pred_dir=out, gt_dir=synthetic_target / "SegmentationClass", ids=ids)
        scores[method] = metrics.miou
    for i in ids:  # the trivial predictor, scored the same way
        gt = read_mask(synthetic_target / "SegmentationClass" / f"{i}.png")
        write_mask(tmp_path / "bg" / f"{i}.png", np.zeros_like(gt))
    background = evaluate_folders(pred_dir=tmp_path / "bg", gt_dir=synthetic_target / "SegmentationClass", ids=ids).miou
    assert scores["grabcut"] > scores["box"] > background + 10, (scores, background)


def test_cli_resume_and_shards_cover_the_list(synthetic_target, tmp_path):
    ids = read_id_list(synthetic_target / "ImageSets/Segmentation/train.txt")
    out = tmp_path / "box"
    r0 = run_baseline("box", synthetic_target, out, shard_index=0, num_shards=2, progress=False)
    r1 = run_baseline("box", synthetic_target, out, shard_index=1, num_shards=2, progress=False)
    assert sorted(r0.written + r1.written) == sorted(ids) and not set(r0.written) & set(r1.written)
    one = run_baseline("box", synthetic_target, tmp_path / "one", progress=False)
    for i in ids:
        assert (read_mask(out / f"{i}.png") == read_mask(tmp_path / "one" / f"{i}.png")).all()
    again = run_baseline("box", synthetic_target, out, progress=False)
    assert again.written == [] and sorted(again.existing) == sorted(ids)


def test_cli_reports_and_skips_a_corrupt_image(synthetic_target, tmp_path, capsys):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(synthetic_target, root)
    ids = read_id_list(root / "ImageSets/Segmentation/train.txt")
    (root / "JPEGImages" / f"{ids[1]}.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "gc"
    rc = baselines_main(["--method", "grabcut", "--data", str(root), "--split", "train", "--out-dir", str(out),
                         "--no-progress"])
    assert rc == 3  # finished, one input skipped
    err = capsys.readouterr()
    assert ids[1] in err.err + err.out
    written = sorted(p.stem for p in out.glob("*.png"))
    assert written == sorted(i for i in ids if i != ids[1])
    assert not list(out.glob(".*.tmp"))


def test_cli_unknown_dataset_is_a_clear_error(tmp_path, capsys):
    rc = baselines_main(["--method", "box", "--data", str(tmp_path / "nope"), "--out-dir", str(tmp_path / "o")])
    assert rc == 2
    assert "nope" in capsys.readouterr().err


@pytest.mark.realdata
def test_grabcut_matches_or_beats_box_fill_on_real_images(voc_root, tmp_path):
    ids = read_id_list(voc_root / "ImageSets/Segmentation/train.txt")[:8]
    scores = {}
    for method in ("box", "grabcut"):
        out = tmp_path / method
        run = run_baseline(method, voc_root, out, ids=ids, progress=False)
        assert not run.failed
        assert validate_mask_dir(out, ids=ids, gt_dir=voc_root / "SegmentationClass") == []
        scores[method] = evaluate_folders(pred_dir=out, gt_dir=voc_root / "SegmentationClass", ids=ids).miou
    assert scores["grabcut"] >= scores["box"], scores


def test_baselines_see_only_the_weak_labels_of_the_setting(synthetic_target, tmp_path):
    seen = []

    def record(image, ann):
        seen.append((ann.num_objects, ann.scribbles is None, len(ann.points)))
        return np.zeros(image.shape[:2], np.uint8)

    run_baseline("box", synthetic_target, tmp_path / "b", method_fn=record, weak_labels=("boxes",), progress=False)
    assert seen and all(n > 0 and no_scribbles and clicks == 0 for n, no_scribbles, clicks in seen)
    seen.clear()
    run_baseline("box", synthetic_target, tmp_path / "all", method_fn=record, progress=False)
    assert any(not no_scribbles for _, no_scribbles, _ in seen)  # the synthetic scenes do have scribbles
