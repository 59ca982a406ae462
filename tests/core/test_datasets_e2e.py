"""A non-VOC class set through both stages on CPU, from one dataset description.

Synthetic scenes are written with three classes that are not VOC's (their weak labels as a LabelMe
folder, their ground truth as PNGs, JPEG and PNG images mixed in one folder); stage 1 (tiny random SAM) writes pseudo-masks, the evaluator names
the dataset's classes, and the tiny stage-2 DeepLabV3+ trains and tests with 4 output classes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from wsss.core.frames import voc_box_to_pixel
from wsss.core.synthetic import write_dataset
from wsss.core.weak_labels.classes import VOC_CLASSES

pytest.importorskip("mmseg", reason="the OpenMMLab stack is not installed (make setup)")

pytestmark = [pytest.mark.stage2, pytest.mark.filterwarnings("ignore:pkg_resources is deprecated")]

REPO = Path(__file__).resolve().parents[2]
CLASSES = ["background", "rock", "paper", "scissors"]
VOC_IDS = (1, 3, 8)  # drawn as VOC's aeroplane, bird, cat; renamed to CLASSES[1:]
COLOURS = {"rock": [200, 30, 30], "paper": [30, 200, 30], "scissors": [30, 30, 200]}


def _cli(module: str, *args) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{module} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
    return proc


def _main(module: str, *args, capfd) -> str:
    """A console entry point's ``main`` in this process (saves the imports of a new one); its output."""
    import importlib

    capfd.readouterr()
    assert importlib.import_module(module).main([str(a) for a in args]) == 0, capfd.readouterr().err[-6000:]
    out = capfd.readouterr()
    return out.out + out.err


