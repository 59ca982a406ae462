"""Stage 2 for instances (mmdet): the smoke Mask R-CNN trains, resumes and tests (mask AP) on CPU on a
few real VOC images, whose training instances are the box-fill baseline's (weak pseudo-labels); the
full configs parse with VOC settings; bad inputs are refused in one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mmdet", reason="the OpenMMLab stack is not installed (make setup)")
pytest.importorskip("mmcv.ops", reason="mmcv's compiled ops are not installed (make setup)")

from conftest import link_voc_subset  # noqa: E402
from wsss.core import instances as inst  # noqa: E402
from wsss.core.evaluation.instances import evaluate_instances, voc_ground_truth  # noqa: E402
from stage1_pseudolabel.baselines.instances import run_instance_baseline  # noqa: E402

pytestmark = [pytest.mark.stage2, pytest.mark.filterwarnings("ignore:pkg_resources is deprecated")]

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs/stage2/tiny_mask_rcnn_r18_smoke.py"
N_TRAIN, N_VAL = 6, 3


@pytest.fixture(scope="module")
def mini_voc(voc_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("voc")
    ids = link_voc_subset(voc_root, root, {"train": N_TRAIN, "val": N_VAL},
                          subdirs=("JPEGImages", "SegmentationClass", "Annotations", "scribbles", "points"))
    pseudo = root / "box_instances.json"
    run_instance_baseline("box", root, pseudo, split="train")
    return dict(root=root, pseudo=pseudo, ids=ids)


def _cli(*args, check=True) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "stage2_segnet.instances", *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    if check:
        assert proc.returncode == 0, f"failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
    return proc


@pytest.mark.slow
def test_mask_rcnn_smoke_train_resume_test(mini_voc, tmp_path, capfd):
    from stage2_segnet.instances import main

    data, work = mini_voc["root"], tmp_path / "work"
    common = [TINY, "--data", data, "--work-dir", work]
    # 1) two iterations, checkpoint at 2 (the console command, in its own process); the val ground
    #    truth is written from the VOC split
    _cli("train", *common, "--pseudo", mini_voc["pseudo"], "--resume", "--cfg-options", "train_cfg.max_iters=2")
    assert (work / "iter_2.pth").is_file()
    gt_file = work / "gt_val_instances.json"
    gt = inst.read_document(gt_file)
    assert [im["name"] for im in gt["images"]] == mini_voc["ids"]["val"]
    assert evaluate_instances(gt, voc_ground_truth(data, mini_voc["ids"]["val"]))["AP"] == 100.0
    # 2) the same command resumes from iter_2 (checkpoint loaded with weights_only) and validates (mask
    #    AP); in-process from here (the entry point's main), which saves two imports of mmdet
    capfd.readouterr()
    assert main(["train", *map(str, common), "--pseudo", str(mini_voc["pseudo"]), "--resume"]) == 0
    out = capfd.readouterr()
    log = out.out + out.err
    assert "resumed" in log and "iter: 2" in log, log[-3000:]
    assert (work / "iter_4.pth").is_file()
    assert "coco/segm_mAP" in log
    # 3) test: COCO mask AP on the val instances, written atomically
    assert main(["test", *map(str, common), "--checkpoint", str(work / "iter_4.pth")]) == 0
    record = json.loads((work / "test_val_instance_metrics.json").read_text())
    m = record["metrics"]
    for key in ("coco/segm_mAP", "coco/segm_mAP_50", "coco/segm_mAP_75", "coco/bbox_mAP"):
        assert 0.0 <= m[key] <= 1.0, (key, m)
    assert record["ground_truth"] == str(gt_file.resolve())
    # mmdet's test-time mask AP equals the toolkit's evaluator on the same predictions (COCO results file)
    results = json.loads(Path(record["predictions"]).read_text())
    assert results, "the smoke model keeps every detection (score_thr 0)"
    pred = {"images": gt["images"], "annotations": [dict(r, id=k + 1) for k, r in enumerate(results)]}
    ours = evaluate_instances(pred, gt)
    assert ours["pred_objects"] == len(results)
    assert ours["AP"] == pytest.approx(100 * m["coco/segm_mAP"], abs=0.051)
    assert ours["AP50"] == pytest.approx(100 * m["coco/segm_mAP_50"], abs=0.051)


def test_instance_clis_refuse_bad_input_in_one_line(mini_voc, tmp_path, capsys):
    # In-process (the entry point's main, as the console script calls it): the same exit code and
    # stderr as a subprocess, without three imports of mmdet.
    from stage2_segnet.instances import main

    def cli(*args):
        code = main([str(a) for a in args])
        return code, capsys.readouterr().err

    data = mini_voc["root"]
    code, err = cli("train", TINY, "--data", data, "--work-dir", tmp_path / "w", "--pseudo", tmp_path / "none.json")
    assert code == 2 and err.strip().splitlines()[-1].startswith("error:"), err[-2000:]
    assert "none.json" in err and "Traceback" not in err
    bad = tmp_path / "bad.json"
    doc = inst.read_document(mini_voc["pseudo"])
    doc["images"][0]["file_name"] = "missing.jpg"
    inst.write_document(bad, doc)
    code, err = cli("train", TINY, "--data", data, "--work-dir", tmp_path / "w2", "--pseudo", bad)
    assert code == 2 and "missing.jpg" in err, err[-2000:]
    code, err = cli("test", TINY, "--data", data, "--work-dir", tmp_path / "empty")
    assert code == 2 and "no checkpoint" in err, err[-2000:]


@pytest.mark.parametrize("name", ["mask_rcnn_r50_fpn_voc_instances", "mask2former_r50_voc_instances"])
def test_full_instance_configs_parse_with_voc_settings(name, mini_voc, tmp_path):
    from mmengine.config import Config

    from stage2_segnet.checks import check_pretrained, pretrained_paths

    cfg = Config.fromfile(str(REPO / f"configs/stage2/{name}.py"))
    assert len(cfg.train_dataloader.dataset.metainfo["classes"]) == 20
    assert cfg.train_dataloader.dataset.type == "CocoDataset"
    assert "segm" in cfg.val_evaluator.metric and cfg.val_evaluator.type == "CocoMetric"
    assert cfg.val_evaluator.ann_file == cfg.val_dataloader.dataset.ann_file
    heads = ([cfg.model.roi_head.bbox_head.num_classes, cfg.model.roi_head.mask_head.num_classes]
             if "roi_head" in cfg.model else [cfg.model.panoptic_head.num_things_classes])
    assert heads and all(n == 20 for n in heads)
    paths = pretrained_paths(cfg.model)
    assert paths == ["data/checkpoints/resnet50-0676ba61.pth"]
    cfg.model.backbone.init_cfg.checkpoint = str(tmp_path / "resnet50-0676ba61.pth")
    with pytest.raises(FileNotFoundError, match=r"resnet50-0676ba61\.pth not found.*wget"):
        check_pretrained(cfg.model)
    # the network builds (random weights) with a 20-class output
    from mmengine.registry import init_default_scope
    from mmdet.registry import MODELS

    from stage2_segnet.register import register_all

    register_all()
    init_default_scope("mmdet")
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    if "roi_head" in cfg.model:
        assert model.roi_head.bbox_head.fc_cls.out_features == 21  # 20 classes + background
    else:
        assert model.panoptic_head.cls_embed.out_features == 21  # 20 classes + "no object"


def _renumbered(docs, to_class):
    """One COCO document from several (image ids renumbered), categories mapped by ``to_class``."""
    out = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "animal"}, {"id": 2, "name": "thing"}]}
    for doc in docs:
        offset = len(out["images"])
        for im in doc["images"]:
            out["images"].append(dict(im, id=im["id"] + offset))
        for a in doc["annotations"]:
            out["annotations"].append(dict(a, id=len(out["annotations"]) + 1, image_id=a["image_id"] + offset,
                                           category_id=to_class(a["category_id"])))
    return out


def test_instance_network_on_a_described_dataset_with_its_own_classes(mini_voc, tmp_path):
    """--dataset: a COCO-described dataset with two classes of its own ("animal", "thing") trains the
    smoke Mask R-CNN with 2-class heads and tests it on the description's ground truth (in-process)."""
    import yaml

    from stage2_segnet.instances import build_test_config, build_train_config, main, parse_test_args, parse_train_args

    data = mini_voc["root"]
    animals = {3, 8, 10, 12, 13, 17}  # bird, cat, cow, dog, horse, sheep

    def to_class(c):
        return 1 if c in animals else 2

    train_doc = inst.read_document(mini_voc["pseudo"])
    val_doc = voc_ground_truth(data, mini_voc["ids"]["val"])
    coco = tmp_path / "instances.json"
    coco.write_text(json.dumps(_renumbered([train_doc, val_doc], to_class)))
    pseudo = tmp_path / "pseudo.json"
    pseudo.write_text(json.dumps(_renumbered([train_doc], to_class)))
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "val.txt").write_text("".join(f"{i}\n" for i in mini_voc["ids"]["val"]))
    description = tmp_path / "mine.yaml"
    description.write_text(yaml.safe_dump({
        "root": str(data), "images": "JPEGImages", "classes": ["background", "animal", "thing"],
        "sources": [{"format": "coco", "path": str(coco)}], "ground_truth": {"format": "coco", "path": str(coco)},
        "splits": {"val": str(lists / "val.txt")}}))
    work = tmp_path / "work"
    common = [str(TINY), "--dataset", str(description), "--work-dir", str(work)]
    cfg = build_train_config(parse_train_args(common + ["--pseudo", str(pseudo)]), "none")
    assert cfg.model.roi_head.bbox_head.num_classes == 2 and cfg.model.roi_head.mask_head.num_classes == 2
    assert cfg.train_dataloader.dataset.metainfo["classes"] == ("animal", "thing")
    gt = inst.read_document(work / "gt_val_instances.json")
    assert [im["name"] for im in gt["images"]] == mini_voc["ids"]["val"]
    assert {c["name"] for c in gt["categories"]} == {"animal", "thing"}
    # VOC-category pseudo-labels do not fit the description: refused before training, in one line
    assert main(["train"] + common + ["--pseudo", str(mini_voc["pseudo"])]) == 2
    assert main(["train"] + common + ["--pseudo", str(pseudo), "--cfg-options", "train_cfg.max_iters=2"]) == 0
    assert (work / "iter_2.pth").is_file()
    assert main(["test"] + common + ["--checkpoint", str(work / "iter_2.pth")]) == 0
    record = json.loads((work / "test_val_instance_metrics.json").read_text())
    assert 0.0 <= record["metrics"]["coco/segm_mAP"] <= 1.0
    results = json.loads(Path(record["predictions"]).read_text())
    assert results and {r["category_id"] for r in results} <= {1, 2}
    # the full Mask2Former config takes the description's class count too
    m2f = build_test_config(parse_test_args([str(REPO / "configs/stage2/mask2former_r50_voc_instances.py"),
                                             "--dataset", str(description), "--work-dir", str(work),
                                             "--checkpoint", str(work / "iter_2.pth")]), "none")
    head = m2f.model.panoptic_head
    assert head.num_things_classes == 2 and len(head.loss_cls.class_weight) == 3
    assert m2f.model.panoptic_fusion_head.num_things_classes == 2


