"""Stage 2 (mmseg): CPU smoke runs of both network families, checkpoint / resume / test under
torch >= 2.6, the pseudo-mask checks, and the small pieces (CRF, DeepLab v2 head, checkpoint loader).

The smoke runs use a handful of real VOC images (``WSSS_VOC_ROOT``): training labels are box-filled
pseudo-masks made from the ground truth (each class's bounding box filled, as a weak pseudo-label),
and the metric is computed against the real ``SegmentationClass`` of val images.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("mmseg", reason="the OpenMMLab stack is not installed (make setup)")
pytest.importorskip("mmcv.ops", reason="mmcv's compiled ops are not installed (make setup)")

from conftest import link_voc_subset  # noqa: E402
from wsss.core.masks import read_mask, write_mask  # noqa: E402

pytestmark = [pytest.mark.stage2, pytest.mark.filterwarnings("ignore:pkg_resources is deprecated")]

REPO = Path(__file__).resolve().parents[2]
TINY_DEEPLAB = REPO / "configs/stage2/tiny_deeplabv3plus_r18_smoke.py"
TINY_M2F = REPO / "configs/stage2/tiny_mask2former_r18_smoke.py"
N_TRAIN, N_VAL = 6, 3


def box_filled(gt: np.ndarray) -> np.ndarray:
    """A weak pseudo-mask: every class's bounding box filled with the class, largest first."""
    out = np.zeros_like(gt)
    classes = [c for c in np.unique(gt) if 0 < c < 255]
    for c in sorted(classes, key=lambda c: -(gt == c).sum()):
        ys, xs = np.nonzero(gt == c)
        out[ys.min():ys.max() + 1, xs.min():xs.max() + 1] = c
    return out


@pytest.fixture(scope="module")
def mini_voc(voc_root, tmp_path_factory):
    """A VOC root with a few train / val ids (images and GT linked from the real slice) + pseudo-masks."""
    root = tmp_path_factory.mktemp("voc")
    ids = link_voc_subset(voc_root, root, {"train": N_TRAIN, "val": N_VAL})
    pseudo = root / "pseudo"
    for i in ids["train"]:
        write_mask(pseudo / f"{i}.png", box_filled(read_mask(voc_root / "SegmentationClass" / f"{i}.png")))
    return dict(root=root, pseudo=pseudo, ids=ids)


def _cli(module: str, *args: str, env_extra=None) -> subprocess.CompletedProcess:
    # one thread per process: robust when the cores are shared (OpenMP oversubscription is very slow)
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    env.update(env_extra or {})
    proc = subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{module} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
    return proc


