"""The quality report: JSON numbers, an offline HTML page with relative PNGs, curves and overlays."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from wsss.core.evaluation.metrics import SegmentationMetrics, confusion_matrix
from wsss.apps.report import (
    OverlayRow,
    build_report,
    draw_weak_labels,
    per_image_miou,
    read_train_log,
    select_best_median_worst,
)
from wsss.core.weak_labels.annotation import ImageAnnotation


def _metrics(pred, gt):
    return SegmentationMetrics.from_confusion(confusion_matrix(pred, gt), num_images=1)


def _scene(seed=0, h=48, w=64):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    gt = np.zeros((h, w), np.uint8)
    gt[10:30, 12:40] = 15
    gt[0:2, :] = 255
    scribbles = np.full((h, w), 255, np.uint8)
    scribbles[20, 15:35] = 15
    scribbles[40, 5:60] = 0
    ann = ImageAnnotation(image_id=f"img{seed}", image_path=None, height=h, width=w, boxes=[[12, 10, 40, 30]],
                          box_classes=[15], scribbles=scribbles, points=[[20.0, 20.0], [5.0, 44.0]],
                          point_classes=[15, 0])
    return image, ann, gt


def _log(path, steps=5):
    lines = []
    for s in range(1, steps + 1):
        lt = {"background": -0.5 / s, "box_tightness": -1.0 / s, "scribbles": -0.2 / s}
        lines.append(json.dumps({"step": s, "epoch": 0, "loss": 2.0 / s, "lr": 1e-4, "images": 4,
                                 "log_truth": lt, "truth": {k: float(np.exp(v)) for k, v in lt.items()}}))
    lines.append('{"step": 6, "loss": 0.3')  # a partial line being written: ignored
    path.write_text("\n".join(lines) + "\n")
    return path


def test_read_train_log_formats(tmp_path):
    recs = read_train_log(_log(tmp_path / "train_log.jsonl"))
    assert [r["step"] for r in recs] == [1, 2, 3, 4, 5]
    assert set(recs[0]["truth"]) == {"background", "box_tightness", "scribbles"}
    assert recs[0]["losses"]["box_tightness"] == pytest.approx(1.0)  # - mean log-truth
    flat = tmp_path / "flat.jsonl"
    flat.write_text('{"iter": 3, "loss": 1.5, "truth/scribbles": 0.9, "loss/scribbles": 0.1}\nnot json\n')
    (rec,) = read_train_log(flat)
    assert rec["step"] == 3 and rec["truth"] == {"scribbles": 0.9} and rec["losses"] == {"scribbles": 0.1}
    assert read_train_log(tmp_path / "missing.jsonl") == []


def test_foreground_in_boxes_gets_its_own_panel(tmp_path):
    from wsss.apps.report.plots import plot_training_curves

    log = tmp_path / "fg.jsonl"
    log.write_text("".join(json.dumps({"step": s, "loss": 1.0 / s, "fg_in_boxes": 0.2 / s, "fg_in_boxes_zero_shot": 0.2})
                           + "\n" for s in range(1, 4)))
    recs = read_train_log(log)
    assert [r["fg_in_boxes"] for r in recs] == pytest.approx([0.2, 0.1, 0.2 / 3])
    assert plot_training_curves(recs, tmp_path / "with.png") is not None
    assert plot_training_curves(read_train_log(_log(tmp_path / "plain.jsonl")), tmp_path / "without.png") is not None
    from PIL import Image

    # three panels are wider than two
    assert Image.open(tmp_path / "with.png").size[0] > Image.open(tmp_path / "without.png").size[0]


def test_per_image_miou_and_selection():
    gt = np.zeros((4, 4), np.uint8)
    gt[:2] = 1
    assert per_image_miou(gt, gt) == pytest.approx(100.0)
    pred = gt.copy()
    pred[0, 0] = 0
    assert 0 < per_image_miou(pred, gt) < 100
    picks = select_best_median_worst({"a": 90.0, "b": 10.0, "c": 50.0, "d": float("nan"), "e": 40.0})
    assert [(p[0], p[1]) for p in picks] == [("best", "a"), ("median", "e"), ("worst", "b")]
    assert [p[0] for p in select_best_median_worst({"a": 1.0})] == ["best"]
    assert select_best_median_worst({}) == []


def test_draw_weak_labels_marks_boxes_scribbles_and_clicks():
    image, ann, _ = _scene()
    drawn = draw_weak_labels(image, ann)
    assert drawn.shape == image.shape and drawn.dtype == np.uint8
    assert not np.array_equal(drawn[20, 15:35], (image[20, 15:35] * 0.8).astype(np.uint8))


def test_build_report_writes_offline_html_json_and_figures(tmp_path):
    image, ann, gt = _scene()
    box = gt.copy()
    box[box == 255] = 0
    box[10:30, 12:40] = 15
    zero = np.zeros_like(gt)
    zero[12:28, 14:38] = 15
    fine = np.where(gt == 255, 0, gt)
    pseudo = {"box fill": _metrics(box, gt), "GrabCut": _metrics(zero, gt), "zero-shot": _metrics(zero, gt),
              "fine-tuned": _metrics(fine, gt)}
    rows = []
    for label in ("best", "median", "worst"):
        rows.append(OverlayRow(label=label, image_id=ann.image_id, image=image, annotation=ann,
                               masks={"zero-shot": zero, "fine-tuned": fine}, gt=gt,
                               scores={"zero-shot": per_image_miou(zero, gt), "fine-tuned": per_image_miou(fine, gt)}))
    report = build_report(
        tmp_path / "rep", pseudo_metrics=pseudo, stage2_metrics={"stage 2 on fine-tuned": {"mIoU": 55.0},
                                                                 "stage 2 on box fill": {"mIoU": 45.0}},
        train_log=_log(tmp_path / "train_log.jsonl"), overlay_rows=rows, ranked_by="fine-tuned",
        targets=[{"name": "fine-tuned >= zero-shot + 5", "measured": "100 vs 60", "passed": True}],
        timings={"baselines": 1.2}, notes=["proxy SAM: a stand-in for pretrained SAM"],
        model={"type": "proxy"}, dataset={"root": "x"},
    )
    out = tmp_path / "rep"
    data = json.loads((out / "report.json").read_text())
    assert set(data["pseudo_masks"]["methods"]) == set(pseudo)
    for m in data["pseudo_masks"]["methods"].values():
        assert 0 <= m["mIoU"] <= 100 and "person" in m["per_class_iou"]
    assert data["pseudo_masks"]["methods"]["fine-tuned"]["mIoU"] == pytest.approx(100.0)
    assert data["stage2"]["methods"]["stage 2 on fine-tuned"]["mIoU"] == 55.0
    assert data["training"]["num_records"] == 5
    assert data == json.loads(json.dumps(report, default=str))
    html = (out / "report.html").read_text()
    for fig in ("training_curves.png", "overlays.png", "pseudo_miou.png"):
        assert (out / fig).stat().st_size > 1000
        assert f"src='{fig}'" in html
    assert "<script" not in html.lower() and "http://" not in html and "https://" not in html
    for src in re.findall(r"src='([^']+)'", html):
        assert not src.startswith("/") and (out / src).is_file()
    assert "fine-tuned" in html and "box fill" in html and "stage 2 on box fill" in html
    assert "stand-in" in html


def test_build_report_without_optional_parts(tmp_path):
    gt = np.zeros((8, 8), np.uint8)
    report = build_report(tmp_path, pseudo_metrics={"box fill": _metrics(gt, gt)})
    assert (tmp_path / "report.html").is_file() and report["training"] == {} and report["overlays"] == {}
    assert "(no training log)" in (tmp_path / "report.html").read_text()


def test_moving_mean_is_the_hand_computed_trend():
    from wsss.apps.report.plots import moving_mean

    assert moving_mean([1, 2, 3, 4, 5], 3) == pytest.approx([1.5, 2, 3, 4, 4.5])
    assert moving_mean([7.0] * 9, 4) == pytest.approx([7.0] * 9)
    noisy = [(-1.0) ** i for i in range(100)]  # per-step noise around 0
    assert max(abs(v) for v in moving_mean(noisy, 10)) <= 0.2 < min(abs(v) for v in noisy)


def test_long_training_curves_draw_a_moving_mean_over_the_raw_line(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt
    from wsss.apps.report import plots

    drawn = []
    monkeypatch.setattr(plt, "close", lambda fig: drawn.append(fig))
    log = tmp_path / "long.jsonl"
    rng = np.random.default_rng(0)
    log.write_text("".join(json.dumps({"step": s, "loss": 1.0 + rng.normal(), "log_truth": {"box": -1.0 + rng.normal()}})
                           + "\n" for s in range(1, 201)))
    plots.plot_training_curves(read_train_log(log), tmp_path / "long.png")
    ax_loss = drawn[0].axes[0]
    lines = {ln.get_label(): ln for ln in ax_loss.get_lines()}
    total = lines["total (mean of 10 steps)"]
    raw = [ln for ln in ax_loss.get_lines() if ln.get_label().startswith("_") and len(ln.get_ydata()) == 200]
    assert raw and total.get_color() == raw[0].get_color()  # one colour, the raw line under its mean
    assert np.std(total.get_ydata()) < 0.5 * np.std(raw[0].get_ydata())
    short = plots.read_train_log(_log(tmp_path / "short.jsonl"))  # 5 steps: drawn as logged
    plots.plot_training_curves(short, tmp_path / "short.png")
    assert "total" in {ln.get_label() for ln in drawn[1].axes[0].get_lines()}


def test_overlay_rows_draw_only_the_weak_labels_the_run_used(tmp_path):
    from PIL import Image
    from wsss.apps.demo.results import overlay_rows
    from wsss.core.masks import write_mask

    image, ann, gt = _scene()
    path = tmp_path / "img0.png"
    Image.fromarray(image).save(path)
    ann.image_path = path
    pred = tmp_path / "pred"
    write_mask(pred / "img0.png", np.where(gt == 255, 0, gt))
    rows, _ = overlay_rows(["img0"], lambda i: ann, {"fine-tuned": pred}, "fine-tuned", lambda i: gt,
                           weak_labels=["boxes"])
    used = rows[0].annotation
    assert used.scribbles is None and len(used.points) == 0 and len(used.boxes) == 1
    assert rows[0].weak_labels == "boxes"
    # the drawing of the boxes-only run has no scribble pixel on the scribble row; all labels do
    assert np.array_equal(draw_weak_labels(image, used)[40, 5:60], (image[40, 5:60] * 0.8).astype(np.uint8))
    assert not np.array_equal(draw_weak_labels(image, ann)[40, 5:60], (image[40, 5:60] * 0.8).astype(np.uint8))
