"""A reduced, fast run of the demo flow: report files exist and every method has a number in [0, 100]."""

from __future__ import annotations

import json

import pytest

from stage1_pseudolabel.demo import main as demo_main
from stage1_pseudolabel.demo import stage2_available


@pytest.mark.slow
def test_demo_flow_small(tmp_path):
    work = tmp_path / "demo"
    argv = ["--work-dir", str(work), "--proxy-checkpoint", str(tmp_path / "proxy" / "proxy_sam.pth"),
            "--proxy-steps", "2", "--proxy-eval-scenes", "2", "--num-train", "3", "--num-val", "2",
            "--stage1-max-steps", "1", "--stage2-iters", "2", "--stage2-batch", "2", "--threads", "1",
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
    for name, m in methods.items():
        assert 0.0 <= m["mIoU"] <= 100.0, name
        assert m["num_images"] == 3
        assert all(v is None or 0.0 <= v <= 100.0 for v in m["per_class_iou"].values())
    if with_stage2:
        s2 = report["stage2"]["methods"]
        assert len(s2) == 2 and all(0.0 <= m["mIoU"] <= 100.0 for m in s2.values())
    assert report["model"]["type"] == "proxy" and "stand-in" in " ".join(report["notes"])
    assert {t["name"] for t in report["targets"]} >= {"fine-tuned >= zero-shot + 5 mIoU points",
                                                      "fine-tuned + CRF > GrabCut"}
    assert report["overlays"]["ranked_by"] == "fine-tuned + CRF" and report["crf"]
    # a second run re-uses every step's outputs
    assert demo_main(argv) == 0
