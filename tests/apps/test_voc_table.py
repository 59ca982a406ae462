"""wsss-voc-table: our row from the result files the real commands write, the papers' rows from their YAML.

The stage-1 file is written by wsss-evaluate itself on two hand-made 4x4 images whose IoUs are counted by
hand below; the stage-2 files by wsss-stage2-test's own ``main`` (its config building and mmseg run
replaced by what they return: a config naming the checkpoint, a metrics dict as VOCIoUMetric reports it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import yaml

from wsss.apps import voc_table
from wsss.core.masks import write_mask

REPO = Path(__file__).resolve().parents[2]
COCO_CONFIG = str(REPO / "configs/stage2/deeplabv2_aspp_r101_voc_pseudo_cocoinit.py")
#: the figures the project's issue quotes (method -> val, test), which the papers' table must hold
ISSUE_FIGURES = {"ScribbleSup": (63.1, None), "Sun et al.": (77.2, 77.1), "FMA-WSSS": (83.1, 81.6),
                 "Semantic-Based Regularization (the thesis)": (77.6, 78.2)}
#: IoUs of the two images below: background 23 of 27 pixels (gt 23 counted, predicted 27), person 4 of 8
HAND_MIOU = (100 * 23 / 27 + 100 * 4 / 8) / 2


@pytest.fixture(scope="module")
def stage1_json(tmp_path_factory) -> Path:
    """wsss-evaluate --json on two images: a (left half background, right half person; predicted
    background on three columns) and b (all background, one ignored pixel; predicted background)."""
    from wsss.core.evaluation import cli

    root = tmp_path_factory.mktemp("stage1")
    gt_a = np.zeros((4, 4), np.uint8)
    gt_a[:, 2:] = 15
    pred_a = np.zeros((4, 4), np.uint8)
    pred_a[:, 3] = 15
    gt_b = np.zeros((4, 4), np.uint8)
    gt_b[0, 0] = 255
    for name, gt, pred in (("a", gt_a, pred_a), ("b", gt_b, np.zeros((4, 4), np.uint8))):
        write_mask(root / "gt" / f"{name}.png", gt)
        write_mask(root / "pred" / f"{name}.png", pred)
    out = root / "pseudo_miou.json"
    assert cli.main(["--pred", str(root / "pred"), "--gt", str(root / "gt"), "--json", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def stage2_jsons(tmp_path_factory) -> Dict[str, Path]:
    """wsss-stage2-test's result files of a val run (TTA, last checkpoint at 20k iterations), a test-split
    run (TTA + CRF, predictions only) and a val run of the val-picked checkpoint."""
    pytest.importorskip("mmseg", reason="the OpenMMLab stack is not installed (make setup)")
    from mmengine.config import Config

    from stage2_segnet import test as stage2_test

    work = tmp_path_factory.mktemp("stage2")
    metrics = {"val": {"aAcc": 94.2, "mIoU": 77.9, "mAcc": 86.0, "IoU.background": 93.1, "IoU.aeroplane": 88.0},
               "test": {}}
    patch = pytest.MonkeyPatch()
    try:
        for split, checkpoint, flags in (("val", "iter_20000.pth", ["--tta"]),
                                         ("test", "iter_20000.pth", ["--tta", "--crf", "--out-dir", str(work / "p")]),
                                         ("val", "best_mIoU_iter_16000.pth", ["--checkpoint", "best", "--json",
                                                                              str(work / "best.json")])):
            patch.setattr(stage2_test, "build_config", lambda args, launcher, c=checkpoint: Config(
                dict(load_from=str(work / c), test_dataloader=dict(dataset=dict(ann_file="unused.txt")))))
            patch.setattr(stage2_test, "run", lambda cfg, s=split: dict(metrics[s]))
            assert stage2_test.main([COCO_CONFIG, "--data", str(work), "--work-dir", str(work), "--split", split,
                                     *flags]) == 0
    finally:
        patch.undo()
    return {"val": work / "test_val_tta_metrics.json", "test": work / "test_test_tta_crf_metrics.json",
            "best": work / "best.json"}


def table_rows(text: str) -> Dict[str, List[str]]:
    """``{method: [cells after it]}`` of the printed Markdown table (the last row of a name wins)."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| method"):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            rows[cells[0]] = cells[1:]
    return rows


@pytest.mark.stage2
def test_our_row_holds_the_result_files_figures_and_setting(stage1_json, stage2_jsons, tmp_path, capsys):
    out = tmp_path / "table.json"
    assert voc_table.main(["--stage1", str(stage1_json), "--stage2-val", str(stage2_jsons["val"]),
                           "--stage2-test", str(stage2_jsons["test"]), "--test-miou", "78.0",
                           "--setting", "supervision=boxes+scribbles", "--out", str(out)]) == 0
    ours = table_rows(capsys.readouterr().out)["ours (this toolkit)"]
    supervision, pseudo, val, test, backbone, init, schedule, tta, crf, _ = ours
    assert supervision == "boxes+scribbles"
    assert pseudo == f"{HAND_MIOU:.1f} (2 images)"  # 67.6; not a VOC split, so its image count
    assert (val, test) == ("77.9", "78.0")
    assert backbone == "DeepLabV2Head, ResNet-101"
    assert init == "deeplabv1_resnet101-coco_mmseg.pth"
    assert schedule == "20k it, last iteration"
    assert (tta, crf) == ("yes", "val no, test yes")
    row = json.loads(out.read_text())["rows"][-1]
    assert row["pseudo_label_miou"] == pytest.approx(HAND_MIOU, abs=1e-3)
    assert (row["val_miou"], row["test_miou"]) == (77.9, 78.0)
    assert str(stage2_jsons["val"]) in row["source"] and "--test-miou" in row["source"]


