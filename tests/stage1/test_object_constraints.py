"""Instance-aware constraints over the object distribution: against probability-space
references, and through stage-1 training."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from logic.constraints import CompiledConstraints, ConstraintConfig, constraint_types
from stage1_pseudolabel.sam.class_distribution import log_class_distribution, log_object_distribution

ONLY = {n: 0.0 for n in constraint_types()}


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    h = w = 14
    valid = np.ones((h, w), bool)
    valid[-3:, :] = False
    boxes = np.array([[1, 1, 7, 8], [5, 4, 12, 11], [2, 6, 6, 10]])  # objects 1, 2 overlap; 3 inside 1's columns
    classes = np.array([1, 1, 2])  # two objects of one class
    logits = torch.tensor(rng.normal(size=(3, h, w)) * 3, dtype=torch.float64)
    return valid, boxes, classes, logits


def test_object_distribution_sums_to_the_class_distribution():
    _, _, classes, logits = _problem()
    objects = log_object_distribution(logits)
    cls = log_class_distribution(logits, torch.tensor(classes), num_channels=3)
    assert torch.allclose(objects.exp().sum(0), torch.ones(14, 14))
    assert torch.allclose(cls[0], objects[0], atol=1e-6)
    assert torch.allclose(cls[1].exp(), objects[1].exp() + objects[2].exp(), atol=1e-6)
    assert torch.allclose(cls[2], objects[3], atol=1e-6)


def test_object_constraints_match_probability_space_references():
    valid, boxes, classes, logits = _problem()
    objects = log_object_distribution(logits)
    cfg = ConstraintConfig({**ONLY, "object_tightness": 1.0, "object_in_box": 1.0})
    cc = CompiledConstraints.build(num_labels=3, valid=valid, boxes=boxes, box_classes=classes, object_boxes=boxes, config=cfg)
    with pytest.raises(ValueError, match="object_log_probs"):
        cc.truths(torch.zeros(3, 14, 14))
    truths = cc.truths(log_class_distribution(logits, torch.tensor(classes), num_channels=3), objects)
    p = objects.exp().numpy().clip(1e-6, 1 - 1e-6)
    in_box = np.zeros((3, 14, 14), bool)
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        in_box[i, y0:y1, x0:x1] = True
    outside = ~in_box & valid[None]
    ref_in_box = sum(np.log(1 - p[i + 1][outside[i]]).sum() for i in range(3))
    ref_tight = 0.0
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        for r in range(y0, y1):
            row = p[i + 1, r, x0:x1][valid[r, x0:x1]]
            if len(row):
                ref_tight += math.log(1 - np.prod(1 - row))
        for c in range(x0, x1):
            col = p[i + 1, y0:y1, c][valid[y0:y1, c]]
            if len(col):
                ref_tight += math.log(1 - np.prod(1 - col))
    assert truths["object_in_box"].item() == pytest.approx(ref_in_box, rel=1e-5)
    assert truths["object_tightness"].item() == pytest.approx(ref_tight, rel=1e-5)
    assert cc.num_groundings["object_in_box"] == int(outside.sum())


def test_object_in_box_tells_apart_what_the_class_level_constraints_cannot():
    """Object 1 drawn in object 2's box (same class): class-level truths are unchanged, the per-object
    constraint sees the swap."""
    valid = np.ones((12, 12), bool)
    boxes = np.array([[0, 0, 6, 12], [6, 0, 12, 12]])
    classes = np.array([1, 1])
    right = torch.full((2, 12, 12), -8.0, dtype=torch.float64)
    right[0, :, :6], right[1, :, 6:] = 8.0, 8.0
    swapped = right.flip(0)
    cfg = ConstraintConfig({**ONLY, "background": 1.0, "box_tightness": 1.0, "object_in_box": 1.0, "object_tightness": 1.0})
    cc = CompiledConstraints.build(num_labels=2, valid=valid, boxes=boxes, box_classes=classes, object_boxes=boxes, config=cfg)
    t_right = cc.truths(log_class_distribution(right, torch.tensor(classes), num_channels=2), log_object_distribution(right))
    t_swap = cc.truths(log_class_distribution(swapped, torch.tensor(classes), num_channels=2), log_object_distribution(swapped))
    assert t_right["box_tightness"].item() == pytest.approx(t_swap["box_tightness"].item())
    assert t_swap["object_in_box"].item() < t_right["object_in_box"].item() - 50
    assert t_swap["object_tightness"].item() < t_right["object_tightness"].item() - 50


def test_training_with_object_constraints_logs_them_and_lowers_them(tmp_path):
    from pathlib import Path

    from stage1_pseudolabel.pipeline.config import build_config
    from stage1_pseudolabel.pipeline.embed import run_embed
    from stage1_pseudolabel.pipeline.train import run_train
    from wsss.core.synthetic.dataset import write_dataset

    root = tmp_path / "data"
    write_dataset(root, domain="target", num_train=4, num_val=1, seed=3, size_range=(120, 160))
    tiny = Path(__file__).resolve().parents[2] / "configs" / "stage1" / "tiny_random.yaml"
    cfg = build_config(config_file=str(tiny), overrides={"data.root": str(root), "work_dir": str(tmp_path / "work")},
                       cfg_options=["loss.object_tightness=1.0", "loss.object_in_box=1.0", "train.epochs=3", "train.batch_size=2"])
    run_embed(cfg, progress=False)
    run_train(cfg, progress=False)
    lines = [json.loads(s) for s in cfg.train_log.read_text().splitlines()]
    assert {"object_tightness", "object_in_box"} <= set(lines[0]["truth"])
    first = lines[0]["log_truth"]["object_in_box"] + lines[0]["log_truth"]["object_tightness"]
    last = lines[-1]["log_truth"]["object_in_box"] + lines[-1]["log_truth"]["object_tightness"]
    assert last > first
    # generate --diagnostics: one map per constraint that ran, summing to minus its log-truth
    from stage1_pseudolabel.pipeline.generate import run_generate
    from stage1_pseudolabel.pipeline.model import load_decoder, load_model
    from stage1_pseudolabel.pipeline.predict import DecoderRunner, lowres_log_distribution, lowres_object_distribution
    from stage1_pseudolabel.pipeline.prepare import ImageInputs, compile_constraints, open_dataset, prepare_image
    from stage1_pseudolabel.pipeline.cache import EmbeddingCache

    cfg = cfg.updated(generate={"diagnostics": True})
    summary = run_generate(cfg, progress=False)
    assert summary["diagnostics"] == 4
    model, key = load_model(cfg.model, device=torch.device("cpu"))
    load_decoder(cfg.decoder_path(), model=model, key=key)
    runner, cache, ds = DecoderRunner(model, device=torch.device("cpu")), EmbeddingCache(cfg.cache_dir, key=key), open_dataset(cfg)
    image_id = ds.ids[0]
    ann = ds.load(image_id)
    inputs = ImageInputs.from_config(cfg)
    prepared = prepare_image(ann, inputs=inputs, encoder_size=key.encoder_size, lowres=key.lowres_size)
    with torch.no_grad():
        logits = runner.object_logits(prepared, cache.load(image_id))
        truths = compile_constraints(ann, prepared, inputs=inputs).truths(lowres_log_distribution(prepared, logits),
                                                                           lowres_object_distribution(logits))
    saved = np.load(cfg.diagnostics_path(zero_shot=False) / f"{image_id}.npz")
    assert set(saved.files) - {"valid"} == set(truths) >= {"object_in_box", "neighbourhood", "background"}
    for name, truth in truths.items():
        assert saved[name].shape == (key.lowres_size, key.lowres_size)
        assert saved[name].astype(np.float64).sum() == pytest.approx(-truth.item(), rel=2e-2, abs=1e-2), name
    again = run_generate(cfg, progress=False)  # resumable: nothing left to do
    assert again["diagnostics"] == 0 and again["existing"] == 4
