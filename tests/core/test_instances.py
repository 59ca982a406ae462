"""Instance pseudo-labels of stage 1: ownership rule, COCO JSON per shard, resume, merge, rebuild."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from wsss.core import instances as inst
from wsss.core.masks import read_mask
from wsss.core.synthetic import write_dataset
from stage1_pseudolabel.pipeline import generate as generate_module
from stage1_pseudolabel.pipeline.generate import main as generate_main
from stage1_pseudolabel.pipeline.generate import run_generate
from stage1_pseudolabel.pipeline.predict import pseudo_mask, pseudo_mask_and_instances
from conftest import TINY_CONFIG, tiny_config as make_cfg


# -- the ownership rule on hand-computed logits ----------------------------------------------------
def fake_prepared(object_classes):
    """What pseudo_mask_and_instances reads of a PreparedImage, with an identity low-res -> pixel map."""
    classes = torch.unique(torch.as_tensor(object_classes))
    channels = torch.searchsorted(classes, torch.as_tensor(object_classes)) + 1
    frame = SimpleNamespace(height=1, width=5, lowres_to_pixels=lambda x: x)
    return SimpleNamespace(frame=frame, classes=classes, channels=channels, num_channels=1 + len(classes),
                           objects=SimpleNamespace(classes=np.asarray(object_classes)))


def test_each_pixel_goes_to_the_strongest_object_of_its_argmax_class():
    # objects: 0 and 1 are persons (15), 2 is a cat (8); pixels 0..4 of a 1x5 image
    logits = torch.tensor([
        [5.0, 3.0, -5.0, -5.0, 0.6],
        [4.0, 4.0, -5.0, -1.0, 0.5],
        [-5.0, -5.0, 2.0, -5.0, 1.0],
    ]).view(3, 1, 5)
    prepared = fake_prepared([15, 15, 8])
    mask, objects = pseudo_mask_and_instances(prepared, logits)
    # pixel 3: background (logit 0) beats log(e^-5 + e^-1) ~ -0.98; pixel 4: person by the sum of its two
    # objects (e^.6 + e^.5 = 3.47 > e^1 = 2.72) although the cat has the highest single logit there
    assert mask.tolist() == [[15, 15, 8, 0, 15]]
    assert np.array_equal(mask, pseudo_mask(prepared, logits))
    assert objects.objects.tolist() == [0, 1, 2] and objects.classes.tolist() == [15, 15, 8]
    assert objects.masks[:, 0].astype(int).tolist() == [[1, 0, 0, 0, 1], [0, 1, 0, 0, 0], [0, 0, 1, 0, 0]]

    def p_class(px, members):
        z = 1 + sum(math.exp(float(v)) for v in logits[:, 0, px])
        return sum(math.exp(float(logits[i, 0, px])) for i in members) / z

    expected = [(p_class(0, [0, 1]) + p_class(4, [0, 1])) / 2, p_class(1, [0, 1]), p_class(2, [2])]
    assert objects.scores.tolist() == pytest.approx(expected, rel=1e-5)


def test_objects_that_own_nothing_are_left_out_and_thresholded_pixels_are_nobodys():
    logits = torch.tensor([[3.0, 3.0, 0.2, -4, -4], [2.0, 2.0, 0.1, -4, -4]]).view(2, 1, 5)
    prepared = fake_prepared([3, 3])
    mask, objects = pseudo_mask_and_instances(prepared, logits, confidence_threshold=0.7)
    # pixel 2: p(bird) = (e^.2 + e^.1) / (1 + e^.2 + e^.1) = 0.6994 < 0.7 -> 255, and nobody's
    assert (math.exp(0.2) + math.exp(0.1)) / (1 + math.exp(0.2) + math.exp(0.1)) < 0.7
    assert mask.tolist() == [[3, 3, 255, 0, 0]]
    assert objects.objects.tolist() == [0]  # object 1 is never the strongest
    assert objects.masks[0, 0].tolist() == (mask[0] == 3).tolist()


# -- generate --instances on synthetic scenes with the tiny random SAM -----------------------------

@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic") / "data"
    write_dataset(root, domain="target", num_train=5, num_val=1, seed=3, size_range=(100, 140))
    return root


@pytest.fixture(scope="module")
def one_run(synthetic, tmp_path_factory):
    work = tmp_path_factory.mktemp("inst_run")
    cfg = make_cfg(synthetic, work, generate=dict(instances=True))
    summary = run_generate(cfg, zero_shot=True, progress=False)
    return cfg, summary


def pngs(folder: Path):
    return {p.stem: p.read_bytes() for p in sorted(folder.glob("*.png"))}


def test_instance_json_rebuilds_the_png_of_the_same_run(one_run):
    cfg, summary = one_run
    path = Path(summary["instances_file"])
    assert path == cfg.work_path / "instances" / "zeroshot_both.shard0of1.json"
    doc = inst.read_document(path)
    out = cfg.output_path(zero_shot=True)
    names = sorted(im["name"] for im in doc["images"])
    assert names == sorted(pngs(out)) and len(names) == 5
    assert summary["instances"] == len(doc["annotations"]) > 0
    for name in names:
        png = read_mask(out / f"{name}.png")
        assert np.array_equal(inst.semantic_from_instances(doc, name), png), name
    for ann in doc["annotations"]:  # each object: its class, tight box, area, score in (0, 1]
        m = inst.decode_mask(ann["segmentation"])
        ys, xs = np.nonzero(m)
        assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        assert ann["area"] == m.sum() and 0 < ann["score"] <= 1
        assert len(ann["weak_box"]) == 4
    # the same file through pycocotools' own reader
    from pycocotools.coco import COCO

    coco = COCO(str(path))
    first = doc["annotations"][0]
    assert np.array_equal(coco.annToMask(coco.anns[first["id"]]).astype(bool), inst.decode_mask(first["segmentation"]))


def test_generate_instances_resume_and_shards_merge(one_run, synthetic, tmp_path, capsys, monkeypatch):
    cfg, summary = one_run
    reference = inst.read_document(summary["instances_file"])
    out = cfg.output_path(zero_shot=True)

    # a run killed after the PNGs but before its instance file: the objects are redone, PNGs kept
    work = tmp_path / "resume"
    c2 = make_cfg(synthetic, work, generate=dict(instances=True))
    monkeypatch.setattr(generate_module, "INSTANCE_FLUSH_SECONDS", 0.0)  # rewritten after every image
    writes = []
    real_write = inst.write_document
    monkeypatch.setattr(inst, "write_document", lambda path, doc: (writes.append(len(doc["images"])),
                                                                   real_write(path, doc)))
    run_generate(c2, zero_shot=True, progress=False)
    assert writes == [1, 2, 3, 4, 5]
    monkeypatch.setattr(inst, "write_document", real_write)
    path = Path(c2.instances_path(zero_shot=True))
    doc = inst.read_document(path)
    dropped = doc["images"][1]["id"]
    doc["images"] = [im for im in doc["images"] if im["id"] != dropped]
    doc["annotations"] = [a for a in doc["annotations"] if a["image_id"] != dropped]
    inst.write_document(path, doc)
    before = {p.name: p.stat().st_mtime_ns for p in c2.output_path(zero_shot=True).glob("*.png")}
    again = run_generate(c2, zero_shot=True, progress=False)
    assert again["instances_added"] == 1 and again["written"] == 0 and again["existing"] == 4
    assert {p.name: p.stat().st_mtime_ns for p in c2.output_path(zero_shot=True).glob("*.png")} == before
    assert inst.read_document(path)["annotations"] == reference["annotations"]
    third = run_generate(c2, zero_shot=True, progress=False)  # nothing left to do
    assert third["existing"] == 5 and third["instances_added"] == 0

    # two shards through the CLI, merged by wsss-merge-instances: the single run's file
    sw = tmp_path / "shards"
    for i in range(2):
        rc = generate_main(["--config", str(TINY_CONFIG), "--data", str(synthetic), "--work-dir", str(sw),
                            "--zero-shot", "--instances", "--shard-index", str(i), "--num-shards", "2",
                            "--no-progress"])
        assert rc == 0
    files = sorted((sw / "instances").glob("*.json"))
    assert [f.name for f in files] == ["zeroshot_both.shard0of2.json", "zeroshot_both.shard1of2.json"]
    merged = tmp_path / "merged.json"
    assert inst.main([str(f) for f in files] + ["--out", str(merged)]) == 0
    assert "5 image(s)" in capsys.readouterr().out
    m = inst.read_document(merged)
    assert m["images"] == reference["images"] and m["annotations"] == reference["annotations"]
    assert pngs(sw / "zeroshot_both") == pngs(out)
    # the same shard twice is refused (exit 2, one line)
    assert inst.main([str(files[0]), str(files[0]), "--out", str(tmp_path / "bad.json")]) == 2
    assert capsys.readouterr().err.startswith("error:")


def test_rle_round_trip_and_bbox():
    rng = np.random.default_rng(0)
    m = rng.random((7, 9)) > 0.6
    rle = inst.encode_mask(m)
    assert isinstance(rle["counts"], str) and rle["size"] == [7, 9]
    assert np.array_equal(inst.decode_mask(json.loads(json.dumps(rle))), m)
    box = np.zeros((6, 8), bool)
    box[2:5, 1:4] = True
    assert inst.mask_bbox(box) == [1.0, 2.0, 3.0, 3.0]


@pytest.mark.realdata
def test_real_voc_instances_rebuild_the_pngs_of_the_same_run(voc_root, tmp_path, capsys):
    """Real photographs, the tiny random SAM, two shards through the CLIs: the merged instance file
    rebuilds every PNG written by the same run (these images have several objects of one class)."""
    work = tmp_path / "voc"
    common = ["--config", str(TINY_CONFIG), "--data", str(voc_root), "--split", "train", "--work-dir", str(work),
              "--model-type", "vit_b", "--checkpoint", "none", "--set", "data.max_images=6", "--no-progress",
              "--zero-shot", "--set", "generate.instances=true"]
    for i in range(2):
        assert generate_main(common + ["--shard-index", str(i), "--num-shards", "2"]) == 0
    files = sorted((work / "instances").glob("zeroshot_both.shard*of2.json"))
    assert len(files) == 2
    merged = work / "instances" / "zeroshot_both.json"
    assert inst.main([str(f) for f in files] + ["--out", str(merged)]) == 0
    doc = inst.read_document(merged)
    ids = (voc_root / "ImageSets" / "Segmentation" / "train.txt").read_text().split()[:6]
    assert sorted(im["name"] for im in doc["images"]) == sorted(ids)
    assert len(doc["annotations"]) > 0
    same_class = 0
    for image_id in ids:
        png = read_mask(work / "zeroshot_both" / f"{image_id}.png")
        assert np.array_equal(inst.semantic_from_instances(doc, image_id), png), image_id
        k = next(im["id"] for im in doc["images"] if im["name"] == image_id)
        classes = [a["category_id"] for a in doc["annotations"] if a["image_id"] == k]
        same_class += len(classes) - len(set(classes))
    assert same_class > 0  # some image has two objects of one class, split by the ownership rule


def test_scores_that_differ_in_float_rounding_write_the_same_annotation():
    """The two scores of one object seen when an image was decoded alone and with others (float32
    sums in another order): the instance files are equal; a real difference in score is kept."""
    mask = np.zeros((5, 6), bool)
    mask[1:3, 2:5] = True
    alone, batched = (inst.object_annotations(1, [mask], [15], [s]) for s in (0.25196918845176697, 0.2519691586494446))
    assert json.dumps(alone) == json.dumps(batched)
    assert alone[0]["score"] == 0.252
    other = inst.object_annotations(1, [mask], [15], [0.2531])
    assert other[0]["score"] != alone[0]["score"]
