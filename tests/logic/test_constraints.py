"""Every constraint type against a direct probability-space reference (float64 loops over pixels).

The reference follows the documented semantics (logic/README.md): atoms are the class probabilities
clipped to [eps, 1 - eps]; then each grounding's truth is computed with products and ``1 - p`` only.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from logic import DEFAULT_EPS
from logic.constraints import CompiledConstraints, ConstraintConfig, neighbour_sum

METHOD_TYPES = ("background", "box_tightness", "scribbles", "neighbourhood", "border_precision")

EPS = DEFAULT_EPS


# -- the reference ----------------------------------------------------------------------------------
def clipped_probs(log_probs: np.ndarray) -> np.ndarray:
    return np.clip(np.exp(log_probs), EPS, 1 - EPS)


def neighbours(h: int, w: int, r: int, c: int, connectivity: int):
    offs = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    if connectivity == 8:
        offs += [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    return [(r + dr, c + dc) for dr, dc in offs if 0 <= r + dr < h and 0 <= c + dc < w]


def reference_truths(P, *, boxes, box_classes, valid, scribbles, superpixels, nb_conn, border_conn):
    """``{name: (sum of log-truths, number of groundings)}`` computed pixel by pixel."""
    K, H, W = P.shape
    out = {}
    inside = np.zeros((H, W), bool)
    for x0, y0, x1, y1 in boxes:
        inside[y0:y1, x0:x1] = True
    bg = valid & ~inside
    out["background"] = (float(np.log(P[0][bg]).sum()), int(bg.sum()))

    total, count = 0.0, 0
    for (x0, y0, x1, y1), k in zip(boxes, box_classes):
        for r in range(y0, y1):
            cols = [c for c in range(x0, x1) if valid[r, c]]
            if cols:
                total += math.log(1 - np.prod([1 - P[k, r, c] for c in cols]))
                count += 1
        for c in range(x0, x1):
            rows = [r for r in range(y0, y1) if valid[r, c]]
            if rows:
                total += math.log(1 - np.prod([1 - P[k, r, c] for r in rows]))
                count += 1
    out["box_tightness"] = (total, count)

    labelled = (scribbles != 255) & valid
    out["scribbles"] = (float(sum(math.log(P[scribbles[r, c], r, c]) for r, c in zip(*np.nonzero(labelled)))), int(labelled.sum()))

    total, count = 0.0, 0
    for r, c in itertools.product(range(H), range(W)):
        nbs = [q for q in neighbours(H, W, r, c, nb_conn) if valid[q]]
        if not valid[r, c] or not nbs:
            continue
        for k in range(K):
            isolated = 1 - P[k, r, c] * np.prod([1 - P[k][q] for q in nbs])  # k(p) -> exists q: k(q)
            hole = 1 - np.prod([P[k][q] for q in nbs]) * (1 - P[k, r, c])  # forall q: k(q) -> k(p)
            total += math.log(isolated) + math.log(hole)
            count += 2
    out["neighbourhood"] = (total, count)

    total, count = 0.0, 0
    offsets = [(0, 1), (1, 0)] + ([(1, 1), (1, -1)] if border_conn == 8 else [])
    for r, c in itertools.product(range(H), range(W)):
        for dr, dc in offsets:
            q = (r + dr, c + dc)
            if not (0 <= q[0] < H and 0 <= q[1] < W):
                continue
            if valid[r, c] and valid[q] and superpixels[r, c] >= 0 and superpixels[r, c] == superpixels[q]:
                total += math.log(1 - np.prod([1 - P[k, r, c] * P[k][q] for k in range(K)]))
                count += 1
    out["border_precision"] = (total, count)
    return out


# -- random problems --------------------------------------------------------------------------------
@st.composite
def problems(draw):
    K = draw(st.integers(2, 4))
    H = draw(st.integers(1, 6))
    W = draw(st.integers(1, 6))
    scale = draw(st.sampled_from([1.0, 4.0, 40.0]))  # 40: saturated softmax, clipping active
    logits = draw(arrays(np.float64, (K, H, W), elements=st.floats(-1, 1))) * scale
    valid = draw(arrays(np.bool_, (H, W), elements=st.booleans() if draw(st.booleans()) else st.just(True)))
    n_boxes = draw(st.integers(0, 3))
    boxes = []
    for _ in range(n_boxes):
        x0 = draw(st.integers(0, W - 1))
        y0 = draw(st.integers(0, H - 1))
        boxes.append((x0, y0, draw(st.integers(x0 + 1, W)), draw(st.integers(y0 + 1, H))))
    box_classes = [draw(st.integers(1, K - 1)) for _ in boxes]
    scribbles = draw(arrays(np.int64, (H, W), elements=st.sampled_from([255, 255, 255] + list(range(K)))))
    superpixels = draw(arrays(np.int64, (H, W), elements=st.integers(-1, 2)))
    return dict(
        logits=logits,
        boxes=np.array(boxes, np.int64).reshape(-1, 4),
        box_classes=np.array(box_classes, np.int64),
        valid=valid,
        scribbles=scribbles,
        superpixels=superpixels,
        nb_conn=draw(st.sampled_from([4, 8])),
        border_conn=draw(st.sampled_from([4, 8])),
    )


def compile_problem(pb, normalisation="mean", **weights):
    cfg = ConstraintConfig(weights, {"neighbourhood": {"connectivity": pb["nb_conn"]},
                                     "border_precision": {"connectivity": pb["border_conn"]}}, normalisation=normalisation)
    return CompiledConstraints.build(
        num_labels=pb["logits"].shape[0],
        boxes=pb["boxes"],
        box_classes=pb["box_classes"],
        valid=pb["valid"],
        scribbles=pb["scribbles"],
        superpixels=pb["superpixels"],
        config=cfg,
    )


def log_softmax64(logits: np.ndarray) -> torch.Tensor:
    return torch.log_softmax(torch.as_tensor(logits, dtype=torch.float64), dim=0)


@settings(max_examples=60, deadline=None)
@given(problems())
def test_every_constraint_matches_the_probability_space_reference(pb):
    log_probs = log_softmax64(pb["logits"])
    cc = compile_problem(pb)
    ref = reference_truths(
        clipped_probs(log_probs.numpy()),
        **{k: pb[k] for k in ("boxes", "box_classes", "valid", "scribbles", "superpixels", "nb_conn", "border_conn")},
    )
    truths = cc.truths(log_probs)
    for name in ref:  # the types the reference covers (those of tests/logic/test_constraints_weak_boxes.py are off by default)
        ref_truth, ref_count = ref[name]
        if ref_count == 0:
            assert name not in truths  # types without groundings are left out
            continue
        assert cc.num_groundings[name] == ref_count, name
        assert truths[name].item() == pytest.approx(ref_truth, rel=1e-9, abs=1e-9), name
        per_grounding = cc.constraints[name].groundings(cc.atoms(log_probs))
        assert per_grounding.numel() == ref_count and per_grounding.sum().item() == pytest.approx(ref_truth, rel=1e-9, abs=1e-9)
        assert bool((per_grounding <= 0).all())


@settings(max_examples=30, deadline=None)
@given(problems(), st.sampled_from(["sum", "mean"]), st.lists(st.sampled_from([0.0, 0.5, 2.0]), min_size=5, max_size=5))
def test_loss_is_minus_the_weighted_normalised_sum(pb, normalisation, weights):
    config = dict(zip(METHOD_TYPES, weights))
    cc = compile_problem(pb, normalisation, **config)
    log_probs = log_softmax64(pb["logits"])
    truths = cc.truths(log_probs)
    expected = 0.0
    for name, truth in truths.items():
        assert config[name] > 0
        scale = config[name] / (cc.num_groundings[name] if normalisation == "mean" else 1)
        expected -= scale * truth.item()
    assert cc.loss(log_probs).item() == pytest.approx(expected, rel=1e-12, abs=1e-12)


_NEARLY_CERTAIN = dict(  # found by hypothesis: p = 1 - 3.7e-6 next to p = 1 - 4e-18 (it failed CI when compared with a float32 log_softmax)
    logits=np.array([[[0.0, 0.0], [0.0, 0.0]], [[0.0, 12.5], [0.0, -40.0]]]),
    boxes=np.zeros((0, 4), np.int64), box_classes=np.zeros(0, np.int64),
    valid=np.array([[False, True], [False, True]]), scribbles=np.full((2, 2), 255),
    superpixels=np.zeros((2, 2), np.int64), nb_conn=4, border_conn=4,
)


@settings(max_examples=20, deadline=None)
@given(problems())
@example(pb=_NEARLY_CERTAIN)
def test_float32_agrees_with_float64(pb):
    # The same log-probabilities in both precisions: the ops must not lose accuracy in float32. (A
    # float32 log_softmax of its own is no reference: a nearly certain class gets log p = -(1 - p) to
    # float32's absolute precision, ~6e-8, so log(1 - p) near the clip (1 - p ~ 1e-6) is off by up to
    # 6% before any op of ours runs; see logic/README.md, "Precision".)
    cc = compile_problem(pb)
    log_probs = log_softmax64(pb["logits"])
    t64 = cc.truths(log_probs)
    t32 = cc.truths(log_probs.float())
    for name in t64:
        assert t32[name].item() == pytest.approx(t64[name].item(), rel=2e-4, abs=2e-4), name


# -- gradients, devices, edge cases ------------------------------------------------------------------
def _image_problem(size=48, K=5, seed=0):
    rng = np.random.default_rng(seed)
    valid = np.zeros((size, size), bool)
    valid[:, : size * 3 // 4] = True
    boxes = np.array([[2, 3, 20, 30], [10, 12, 34, 40], [25, 0, 36, 9]])
    scribbles = np.full((size, size), 255)
    scribbles[5, 4:15] = 1
    scribbles[44, :30] = 0
    superpixels = (np.arange(size)[:, None] // 6) * 10 + np.arange(size)[None, :] // 6
    return rng, dict(num_labels=K, boxes=boxes, box_classes=np.array([1, 2, 4]), valid=valid, scribbles=scribbles, superpixels=superpixels)


@pytest.mark.parametrize("scale", [1.0, 30.0, 1e4])
@pytest.mark.parametrize("normalisation", ["sum", "mean"])
def test_gradients_finite_for_random_and_saturated_logits(scale, normalisation):
    rng, kw = _image_problem()
    cc = CompiledConstraints.build(config=ConstraintConfig(normalisation=normalisation), **kw)
    logits = torch.tensor(rng.normal(size=(5, 48, 48)) * scale, dtype=torch.float32, requires_grad=True)
    loss = cc.loss(torch.log_softmax(logits, dim=0))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert logits.grad.abs().sum() > 0
    # Padding takes part in no constraint: no gradient there.
    assert (logits.grad[:, :, 36:] == 0).all()


def test_infinite_log_probs_give_finite_loss_and_gradients():
    _, kw = _image_problem()
    log_probs = torch.full((5, 48, 48), -math.inf)
    log_probs[0] = 0.0  # all background, other classes exactly impossible
    log_probs.requires_grad_()
    loss = CompiledConstraints.build(**kw).loss(log_probs)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(log_probs.grad).all()
    # Box tightness still pushes the (impossible) box class up inside its box.
    assert (log_probs.grad[1, 3:30, 2:20] < 0).any()


def test_to_device_and_reuse_give_identical_results():
    rng, kw = _image_problem()
    cc = CompiledConstraints.build(**kw)
    log_probs = torch.log_softmax(torch.tensor(rng.normal(size=(5, 48, 48)), dtype=torch.float32), dim=0)
    a, b = cc.truths(log_probs), cc.to(torch.device("cpu")).truths(log_probs)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(cc.loss(log_probs), cc.loss(log_probs))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    rng, kw = _image_problem()
    cc = CompiledConstraints.build(**kw)
    log_probs = torch.log_softmax(torch.tensor(rng.normal(size=(5, 48, 48)), dtype=torch.float64), dim=0)
    cpu = cc.truths(log_probs)
    gpu = cc.to(torch.device("cuda")).truths(log_probs.cuda())
    for k in cpu:
        assert gpu[k].item() == pytest.approx(cpu[k].item(), rel=1e-9)


def test_no_valid_pixel_means_no_constraint_and_zero_loss():
    _, kw = _image_problem()
    kw["valid"] = np.zeros((48, 48), bool)
    cc = CompiledConstraints.build(**kw)
    log_probs = torch.zeros(5, 48, 48, requires_grad=True)
    loss = cc.loss(log_probs)
    loss.backward()
    assert cc.constraints == {} and loss.item() == 0 and (log_probs.grad == 0).all()


def test_perfect_labelling_satisfies_weak_label_constraints():
    # One-hot masks equal to the boxes (rectangular objects), scribbles drawn inside them.
    _, kw = _image_problem()
    kw["boxes"] = np.array([[2, 3, 12, 10], [20, 20, 30, 40]])
    kw["box_classes"] = np.array([1, 3])
    scribbles = np.full((48, 48), 255)
    scribbles[5, 3:10], scribbles[30, 22:28], scribbles[45, :20] = 1, 3, 0
    kw["scribbles"] = scribbles
    labels = np.zeros((48, 48), np.int64)
    labels[3:10, 2:12], labels[20:40, 20:30] = 1, 3
    log_probs = torch.log(torch.nn.functional.one_hot(torch.as_tensor(labels), 5).permute(2, 0, 1).double())
    cc = CompiledConstraints.build(config=ConstraintConfig(normalisation="mean"), **kw)
    truths = cc.truths(log_probs)
    for name in ("background", "box_tightness", "scribbles"):
        assert truths[name].item() / cc.num_groundings[name] > -2 * EPS, name
    # ...and a box shifted by 3 pixels breaks box tightness and background.
    shifted = torch.roll(log_probs, shifts=3, dims=2)
    worse = cc.truths(shifted)
    assert worse["box_tightness"] < truths["box_tightness"] - 10
    assert worse["background"] < truths["background"] - 10


def test_build_rejects_bad_input():
    _, kw = _image_problem()
    with pytest.raises(ValueError, match="box classes"):
        CompiledConstraints.build(**{**kw, "box_classes": np.array([1, 2, 9])})
    with pytest.raises(ValueError, match="scribble labels"):
        bad = kw["scribbles"].copy()
        bad[0, 0] = 7
        CompiledConstraints.build(**{**kw, "scribbles": bad})
    with pytest.raises(ValueError, match="normalisation"):
        ConstraintConfig(normalisation="median")
    with pytest.raises(ValueError, match="unknown constraint .neighborhood.; registered"):
        ConstraintConfig.from_dict({"neighborhood": 1.0})
    cfg = ConstraintConfig.from_dict({"neighbourhood": 0.5, "normalisation": "sum"})
    assert cfg.weights["neighbourhood"] == 0.5 and cfg.normalisation == "sum"
    cc = CompiledConstraints.build(**kw)
    with pytest.raises(ValueError, match="log_probs must be"):
        cc.loss(torch.zeros(4, 48, 48))


def test_neighbour_sum_is_its_own_adjoint():
    t = torch.randn(3, 7, 9, dtype=torch.float64, requires_grad=True)
    for conn in (4, 8):
        assert torch.autograd.gradcheck(lambda s: neighbour_sum(s, connectivity=conn), (t,))


# -- superpixels ---------------------------------------------------------------------------------------
def test_superpixels_respect_a_colour_border_and_padding():
    from logic.superpixels import boundary_recall, compute_superpixels

    image = np.zeros((40, 60, 3), np.uint8)
    image[:, 25:] = (200, 30, 30)
    valid = np.ones((40, 60), bool)
    valid[:, 50:] = False
    sp = compute_superpixels(image, valid=valid, n_segments=12)
    assert (sp[:, 50:] == -1).all() and (sp[valid] >= 0).all()
    left, right = set(np.unique(sp[:, :25])), set(np.unique(sp[:, 25:50]))
    assert not left & right  # no segment straddles the colour border
    gt = np.zeros((40, 60), np.int64)
    gt[:, 25:] = 1
    assert boundary_recall(sp, gt, tolerance=0, valid=valid) == 1.0
    assert boundary_recall(np.zeros_like(gt), gt, tolerance=2) == 0.0
    # A void band along the border is filled by the nearest labels: the border stays where it was.
    gt_void = gt.copy()
    gt_void[:, 24:27] = 255
    assert boundary_recall(sp, gt_void, tolerance=1, valid=valid) == 1.0


def test_superpixels_of_a_valid_rectangle_are_those_of_the_crop():
    """SAM's padded frame: the valid cells are a rectangle, segmented as a crop (no mask: skimage's
    masked SLIC seeds by k-means over every pixel). A valid region of another shape keeps the mask."""
    from logic.superpixels import compute_superpixels

    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)
    valid = np.zeros((40, 60), bool)
    valid[:30, :45] = True
    sp = compute_superpixels(image, valid=valid, n_segments=20)
    assert np.array_equal(sp[:30, :45], compute_superpixels(image[:30, :45], n_segments=20))
    assert (sp[~valid] == -1).all()
    notched = valid.copy()
    notched[:5, :5] = False
    sp2 = compute_superpixels(image, valid=notched, n_segments=20)
    assert (sp2[~notched] == -1).all() and (sp2[notched] >= 0).all()


def test_border_precision_uses_superpixels_from_compute_superpixels():
    from logic.superpixels import compute_superpixels

    image = np.zeros((16, 16, 3), np.uint8)
    image[:, 8:] = 255
    sp = compute_superpixels(image, n_segments=4)
    labels = torch.zeros(16, 16, dtype=torch.long)
    labels[:, 8:] = 1
    log_probs = torch.log(torch.nn.functional.one_hot(labels, 2).permute(2, 0, 1).double())
    cfg = ConstraintConfig({"background": 0, "box_tightness": 0, "scribbles": 0, "neighbourhood": 0})
    cc = CompiledConstraints.build(num_labels=2, boxes=np.zeros((0, 4)), box_classes=np.zeros(0), valid=np.ones((16, 16), bool), superpixels=sp, config=cfg)
    assert cc.truths(log_probs)["border_precision"].item() > -1e-3  # labels agree with the segments
    wrong = torch.roll(log_probs, 3, dims=2)
    assert cc.truths(wrong)["border_precision"].item() < -10


def test_background_allows_classes_annotated_without_a_box():
    """A class clicked but not boxed may lie outside the boxes: there the background constraint is
    ``bg(p) or c(p)``, whose truth for exclusive classes is ``p_bg + p_c`` (probability space)."""
    torch.manual_seed(0)
    log_probs = torch.log_softmax(torch.randn(3, 8, 9, dtype=torch.float64) * 3, dim=0)
    boxes = torch.tensor([[1, 1, 4, 5]])
    cfg = ConstraintConfig(weights={"background": 1.0})
    common = dict(num_labels=3, valid=torch.ones(8, 9, dtype=torch.bool), boxes=boxes, box_classes=torch.tensor([1]),
                  config=cfg)
    outside = torch.ones(8, 9, dtype=torch.bool)
    outside[1:5, 1:4] = False
    p = log_probs.exp()
    plain = CompiledConstraints.build(**common).truths(log_probs)["background"]
    assert torch.allclose(plain, p[0][outside].clamp(DEFAULT_EPS, 1 - DEFAULT_EPS).log().sum())
    mixed = CompiledConstraints.build(**common, unboxed_labels=[2]).truths(log_probs)["background"]
    ref = (p[0] + p[2])[outside].clamp(max=1.0).log().sum()
    assert torch.allclose(mixed, ref, rtol=1e-6)
    assert mixed > plain  # a clicked class outside the boxes is no longer a violation