@pytest.mark.stage2
def test_the_val_picked_checkpoint_and_a_train_aug_evaluation_are_named(stage2_jsons, tmp_path, capsys):
    from wsss.core.atomic import write_json
    from wsss.core.evaluation.metrics import SegmentationMetrics

    confusion = np.zeros((21, 22), np.int64)
    confusion[0, 0], confusion[15, 15], confusion[15, 0] = 90, 30, 10
    record = SegmentationMetrics.from_confusion(confusion, num_images=10582).to_dict()
    write_json(tmp_path / "pseudo_miou.json", record)
    out = tmp_path / "table.md"
    assert voc_table.main(["--stage1", str(tmp_path / "pseudo_miou.json"), "--stage2-val",
                           str(stage2_jsons["best"]), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    ours = table_rows(printed)["ours (this toolkit)"]
    # background 90 of 100, person 30 of 40
    assert ours[1] == f"{(90 + 75) / 2:.1f} (train_aug)"
    assert ours[6] == "best on val, at 16k it"
    assert (ours[3], ours[7], ours[8]) == ("", "no", "no")  # no test figure; val without TTA or CRF
    assert out.read_text() in printed


def test_papers_rows_are_the_yaml_table_and_hold_the_issues_figures(capsys):
    entries = yaml.safe_load((REPO / "configs/reports/voc2012_papers.yaml").read_text())
    assert voc_table.main([]) == 0
    text = capsys.readouterr().out
    lines = [ln for ln in text.splitlines() if ln.startswith("| ") and not ln.startswith("| method")]
    assert len(lines) == len(entries)  # no row of ours without result files
    for entry, line in zip(entries, lines):
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        assert cells[0] == entry["name"]
        for value, shown in ((entry.get("val_miou"), cells[3]), (entry.get("test_miou"), cells[4])):
            assert shown == ("" if value is None else f"{value:.1f}")
    rows = table_rows(text)
    for name, (val, test) in ISSUE_FIGURES.items():
        assert (rows[name][2], rows[name][3]) == (f"{val:.1f}", "" if test is None else f"{test:.1f}")
    for number, entry in enumerate(entries, 1):  # every figure comes with where it was read
        assert f"[{number}] " in text and entry["source"].split(":")[0] in text


@pytest.mark.stage2
def test_missing_or_wrong_files_are_named(stage2_jsons, tmp_path, capsys):
    missing = tmp_path / "test_val_tta_metrics.json"
    assert voc_table.main(["--stage2-val", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"error: {missing}: not found" in err and "wsss-stage2-test" in err
    assert voc_table.main(["--stage1", str(stage2_jsons["val"])]) == 2
    assert f"{stage2_jsons['val']}: not a wsss-evaluate --json file" in capsys.readouterr().err
    assert voc_table.main(["--stage2-val", str(stage2_jsons["test"])]) == 2
    assert "reports split 'test', not val" in capsys.readouterr().err
    papers = tmp_path / "papers.yaml"
    papers.write_text("- name: X\n  val: 70.0\n")
    assert voc_table.main(["--papers", str(papers)]) == 2
    assert f"{papers}: X: unknown keys ['val']" in capsys.readouterr().err
    assert voc_table.main(["--papers", str(tmp_path / "absent.yaml")]) == 2
    assert "absent.yaml: the papers' figures table not found" in capsys.readouterr().err


def test_the_pseudo_label_split_is_the_one_wsss_evaluate_records(tmp_path, capsys):
    """wsss-evaluate --data DIR --split train writes its split into --json; the table names it from
    there (two images, not a VOC list's count), with the mIoU of masks equal to the ground truth."""
    import shutil

    from wsss.core.evaluation import cli
    from wsss.core.synthetic import write_dataset

    root = write_dataset(tmp_path / "syn", domain="target", num_train=2, num_val=0, seed=3, size_range=(40, 50))
    shutil.copytree(root / "SegmentationClass", tmp_path / "pred")
    out = tmp_path / "pseudo_miou.json"
    assert cli.main(["--pred", str(tmp_path / "pred"), "--data", str(root), "--split", "train", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["split"] == "train"
    capsys.readouterr()
    assert voc_table.main(["--stage1", str(out)]) == 0
    assert table_rows(capsys.readouterr().out)["ours (this toolkit)"][1] == "100.0 (train)"  # after supervision
