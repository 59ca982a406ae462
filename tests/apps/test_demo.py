"""A reduced, fast run of the demo flow: the report, baselines above the all-background mask, and a
second run that reuses every step's outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wsss.core.evaluation import evaluate_folders
from wsss.core.instances import read_document, semantic_from_instances
from wsss.core.masks import read_mask, write_mask
from wsss.core.weak_labels.voc import read_id_list

from wsss.apps.demo import main as demo_main
from wsss.apps.demo.stage2 import stage2_available


@pytest.mark.slow
def test_demo_flow_small(tmp_path):
    work = tmp_path / "demo"
    argv = ["--work-dir", str(work), "--proxy-checkpoint", str(tmp_path / "proxy" / "proxy_sam.pth"),
            "--proxy-steps", "2", "--proxy-eval-scenes", "2", "--num-train", "3", "--num-val", "2",
            "--stage1-max-steps", "1", "--stage2-iters", "2", "--stage2-batch", "2",
            "--stage2-instance-iters", "2", "--stage2-instance-batch", "2", "--threads", "1",
            "--no-stage2-baseline",  # the box-fill network is the same code path again (30 s)
            "--no-progress", "--device", "cpu"]
    with_stage2 = stage2_available() is None
    if not with_stage2:
        argv.append("--skip-stage2")
    assert demo_main(argv) == 0
    for name in ("report.html", "report.json", "overlays.png", "training_curves.png", "pseudo_miou.png"):
        assert (work / name).is_file(), name
    report = json.loads((work / "report.json").read_text())
    methods = report["pseudo_masks"]["methods"]
    # demo_proxy.yaml refines the pseudo-masks with a dense CRF; the table also has them unrefined
    assert set(methods) == {"box fill", "GrabCut", "zero-shot", "zero-shot + CRF", "fine-tuned", "fine-tuned + CRF"}
    # the trivial predictor: every pixel background, scored by the same evaluator on the same images
    data = work / "data"
    ids = read_id_list(data / "ImageSets/Segmentation/train.txt")
    for i in ids:
        write_mask(tmp_path / "bg" / f"{i}.png", np.zeros_like(read_mask(data / "SegmentationClass" / f"{i}.png")))
    background = evaluate_folders(pred_dir=tmp_path / "bg", gt_dir=data / "SegmentationClass", ids=ids).miou
    for name, m in methods.items():
        assert m["num_images"] == 3 and set(m["per_class_iou"]) >= {"background"}, name
    # the baselines do not depend on the (2-step, untrained) proxy: they must beat the trivial mask
    assert methods["box fill"]["mIoU"] > background + 5 and methods["GrabCut"]["mIoU"] > background + 5
    if with_stage2:
        s2 = report["stage2"]["methods"]
        assert len(s2) == 1 and all(m["mIoU"] is not None for m in s2.values())
    # the instance table: every method's instance pseudo-labels, scored against SegmentationObject
    inst_rows = report["instances"]["methods"]
    assert set(inst_rows) == set(methods)
    assert report["instances"]["ground_truth"]["gt_source"] == {"instances": 3, "class_components": 0}
    assert all(r["images"] == 3 and 0 <= r["AP"] <= 100 for r in inst_rows.values())
    assert inst_rows["box fill"]["AP50"] > 0  # filled boxes of the scenes' own objects overlap them
    assert "Instance pseudo-labels (mask AP)" in (work / "report.html").read_text()
    if with_stage2 and stage2_available(("mmcv", "mmengine", "mmdet")) is None:
        s2i = report["instances"]["stage2"]
        assert len(s2i) == 1 and all(0 <= r["AP"] <= 100 for r in s2i.values())
    # the fine-tuned instances rebuild the fine-tuned PNGs of the same run
    doc = read_document(work / "stage1" / "instances" / "pseudo_masks.shard0of1.json")
    for i in ids:
        assert np.array_equal(semantic_from_instances(doc, i), read_mask(work / "stage1" / "pseudo_masks" / f"{i}.png"))
    assert report["model"]["type"] == "proxy" and "stand-in" in " ".join(report["notes"])
    assert {t["name"] for t in report["targets"]} >= {"fine-tuned >= zero-shot + 5 mIoU points",
                                                      "fine-tuned + CRF > GrabCut"}
    assert report["overlays"]["ranked_by"] == "fine-tuned + CRF" and report["crf"]
    # a second run re-uses every step's outputs: nothing but the report is written again
    def outputs():
        return {p: p.stat().st_mtime_ns for p in work.rglob("*")
                if p.is_file() and p.parent != work and "logs" not in p.parts}

    before = outputs()
    assert demo_main(argv) == 0
    after = outputs()
    assert after.keys() == before.keys()
    rewritten = [str(p.relative_to(work)) for p in before if after[p] != before[p]]
    assert rewritten == [], rewritten