def test_instance_network_reads_images_in_the_orientation_stage_1_used(tmp_path):
    """--dataset: a COCO photo stored turned with an EXIF rotation, whose JSON describes its stored pixels,
    reaches the instance network as stored (as stage 1 and the ground truth saw it), its masks aligned;
    mmcv's own loader (OpenCV) would turn it. An upright photo is read unchanged."""
    import numpy as np
    import yaml
    from mmcv.transforms import LoadImageFromFile
    from mmdet.registry import DATASETS
    from PIL import Image

    from stage2_segnet.instances import build_train_config, parse_train_args
    from wsss.core.weak_labels.images import read_image

    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    stored = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)  # stored 20 x 30; viewers show 30 x 20
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(images / "turned.jpg", exif=exif, quality=95)
    Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(images / "upright.jpg", quality=95)
    doc = {"images": [{"id": 1, "file_name": "turned.jpg", "height": 20, "width": 30},
                      {"id": 2, "file_name": "upright.jpg", "height": 24, "width": 32}],
           "categories": [{"id": 1, "name": "thing"}],
           "annotations": [{"id": i, "image_id": i, "category_id": 1, "bbox": [4, 3, 12, 9], "area": 108, "iscrowd": 0,
                            "segmentation": [[4, 3, 16, 3, 16, 12, 4, 12]]} for i in (1, 2)]}
    coco = tmp_path / "instances.json"
    coco.write_text(json.dumps(doc))
    description = tmp_path / "turned.yaml"
    description.write_text(yaml.safe_dump({
        "root": str(tmp_path), "images": "images", "classes": ["background", "thing"],
        "sources": [{"format": "coco", "path": str(coco)}], "ground_truth": {"format": "coco", "path": str(coco)}}))
    args = parse_train_args([str(TINY), "--dataset", str(description), "--work-dir", str(tmp_path / "work"),
                             "--pseudo", str(coco)])
    cfg = build_train_config(args, "none")
    for loader in ("train_dataloader", "val_dataloader"):
        dataset = DATASETS.build(cfg[loader].dataset)
        infos = {Path(dataset.get_data_info(i)["img_path"]).name: dataset.get_data_info(i) for i in range(len(dataset))}
        assert infos["turned.jpg"]["orientation"] == "stored" and "orientation" in infos["upright.jpg"]
        load, annotations = dataset.pipeline.transforms[:2] if loader == "train_dataloader" else \
            (dataset.pipeline.transforms[0], dataset.pipeline.transforms[2])
        for name, (h, w) in (("turned.jpg", (20, 30)), ("upright.jpg", (24, 32))):
            out = annotations(load(dict(infos[name])))
            assert out["img"].shape[:2] == (h, w) == out["ori_shape"] == out["gt_masks"].masks.shape[1:]
            np.testing.assert_array_equal(out["img"], read_image(images / name, orientation=infos[name]["orientation"])[..., ::-1])
    # the baseline this replaces: OpenCV applies the EXIF rotation, and the JSON's masks no longer fit
    assert LoadImageFromFile()(dict(img_path=str(images / "turned.jpg")))["img"].shape[:2] == (30, 20)