def _train_resume_test(config: Path, mini_voc, work: Path, capfd) -> dict:
    from stage2_segnet.test import main as test_main
    from stage2_segnet.train import main as train_main

    data, pseudo = mini_voc["root"], mini_voc["pseudo"]
    common = [config, "--data", data, "--work-dir", work]
    # 1) two iterations, checkpoint at 2 (the console command, in its own process)
    _cli("stage2_segnet.train", *common, "--pseudo", pseudo, "--resume", "--cfg-options", "train_cfg.max_iters=2")
    assert (work / "iter_2.pth").is_file()
    # 2) the same command with the full schedule resumes from iter_2 (torch >= 2.6 weights_only path);
    #    in-process from here (the entry points' main), which saves two imports of mmseg
    capfd.readouterr()
    assert train_main([*map(str, common), "--pseudo", str(pseudo), "--resume"]) == 0
    out = capfd.readouterr()
    log = out.out + out.err
    assert "resumed epoch: 0, iter: 2" in log, log[-3000:]
    assert (work / "iter_4.pth").is_file()
    assert "mIoU" in log  # validation at the end of training, on real ground truth
    # 3) test: metrics against the real val ground truth, and VOC palette PNGs
    preds = work / "preds"
    assert test_main([*map(str, common), "--checkpoint", str(work / "iter_4.pth"), "--out-dir", str(preds)]) == 0
    record = json.loads((work / "test_val_metrics.json").read_text())
    pngs = sorted(preds.glob("*.png"))
    assert [p.stem for p in pngs] == sorted(mini_voc["ids"]["val"])
    for p in pngs:
        with Image.open(p) as im:
            assert im.mode == "P"
            gt_size = Image.open(data / "SegmentationClass" / p.name).size
            assert im.size == gt_size
        values = np.unique(read_mask(p))
        assert values.min() >= 0 and values.max() <= 20
    assert record["checkpoint_choice"] == "given file" and len(record["per_class_iou"]) == 21
    defined = [v for v in record["per_class_iou"].values() if v == v]
    assert record["metrics"]["mIoU"] == pytest.approx(sum(defined) / len(defined), abs=0.01)
    # the network's own metric equals the toolkit's evaluator on the PNGs it wrote (an independent count)
    from wsss.core.evaluation import evaluate_folders

    ours = evaluate_folders(pred_dir=preds, gt_dir=data / "SegmentationClass", ids=sorted(mini_voc["ids"]["val"]))
    record["independent_miou"] = ours.miou
    # 4) the default is the last iteration's checkpoint (as papers report), here with multi-scale + flip TTA
    assert test_main([*map(str, common), "--tta"]) == 0
    tta = json.loads((work / "test_val_tta_metrics.json").read_text())
    assert tta["checkpoint"] == str(work / "iter_4.pth") and tta["checkpoint_choice"] == "last iteration"
    assert tta["tta"] and 0 <= tta["metrics"]["mIoU"] <= 100
    return record


def _all_background_miou(mini_voc, ids, tmp_path) -> float:
    """The trivial predictor's mIoU (every pixel background), by the toolkit's evaluator."""
    from wsss.core.evaluation import evaluate_folders

    gt = mini_voc["root"] / "SegmentationClass"
    for i in ids:
        write_mask(tmp_path / "bg" / f"{i}.png", np.zeros_like(read_mask(gt / f"{i}.png")))
    return evaluate_folders(pred_dir=tmp_path / "bg", gt_dir=gt, ids=ids).miou


def test_deeplab_smoke_train_resume_test(mini_voc, tmp_path, capfd):
    record = _train_resume_test(TINY_DEEPLAB, mini_voc, tmp_path / "deeplab", capfd)
    # 4 iterations: the plumbing, not the learning; the reported mIoU is the one of the written masks
    assert record["metrics"]["mIoU"] == pytest.approx(record["independent_miou"], abs=0.01)


def test_mask2former_smoke_train_resume_test(mini_voc, tmp_path, capfd):
    record = _train_resume_test(TINY_M2F, mini_voc, tmp_path / "m2f", capfd)
    assert record["metrics"]["mIoU"] == pytest.approx(record["independent_miou"], abs=0.01)


def test_stage2_learns_more_than_the_trivial_predictor(mini_voc, tmp_path):
    """The demo's light DeepLabV3+ fits 3 real images' labels in 80 iterations: its test mIoU on those
    images is well above the all-background mask's, scored by the toolkit's own evaluator."""
    ids = mini_voc["ids"]["val"]
    labels = tmp_path / "labels"
    for i in ids:
        write_mask(labels / f"{i}.png", read_mask(mini_voc["root"] / "SegmentationClass" / f"{i}.png"))
    work, preds = tmp_path / "fit", tmp_path / "preds"
    common = ["--config", REPO / "configs/stage2/demo_deeplabv3plus_tiny.py", "--data", mini_voc["root"],
              "--work-dir", work]
    opts = ["train_cfg.max_iters=80", "train_cfg.val_interval=80", "param_scheduler.0.end=80",
            "default_hooks.checkpoint.interval=80", "train_dataloader.batch_size=3", "train_dataloader.num_workers=0",
            "val_dataloader.num_workers=0", "train_dataloader.persistent_workers=False",
            "val_dataloader.persistent_workers=False"]
    _cli("stage2_segnet.train", *common, "--pseudo", labels, "--train-list", "val", "--val-list", "val",
         "--cfg-options", *opts)
    from stage2_segnet.test import main as test_main  # in-process: saves an import of mmseg

    assert test_main([str(a) for a in (*common, "--split", "val", "--out-dir", preds)]) == 0
    from wsss.core.evaluation import evaluate_folders

    trained = evaluate_folders(pred_dir=preds, gt_dir=mini_voc["root"] / "SegmentationClass", ids=ids).miou
    trivial = _all_background_miou(mini_voc, ids, tmp_path)
    assert trained > trivial + 10, (trained, trivial)