@pytest.fixture(scope="module")
def rps(tmp_path_factory) -> dict:
    """Synthetic scenes re-labelled rock / paper / scissors: LabelMe weak labels, PNG ground truth."""
    root = tmp_path_factory.mktemp("rps")
    write_dataset(root, domain="target", num_train=4, num_val=2, seed=3, size_range=(96, 128), classes=VOC_IDS)
    rename = {VOC_CLASSES[v]: CLASSES[k + 1] for k, v in enumerate(VOC_IDS)}
    lut = np.full(256, 255, np.uint8)
    lut[0] = 0
    for k, v in enumerate(VOC_IDS):
        lut[v] = k + 1
    (root / "gt").mkdir()
    (root / "labelme").mkdir()
    for image_id in ("target_train_00001", "target_val_00000"):  # mixed extensions in one image folder
        jpg = root / "JPEGImages" / f"{image_id}.jpg"
        Image.open(jpg).save(jpg.with_suffix(".png"))
        jpg.unlink()
    for xml_path in sorted((root / "Annotations").glob("*.xml")):
        image_id = xml_path.stem
        image_name = next(p.name for p in (root / "JPEGImages").glob(f"{image_id}.*"))
        gt = np.asarray(Image.open(root / "SegmentationClass" / f"{image_id}.png"))
        Image.fromarray(lut[gt]).save(root / "gt" / f"{image_id}.png")  # values 0..3 (grey PNG)
        shapes = []
        for obj in ET.parse(xml_path).getroot().findall("object"):
            b = obj.find("bndbox")
            x0, y0, x1, y1 = voc_box_to_pixel(*(float(b.findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax")))
            shapes.append({"label": rename[obj.findtext("name").strip()], "points": [[x0, y0], [x1 - 1, y1 - 1]],
                           "shape_type": "rectangle"})
        (root / "labelme" / f"{image_id}.json").write_text(json.dumps(
            {"imagePath": f"../JPEGImages/{image_name}", "imageHeight": int(gt.shape[0]),
             "imageWidth": int(gt.shape[1]), "shapes": shapes}))
    description = root / "rps.yaml"
    description.write_text(yaml.safe_dump({
        "name": "rock_paper_scissors", "root": str(root), "images": "JPEGImages", "classes": CLASSES,
        "colours": COLOURS, "sources": [{"format": "labelme", "path": "labelme"}],
        "ground_truth": {"format": "png", "path": "gt"},
        "splits": {"train": "ImageSets/Segmentation/train.txt", "val": "ImageSets/Segmentation/val.txt"},
    }))
    return {"root": root, "description": description}


def test_three_classes_through_both_stages(rps, tmp_path, capfd):
    # each stage's first command runs as a console command, in its own process; the next ones run
    # in-process (their entry points' main), which saves the imports of a new process
    stage1 = tmp_path / "stage1"
    common = ["--config", REPO / "configs/stage1/tiny_random.yaml", "--dataset", rps["description"],
              "--work-dir", stage1, "--set", "data.weak_labels=[boxes]", "--set", "prompts.mode=box",
              "--set", "train.max_steps=2", "--set", "superpixels={n_segments: 30}"]
    _cli("stage1_pseudolabel.pipeline.embed", *common, "--split", "train", "--no-progress")
    _main("stage1_pseudolabel.pipeline.train", *common, "--split", "train", capfd=capfd)
    _main("stage1_pseudolabel.pipeline.generate", *common, "--split", "train", "--no-progress", capfd=capfd)
    masks = sorted((stage1 / "pseudo_masks").glob("*.png"))
    train_ids = (rps["root"] / "ImageSets/Segmentation/train.txt").read_text().split()
    assert [m.stem for m in masks] == sorted(train_ids)
    for m in masks:
        with Image.open(m) as im:
            values = np.unique(np.asarray(im))
            palette = np.asarray(im.getpalette(), np.uint8).reshape(-1, 3)
        assert set(values.tolist()) <= {0, 1, 2, 3, 255}
        assert palette[1].tolist() == COLOURS["rock"] and palette[3].tolist() == COLOURS["scissors"]

    out = _main("wsss.core.evaluation.cli", "--pred", stage1 / "pseudo_masks", "--dataset", rps["description"],
                "--split", "train", "--json", tmp_path / "miou.json", capfd=capfd)
    report = json.loads((tmp_path / "miou.json").read_text())
    assert list(report["per_class_iou"]) == CLASSES and report["num_images"] == len(train_ids)
    assert all(name in out for name in CLASSES) and "aeroplane" not in out

    stage2 = tmp_path / "stage2"
    config = REPO / "configs/stage2/tiny_deeplabv3plus_r18_smoke.py"
    s2 = ["--config", config, "--dataset", rps["description"], "--work-dir", stage2]
    _cli("stage2_segnet.train", *s2, "--pseudo", stage1 / "pseudo_masks", "--cfg-options",
         "train_cfg.max_iters=2", "train_cfg.val_interval=2", "default_hooks.checkpoint.interval=2")
    dumped = (stage2 / "tiny_deeplabv3plus_r18_smoke.py").read_text()
    assert "num_classes=4" in dumped and "num_classes=21" not in dumped
    preds = tmp_path / "preds"
    log = _main("stage2_segnet.test", *s2, "--checkpoint", stage2 / "iter_2.pth", "--split", "val",
                "--out-dir", preds, capfd=capfd)
    record = json.loads((stage2 / "test_val_metrics.json").read_text())
    assert "mIoU" in record["metrics"]
    assert all(name in log for name in CLASSES[1:]) and "aeroplane" not in log  # mmseg's per-class table
    val_ids = (rps["root"] / "ImageSets/Segmentation/val.txt").read_text().split()
    assert sorted(p.stem for p in preds.glob("*.png")) == sorted(val_ids)
    for p in preds.glob("*.png"):
        assert set(np.unique(np.asarray(Image.open(p))).tolist()) <= {0, 1, 2, 3}

    # the HTML report: the per-class table and the legend name the dataset's classes
    from wsss.apps.report import build_report

    build_report(tmp_path / "report", pseudo_metrics={"stage 1 (tiny random SAM)": report},
                 stage2_metrics={"stage 2": record["metrics"]}, classes=CLASSES)
    html = (tmp_path / "report" / "report.html").read_text()
    assert all(name in html for name in CLASSES[1:]) and "aeroplane" not in html


@pytest.mark.parametrize("config", ["tiny_deeplabv3plus_r18_smoke.py", "tiny_mask2former_r18_smoke.py",
                                    "deeplabv2_aspp_r101_voc_pseudo.py"])
def test_apply_dataset_sets_every_head(rps, tmp_path, config):
    """num_classes of every head (and Mask2Former's per-class loss weights), the class names, palette and
    label reader of every loader come from the description; nothing of VOC's 21 is left."""
    from mmengine.config import Config

    from stage2_segnet.launch import apply_dataset

    cfg = Config.fromfile(str(REPO / "configs/stage2" / config))
    info = apply_dataset(cfg, str(rps["description"]), work_dir=str(tmp_path),
                         loaders=["train_dataloader", "val_dataloader", "test_dataloader"],
                         splits={"train_dataloader": "train", "val_dataloader": "val", "test_dataloader": "val"})
    assert info["num_foreground"] == 3
    found = []

    def walk(node):
        if isinstance(node, dict):
            if "num_classes" in node:
                found.append(node["num_classes"])
            if isinstance(node.get("class_weight"), list):
                assert len(node["class_weight"]) == 5  # 4 classes + "no object"
            for v in node.values():
                walk(v)
        elif isinstance(node, (list, tuple)):
            for v in node:
                walk(v)

    walk(cfg.model.to_dict() if hasattr(cfg.model, "to_dict") else dict(cfg.model))
    assert found and set(found) == {4}
    for name in ("train_dataloader", "val_dataloader", "test_dataloader"):
        ds = cfg[name].dataset
        assert list(ds.metainfo["classes"]) == CLASSES
        assert [list(c) for c in ds.metainfo["palette"]][1] == COLOURS["rock"]
        assert all(t["num_foreground"] == 3 for t in ds.pipeline if t["type"] == "LoadVOCLabel")
        assert "LoadImageFromFile" not in [t["type"] for t in ds.pipeline]  # LoadDatasetImage instead
        packs = [t for t in ds.pipeline if t["type"] == "PackSegInputs"]
        assert packs and all("orientation" in t["meta_keys"] for t in packs)  # for the metric's CRF
        assert Path(ds.ann_file).name == ("train.txt" if name == "train_dataloader" else "val.txt")


def test_stage2_reads_images_in_the_annotation_orientation(tmp_path):
    """A photo stored turned with an EXIF tag: stage 2 reads it as the annotation (and stage 1) did."""
    from stage2_segnet.datasets import LoadDatasetImage
    from wsss.core.weak_labels.images import read_image

    upright = np.random.default_rng(0).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.ascontiguousarray(np.rot90(upright, 1))).save(tmp_path / "p.png", exif=exif)
    load = LoadDatasetImage()
    for orientation, shape in (("exif", (6, 9)), ("stored", (9, 6))):
        out = load.transform({"img_path": str(tmp_path / "p.png"), "orientation": orientation})
        assert out["img"].shape[:2] == shape == out["ori_shape"] == out["img_shape"]
        np.testing.assert_array_equal(out["img"], read_image(tmp_path / "p.png", orientation=orientation)[..., ::-1])
    np.testing.assert_array_equal(load.transform({"img_path": str(tmp_path / "p.png"), "orientation": "exif"})["img"],
                                  upright[..., ::-1])


def test_stage2_crf_reads_the_image_in_the_prediction_orientation(tmp_path):
    """VOCIoUMetric's CRF (test --crf) reads the image in the orientation packed with the prediction,
    so a photo stored turned is refined against the pixels the network saw."""
    import torch

    from stage2_segnet.metrics import VOCIoUMetric

    upright = np.random.default_rng(0).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.ascontiguousarray(np.rot90(upright, 1))).save(tmp_path / "p.png", exif=exif)
    metric = VOCIoUMetric(crf={})
    logits = torch.zeros(3, 9, 6)  # the stored view: 9 x 6
    logits[1, :4] = 5.0
    sample = {"img_path": str(tmp_path / "p.png"), "seg_logits": {"data": logits}, "orientation": "stored"}
    refined = metric._refine(sample)
    assert refined.shape == (9, 6) and set(refined.unique().tolist()) <= {0, 1, 2}
    with pytest.raises(ValueError, match="image is"):  # read as viewers show it: 6 x 9, not the prediction's
        metric._refine(dict(sample, orientation="exif"))


def test_stage2_without_described_ground_truth_trains_without_validation(rps, tmp_path):
    """No ground_truth, no splits: stage 2 trains on every annotated image, validates on nothing, and
    its test writes predictions only."""
    from stage2_segnet import test as test_cli
    from stage2_segnet import train as train_cli

    values = yaml.safe_load(rps["description"].read_text())
    del values["ground_truth"], values["splits"]
    description = tmp_path / "no_gt.yaml"
    description.write_text(yaml.safe_dump(values))
    config = str(REPO / "configs/stage2/tiny_deeplabv3plus_r18_smoke.py")
    common = [config, "--dataset", str(description), "--work-dir", str(tmp_path / "w")]
    cfg = train_cli.build_config(train_cli.parse_args(common + ["--pseudo", str(tmp_path / "masks")]), "none")
    assert cfg.val_dataloader is None and cfg.val_cfg is None and cfg.test_dataloader is None
    listed = Path(cfg.train_dataloader.dataset.ann_file).read_text().split()
    assert sorted(listed) == sorted(p.stem for p in (rps["root"] / "labelme").glob("*.json"))
    (tmp_path / "w" / "iter_1.pth").write_bytes(b"")
    with pytest.raises(ValueError, match="no ground truth: give --out-dir"):
        test_cli.build_config(test_cli.parse_args(common + ["--checkpoint", str(tmp_path / "w" / "iter_1.pth")]), "none")
    cfg = test_cli.build_config(test_cli.parse_args(common + ["--checkpoint", str(tmp_path / "w" / "iter_1.pth"),
                                                              "--out-dir", str(tmp_path / "p")]), "none")
    assert cfg.test_evaluator.format_only and not cfg.test_dataloader.dataset.require_labels
    assert "LoadVOCLabel" not in [t["type"] for t in cfg.test_dataloader.dataset.pipeline]


def test_ablation_on_a_described_dataset(rps, tmp_path):
    """wsss-ablation --dataset: one run with all active constraints and one without each, scored on the
    description's ground truth (the same numbers wsss-evaluate --dataset prints for those masks)."""
    from wsss.apps.ablation import build_parser, run
    from wsss.core.datasets import DescribedDataset
    from wsss.core.evaluation import evaluate_described

    work = tmp_path / "abl"
    args = build_parser().parse_args([
        "--config", str(REPO / "configs/stage1/tiny_random.yaml"), "--dataset", str(rps["description"]),
        "--work-dir", str(work), "--checkpoint", "none", "--model-type", "vit_b", "--no-progress", "--threads", "1",
        "--set", "data.weak_labels=[boxes]", "--set", "prompts.mode=box", "--set", "train.max_steps=1",
        "--set", "loss={background: 1, box_tightness: 1, scribbles: 0, neighbourhood: 0, border_precision: 0}",
    ])
    assert run(args) == 0
    rows = json.loads((work / "ablation.json").read_text())["rows"]
    assert [r["variant"] for r in rows] == ["all constraints", "without background", "without box_tightness"]
    dataset = DescribedDataset(rps["description"], split="train")
    masks = work / "without_background" / "pseudo_masks"
    expected = evaluate_described(dataset, pred_dir=masks, ids=[i for i in dataset.ids if dataset.has_gt(i)]).miou
    assert rows[1]["mIoU"] == pytest.approx(round(expected, 2))


def test_instance_ground_truth_of_a_described_dataset(rps, tmp_path):
    """wsss-evaluate-instances --dataset: a PNG ground truth gives the class components (OpenCV's
    8-connected components of each class of the PNG, the small ones crowd), and the ground truth scored
    against itself is 100 AP."""
    import cv2

    from wsss.core import instances as inst
    from wsss.core.datasets import DescribedDataset
    from wsss.core.evaluation.instances import MIN_COMPONENT_AREA, described_ground_truth, evaluate_instances, image_name

    dataset = DescribedDataset(rps["description"], split="val")
    ids = [i for i in dataset.ids if dataset.has_gt(i)]
    truth = described_ground_truth(dataset, ids)
    assert truth["info"]["gt_source"] == {"instances": 0, "class_components": len(ids)}
    assert [image_name(im) for im in truth["images"]] == ids
    expected = []
    for i in ids:
        class_map = np.asarray(Image.open(rps["root"] / "SegmentationClass" / f"{i}.png"))
        for c in set(np.unique(class_map)) - {0, 255}:
            n, labels, stats, _ = cv2.connectedComponentsWithStats((class_map == c).astype(np.uint8), connectivity=8)
            expected += [(int(a), int(a) < MIN_COMPONENT_AREA) for a in stats[1:n, cv2.CC_STAT_AREA]]
    areas = sorted((int(a["area"]), bool(a.get("iscrowd", 0))) for a in truth["annotations"])
    assert areas == sorted(expected) and areas
    assert {a["category_id"] for a in truth["annotations"]} <= {1, 2, 3}
    inst.write_document(tmp_path / "gt.json", truth)
    out = _cli("wsss.core.evaluation.instances", "--pred", tmp_path / "gt.json", "--dataset", rps["description"],
               "--json", tmp_path / "ap.json")
    assert "gt.json" in out.stdout
    assert json.loads((tmp_path / "ap.json").read_text())["gt.json"]["AP"] == pytest.approx(100.0)
    assert evaluate_instances(truth, truth)["AP"] == pytest.approx(100.0)


def test_bench_quality_on_a_described_dataset(rps, tmp_path):
    """wsss-demo --bench-quality --dataset: baselines, stage 1 and the report on a dataset of one's own,
    scored on its ground truth with its class names (the box-fill row equals wsss-evaluate's numbers)."""
    from wsss.apps.demo import main as demo_main
    from wsss.core.datasets import DescribedDataset
    from wsss.core.evaluation import evaluate_described

    work = tmp_path / "bq"
    argv = ["--bench-quality", "--dataset", str(rps["description"]), "--split", "train", "--work-dir", str(work),
            "--proxy-checkpoint", str(tmp_path / "proxy" / "proxy_sam.pth"), "--proxy-steps", "2",
            "--proxy-eval-scenes", "2", "--stage1-max-steps", "1", "--weak-labels", "boxes", "--threads", "1",
            "--no-progress", "--device", "cpu"]
    assert demo_main(argv) == 0
    report = json.loads((work / "report.json").read_text())
    methods = report["pseudo_masks"]["methods"]
    assert {"box fill", "GrabCut", "zero-shot", "fine-tuned"} <= set(methods)
    dataset = DescribedDataset(rps["description"], split="train")
    ids = [i for i in dataset.ids if dataset.has_gt(i)]
    assert all(m["num_images"] == len(ids) for m in methods.values())
    expected = evaluate_described(dataset, pred_dir=work / "baselines" / "box", ids=ids)
    assert methods["box fill"]["mIoU"] == pytest.approx(expected.miou, abs=0.01)
    assert set(methods["box fill"]["per_class_iou"]) <= set(CLASSES) and "rock" in methods["box fill"]["per_class_iou"]
    assert report["instances"]["ground_truth"]["gt_source"] == {"instances": 0, "class_components": len(ids)}
    assert "rock" in (work / "report.html").read_text()
    assert demo_main(["--dataset", str(rps["description"]), "--work-dir", str(work)]) == 2  # needs --bench-quality


def test_instance_baselines_read_a_described_dataset(rps, tmp_path):
    """wsss-baselines --instances --dataset: one instance per box, in the description's images."""
    from wsss.core import instances as inst
    from wsss.core.datasets import DescribedDataset

    out = tmp_path / "box"
    _cli("stage1_pseudolabel.baselines.cli", "--method", "box", "--dataset", rps["description"], "--split", "train",
         "--out-dir", out, "--instances", "--no-progress")
    doc = inst.read_document(out / "instances.json")
    dataset = DescribedDataset(rps["description"], split="train")
    assert sorted(im["name"] for im in doc["images"]) == sorted(dataset.ids)
    boxes = sum(len(dataset.load(i).boxes) for i in dataset.ids)
    assert len(doc["annotations"]) == boxes and {a["category_id"] for a in doc["annotations"]} <= {1, 2, 3}
