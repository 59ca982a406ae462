"""The mIoU evaluator: a hand-computed confusion matrix, GT against itself, and the CLI's errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wsss.core.evaluation import (
    MissingPredictionsError,
    SegmentationMetrics,
    confusion_matrix,
    evaluate_folders,
    iou_per_class,
)
from wsss.core.evaluation.cli import main as evaluate_main
from wsss.core.masks import write_mask
from wsss.core.weak_labels import SizeMismatchError, read_id_list

GT = np.array([[0, 0, 1, 1],
               [1, 2, 255, 2],
               [0, 2, 2, 255]], np.uint8)
PRED = np.array([[0, 1, 1, 1],
                 [2, 2, 0, 255],
                 [0, 0, 2, 2]], np.uint8)
# Counted pixels (GT != 255): (g, p) = (0,0) (0,1) (1,1) (1,1) (1,2) (2,2) (2,255) (0,0) (2,0) (2,2)
HAND = np.array([[2, 1, 0, 0],     # GT 0: two right, one predicted 1
                 [0, 2, 1, 0],     # GT 1: two right, one predicted 2
                 [1, 0, 2, 1]])    # GT 2: one predicted 0, two right, one left unlabeled (255)


def test_hand_computed_confusion_and_scores():
    conf = confusion_matrix(PRED, GT, num_labels=3)
    np.testing.assert_array_equal(conf, HAND)
    # IoU_c = TP / (GT_c + PRED_c - TP); the 255 prediction counts in GT_2 only.
    expected = np.array([2 / (3 + 3 - 2), 2 / (3 + 3 - 2), 2 / (4 + 3 - 2)])
    np.testing.assert_allclose(iou_per_class(conf), expected)
    m = SegmentationMetrics.from_confusion(conf, num_images=1, class_names=["bg", "a", "b"])
    assert m.miou == pytest.approx(100 * expected.mean())
    assert m.pixel_accuracy == pytest.approx(100 * 6 / 10)
    assert m.per_class_iou == pytest.approx({"bg": 50.0, "a": 50.0, "b": 40.0})


def test_bincount_matches_loop_reference():
    rng = np.random.default_rng(3)
    gt = rng.integers(0, 21, (37, 41)).astype(np.uint8)
    gt[rng.random(gt.shape) < 0.1] = 255
    pred = rng.integers(0, 21, gt.shape).astype(np.uint8)
    pred[rng.random(gt.shape) < 0.05] = 255
    ref = np.zeros((21, 22), np.int64)
    for g, p in zip(gt.ravel(), pred.ravel()):
        if g != 255:
            ref[g, 21 if p == 255 else p] += 1
    np.testing.assert_array_equal(confusion_matrix(pred, gt), ref)


def test_confusion_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="prediction"):
        confusion_matrix(np.full((2, 2), 30), np.zeros((2, 2)))


def test_absent_class_is_nan_and_left_out_of_mean():
    conf = confusion_matrix(np.array([0, 1, 1]), np.array([0, 1, 1]), num_labels=21)
    m = SegmentationMetrics.from_confusion(conf, num_images=1)
    assert m.miou == 100.0 and np.isnan(m.per_class_iou["dog"])
    assert m.to_dict()["per_class_iou"]["dog"] is None


@pytest.mark.realdata
def test_real_ground_truth_against_itself_is_100(voc_root):
    gt_dir = voc_root / "SegmentationClass"
    ids = read_id_list(voc_root / "ImageSets/Segmentation/val.txt")
    m = evaluate_folders(pred_dir=gt_dir, gt_dir=gt_dir, ids=ids)
    assert m.miou == 100.0 and m.pixel_accuracy == 100.0 and m.num_images == 100
    assert all(v == 100.0 for v in m.per_class_iou.values())  # all 21 classes occur in val


def _folders(tmp_path, ids=("a", "b", "c")):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    for i in ids:
        write_mask(gt_dir / f"{i}.png", GT)
        write_mask(pred_dir / f"{i}.png", PRED)
    return gt_dir, pred_dir


def test_cli_table_and_json(tmp_path, capsys):
    gt_dir, pred_dir = _folders(tmp_path)
    out_json = tmp_path / "out" / "m.json"
    assert evaluate_main(["--pred", str(pred_dir), "--gt", str(gt_dir), "--json", str(out_json)]) == 0
    printed = capsys.readouterr().out
    assert "mIoU" in printed and "background" in printed and "(3 images)" in printed
    data = json.loads(out_json.read_text())
    # Classes 0..2 as in the hand-computed case (x3 images), the other 18 absent.
    assert data["per_class_iou"]["background"] == 50.0 and data["per_class_iou"]["bicycle"] == 40.0
    assert data["mIoU"] == pytest.approx(100 * (0.5 + 0.5 + 0.4) / 3, abs=1e-3)
    assert data["pixel_accuracy"] == 60.0 and data["num_images"] == 3
    assert np.array(data["confusion"])[:3, [0, 1, 2, 21]].tolist() == (3 * HAND).tolist()


def test_cli_lists_every_missing_prediction(tmp_path, capsys):
    gt_dir, pred_dir = _folders(tmp_path, ids=("a", "b", "c", "d"))
    (pred_dir / "b.png").unlink()
    (pred_dir / "d.png").unlink()
    listing = tmp_path / "list.txt"
    listing.write_text("a\nb\nc\nd\n")
    assert evaluate_main(["--pred", str(pred_dir), "--gt", str(gt_dir), "--list", str(listing)]) == 2
    err = capsys.readouterr().err
    assert "2 prediction(s) missing: b, d" in err
    with pytest.raises(MissingPredictionsError) as info:
        evaluate_folders(pred_dir=pred_dir, gt_dir=gt_dir, ids=["a", "b", "c", "d"])
    assert info.value.missing == ["b", "d"]


def test_size_mismatch_names_the_file(tmp_path, capsys):
    gt_dir, pred_dir = _folders(tmp_path)
    write_mask(pred_dir / "b.png", np.zeros((3, 5), np.uint8))
    with pytest.raises(SizeMismatchError, match=r"pred/b\.png"):
        evaluate_folders(pred_dir=pred_dir, gt_dir=gt_dir)
    assert evaluate_main(["--pred", str(pred_dir), "--gt", str(gt_dir)]) == 2
    assert "b.png" in capsys.readouterr().err