def test_stage2_clis_refuse_bad_input_in_one_line(mini_voc, tmp_path, capsys):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    common = ["--config", str(TINY_DEEPLAB), "--data", str(mini_voc["root"]), "--work-dir", str(tmp_path / "w")]
    # A real process once: what a user sees, import-time warnings included.
    proc = subprocess.run([sys.executable, "-m", "stage2_segnet.train", *common, "--pseudo", str(tmp_path / "no_such_dir")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    # the error (with the list of problem files, where there are several) and no traceback
    assert proc.stderr.lstrip().startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "pkg_resources is deprecated" not in proc.stderr  # the one known warning is filtered
    # The test CLI in-process (its console script calls this main): same code and stderr, no second import.
    from stage2_segnet.test import main as test_main

    assert test_main([*common, "--checkpoint", str(tmp_path / "missing.pth")]) == 2
    err = capsys.readouterr().err
    assert err.lstrip().startswith("error: ") and "missing.pth" in err and "Traceback" not in err, err[-2000:]


@pytest.mark.slow
def test_two_process_training_through_torchrun_on_cpu(mini_voc, tmp_path):
    """``--gpus 2`` re-launches through torchrun; on CPU the processes use gloo and plain BN."""
    work = tmp_path / "ddp"
    out = _cli("stage2_segnet.train", TINY_DEEPLAB, "--data", mini_voc["root"], "--pseudo", mini_voc["pseudo"],
               "--work-dir", work, "--gpus", "2", "--cfg-options", "train_cfg.max_iters=2",
               env_extra=dict(MASTER_PORT="29517"))
    log = out.stdout + out.stderr
    assert "torch.distributed.run --nproc_per_node=2" in log
    assert "Distributed training: True" in log
    assert (work / "iter_2.pth").is_file()


# -- checks before training ------------------------------------------------------------------------
def _copy_pseudo(mini_voc, dst: Path) -> Path:
    dst.mkdir()
    for p in mini_voc["pseudo"].glob("*.png"):
        (dst / p.name).write_bytes(p.read_bytes())
    return dst


def test_pseudo_mask_check_accepts_stage1_output(mini_voc):
    from stage2_segnet.checks import check_pseudo_masks

    root = mini_voc["root"]
    problems = check_pseudo_masks(mini_voc["pseudo"], mini_voc["ids"]["train"], img_dir=root / "JPEGImages",
                                  gt_dir=root / "SegmentationClass")
    assert problems == []


def test_pseudo_mask_check_refuses_bad_ids_palette_size_and_missing(mini_voc, tmp_path):
    from stage2_segnet.checks import check_pseudo_masks

    root, ids = mini_voc["root"], mini_voc["ids"]["train"]
    pseudo = _copy_pseudo(mini_voc, tmp_path / "pseudo")
    # values outside 0..20/255 (a grey PNG with 30)
    bad_values = read_mask(pseudo / f"{ids[0]}.png").copy()
    bad_values[:5, :5] = 30
    Image.fromarray(bad_values).save(pseudo / f"{ids[0]}.png")
    # a palette PNG whose colours for the ids differ from the ground truth's (a foreign palette)
    m = read_mask(pseudo / f"{ids[1]}.png")
    foreign = Image.fromarray(m)
    foreign.putpalette(list(np.random.default_rng(0).integers(0, 256, 768, dtype=np.uint8)))
    foreign.save(pseudo / f"{ids[1]}.png")
    # wrong size
    write_mask(pseudo / f"{ids[2]}.png", np.zeros((10, 12), np.uint8))
    # missing
    (pseudo / f"{ids[3]}.png").unlink()

    problems = {p.image_id: p for p in check_pseudo_masks(pseudo, ids, img_dir=root / "JPEGImages",
                                                          gt_dir=root / "SegmentationClass")}
    assert set(problems) == set(ids[:4])
    assert "30" in problems[ids[0]].message and f"{ids[0]}.png" in problems[ids[0]].message
    assert "palette" in problems[ids[1]].message and f"{ids[1]}.png" in problems[ids[1]].message
    assert "12x10" in problems[ids[2]].message
    assert problems[ids[3]].kind == "MissingFileError"


def test_train_cli_refuses_bad_pseudo_dir_before_runner(mini_voc, tmp_path):
    from stage2_segnet import train
    from stage2_segnet.checks import PseudoMaskError

    ids = mini_voc["ids"]["train"]
    pseudo = _copy_pseudo(mini_voc, tmp_path / "pseudo")
    bad = read_mask(pseudo / f"{ids[0]}.png").copy()
    bad[0, 0] = 21
    Image.fromarray(bad).save(pseudo / f"{ids[0]}.png")
    args = train.parse_args([str(TINY_DEEPLAB), "--data", str(mini_voc["root"]), "--pseudo", str(pseudo),
                             "--work-dir", str(tmp_path / "w")])
    cfg = train.build_config(args, "none")
    with pytest.raises(PseudoMaskError, match=f"{ids[0]}.png.*21"):
        train.preflight(cfg)


def test_loader_refuses_mask_values_with_file_named(mini_voc, tmp_path):
    from stage2_segnet.datasets import LoadVOCLabel
    from wsss.core.weak_labels.errors import InvalidMaskError

    path = tmp_path / "x.png"
    Image.fromarray(np.full((4, 4), 99, np.uint8)).save(path)
    with pytest.raises(InvalidMaskError, match="x.png.*99"):
        LoadVOCLabel()(dict(seg_map_path=str(path), reduce_zero_label=False, seg_fields=[]))
    good = LoadVOCLabel()(dict(seg_map_path=str(mini_voc["pseudo"] / f"{mini_voc['ids']['train'][0]}.png"),
                               reduce_zero_label=False, seg_fields=[]))
    assert good["gt_seg_map"].dtype == np.uint8 and good["gt_seg_map"].max() <= 20


def test_missing_backbone_checkpoint_is_a_clear_error(mini_voc, tmp_path):
    from stage2_segnet import train

    args = train.parse_args([str(REPO / "configs/stage2/deeplabv3plus_r50_voc_pseudo.py"), "--data",
                             str(mini_voc["root"]), "--pseudo", str(mini_voc["pseudo"]), "--work-dir", str(tmp_path),
                             "--cfg-options", f"model.pretrained={tmp_path / 'resnet50_v1c-2cccc1ad.pth'}"])
    cfg = train.build_config(args, "none")
    with pytest.raises(FileNotFoundError, match=r"resnet50_v1c-2cccc1ad\.pth not found.*wget"):
        train.preflight(cfg)


@pytest.mark.parametrize("name", ["deeplabv3plus_r50_voc_pseudo", "deeplabv3plus_r101_voc_pseudo",
                                  "deeplabv2_aspp_r101_voc_pseudo", "mask2former_r50_voc_pseudo",
                                  "mask2former_swin-s_voc_pseudo", "mask2former_swin-b_voc_pseudo",
                                  "mask2former_swin-l_voc_pseudo"])
def test_full_configs_parse_with_voc_settings(name):
    from mmengine.config import Config

    from stage2_segnet.checks import pretrained_paths

    cfg = Config.fromfile(str(REPO / f"configs/stage2/{name}.py"))
    assert cfg.model.decode_head.num_classes == 21
    assert cfg.train_dataloader.dataset.type == "PseudoMaskVOCDataset"
    assert "pseudo_dir" in cfg.train_dataloader.dataset
    assert cfg.val_dataloader.dataset.data_prefix.seg_map_path == "SegmentationClass"
    assert cfg.val_evaluator.type == "VOCIoUMetric"
    assert not cfg.train_dataloader.dataset.get("reduce_zero_label", False)
    paths = pretrained_paths(cfg.model)
    assert paths and all(p.startswith("data/checkpoints/") for p in paths)


# -- small pieces -----------------------------------------------------------------------------------
def test_checkpoint_loader_keeps_weights_only_with_mmengine_allow_list(tmp_path):
    import torch
    from mmengine.logging import HistoryBuffer, MessageHub
    from mmengine.runner.checkpoint import _load_checkpoint

    from stage2_segnet import compat

    compat.apply()
    hub = MessageHub.get_instance("wsss_test_hub")
    for v in (1.0, 2.0, 3.0):
        hub.update_scalar("train/loss", np.float64(v))
    path = tmp_path / "ck.pth"
    torch.save(dict(meta=dict(seed=0), message_hub=hub.state_dict(), state_dict={"w": torch.ones(2)}), path)
    with pytest.raises(pickle.UnpicklingError):  # what mmengine 0.10.7 does under torch >= 2.6
        torch.load(path)
    ck = _load_checkpoint(str(path))
    buf = ck["message_hub"]["log_scalars"]["train/loss"]
    assert isinstance(buf, HistoryBuffer) and buf.mean() == pytest.approx(2.0)
    # getattr is allowed only for HistoryBuffer's public methods
    with pytest.raises(pickle.UnpicklingError):
        compat._history_buffer_getattr(os, "system")
    with pytest.raises(pickle.UnpicklingError):
        compat._history_buffer_getattr(HistoryBuffer, "__init__")
    # anything else is refused with the file and the global named
    import argparse

    torch.save({"ns": argparse.Namespace(a=1)}, tmp_path / "evil.pth")
    with pytest.raises(pickle.UnpicklingError, match=r"evil\.pth.*argparse\.Namespace"):
        _load_checkpoint(str(tmp_path / "evil.pth"))


def test_deeplabv2_head_output_and_loss():
    import torch
    from mmseg.registry import MODELS

    from stage2_segnet.register import register_all

    register_all()

    head = MODELS.build(dict(type="DeepLabV2Head", in_channels=32, in_index=0, num_classes=21,
                             loss_decode=dict(type="CrossEntropyLoss", avg_non_ignore=True)))
    head.init_weights()
    assert not hasattr(head, "conv_seg") and len(head.aspp) == 4
    out = head([torch.randn(2, 32, 9, 11)])
    assert out.shape == (2, 21, 9, 11)
    out.sum().backward()
    assert all(b.weight.grad is not None for b in head.aspp)


def test_dense_crf_sharpens_towards_image_edges():
    from wsss.core.crf import crf_available, dense_crf

    if not crf_available():
        pytest.skip("pydensecrf2 not installed (optional)")
    image = np.zeros((32, 32, 3), np.uint8)
    image[:, 16:] = 255
    probs = np.full((2, 32, 32), 0.5, np.float32)
    probs[0, :, :10], probs[1, :, :10] = 0.9, 0.1
    probs[0, :, 22:], probs[1, :, 22:] = 0.1, 0.9
    q = dense_crf(image, probs)
    labels = q.argmax(0)
    assert q.shape == (2, 32, 32)
    assert (labels[:, :16] == 0).mean() > 0.9 and (labels[:, 16:] == 1).mean() > 0.9


def test_metric_with_crf_scores_and_writes_palette_pngs(tmp_path):
    import torch

    from wsss.core.crf import crf_available
    from stage2_segnet.metrics import VOCIoUMetric

    if not crf_available():
        pytest.skip("pydensecrf2 not installed (optional)")
    image = np.zeros((24, 32, 3), np.uint8)
    image[:, 16:] = 200
    Image.fromarray(image).save(tmp_path / "im.jpg", quality=100)
    gt = np.zeros((24, 32), np.uint8)
    gt[:, 16:] = 15
    logits = torch.zeros(21, 24, 32)
    logits[0, :, :12] = 4.0
    logits[15, :, 20:] = 4.0  # the middle columns are uncertain: the CRF follows the image edge
    metric = VOCIoUMetric(crf={}, output_dir=str(tmp_path / "out"))
    metric.dataset_meta = dict(classes=tuple(str(i) for i in range(21)))
    sample = dict(pred_sem_seg=dict(data=logits.argmax(0, keepdim=True)), seg_logits=dict(data=logits),
                  gt_sem_seg=dict(data=torch.from_numpy(gt)[None].long()), img_path=str(tmp_path / "im.jpg"))
    metric.process({}, [sample])
    result = metric.compute_metrics(metric.results)
    assert result["mIoU"] == pytest.approx(100.0)
    out = read_mask(tmp_path / "out" / "im.png")
    assert (out == gt).all() and Image.open(tmp_path / "out" / "im.png").mode == "P"


def test_tta_keeps_the_mean_distribution_of_the_views():
    """SegTTAWithScores: the prediction is the argmax of the views' mean softmax (mmseg's rule) and
    the kept scores are log of that mean (so a CRF after TTA refines the merged distribution)."""
    import torch
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    from stage2_segnet.tta import SegTTAWithScores

    class Module(torch.nn.Module):
        out_channels = 3

        def test_step(self, data):
            return data

    views = []
    for logits in ([[4.0, 0.0], [0.0, 0.0], [0.0, 3.0]], [[0.0, 0.0], [5.0, 0.0], [0.0, 0.0]]):
        sample = SegDataSample(metainfo={"img_path": "x.jpg"})
        sample.seg_logits = PixelData(data=torch.tensor(logits).view(3, 1, 2))
        views.append(sample)
    mean = (views[0].seg_logits.data.softmax(0) + views[1].seg_logits.data.softmax(0)) / 2
    merged = SegTTAWithScores(module=Module()).merge_preds([views])[0]
    assert torch.allclose(merged.seg_logits.data.exp(), mean, atol=1e-6)
    assert merged.pred_sem_seg.data.flatten().tolist() == mean.argmax(0).flatten().tolist() == [1, 2]
    assert merged.metainfo["tta_merged"]


def test_metric_reports_per_class_iou():
    import torch

    from stage2_segnet.metrics import VOCIoUMetric

    metric = VOCIoUMetric()
    metric.dataset_meta = dict(classes=("background", "cat", "dog"))
    gt = torch.tensor([[0, 0, 1, 1], [0, 2, 2, 255]])
    pred = torch.tensor([[0, 1, 1, 1], [0, 2, 0, 2]])
    metric.process({}, [dict(pred_sem_seg=dict(data=pred[None]), gt_sem_seg=dict(data=gt[None]))])
    result = metric.compute_metrics(metric.results)
    # background: 2 right of 4 (pred or gt); cat: 2 of 3; dog: 1 of 2 (the 255 pixel counts nowhere)
    assert result["IoU.background"] == pytest.approx(50.0)
    assert result["IoU.cat"] == pytest.approx(200 / 3)
    assert result["IoU.dog"] == pytest.approx(50.0)
    assert result["mIoU"] == pytest.approx((50 + 200 / 3 + 50) / 3, abs=0.01)


def test_one_override_sets_the_schedule(mini_voc, tmp_path):
    """--iters 40000: max_iters and the poly schedule's end move together (the papers' 20k / 40k / 80k)."""
    from stage2_segnet import train

    args = train.parse_args([str(REPO / "configs/stage2/deeplabv2_aspp_r101_voc_pseudo.py"), "--data",
                             str(mini_voc["root"]), "--pseudo", str(mini_voc["pseudo"]), "--work-dir", str(tmp_path),
                             "--iters", "40000"])
    cfg = train.build_config(args, "none")
    assert cfg.train_cfg.max_iters == 40000
    assert [s["end"] for s in cfg.param_scheduler if not s.get("by_epoch", True)] == [40000]
