"""The constraints added for boxes-only training: box fill, zero-shot anchor, colour
affinity. Each log-truth against a probability-space formula computed independently (float64 loops
over pixels), on small hand-made and random problems; gradients finite; wiring through
CompiledConstraints (built only with the data each needs)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from logic import DEFAULT_EPS
from logic.constraints import (
    Atoms,
    BoxFillConstraint,
    ColourAffinityConstraint,
    CompiledConstraints,
    ConstraintConfig,
    ZeroShotAnchorConstraint,
    rgb_to_lab,
)

EPS = DEFAULT_EPS


def clipped(log_probs: torch.Tensor) -> np.ndarray:
    return np.clip(np.exp(log_probs.double().numpy()), EPS, 1 - EPS)


def random_problem(seed: int, K: int = 3, H: int = 7, W: int = 9, scale: float = 3.0):
    rng = np.random.default_rng(seed)
    log_probs = torch.log_softmax(torch.tensor(rng.normal(size=(K, H, W)) * scale, dtype=torch.float64), dim=0)
    valid = rng.random((H, W)) > 0.2
    return rng, log_probs, valid


# -- box fill -----------------------------------------------------------------------------------------
def reference_box_fill(P, boxes, box_classes, valid, rho):
    total, count = 0.0, 0
    for (x0, y0, x1, y1), k in zip(boxes, box_classes):
        cells = [(r, c) for r in range(y0, y1) for c in range(x0, x1) if valid[r, c]]
        if not cells:
            continue
        mean = sum(P[k, r, c] for r, c in cells) / len(cells)
        total += math.log(min(1.0, mean / rho))
        count += 1
    return total, count


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("rho", [0.1, 0.5, 1.0])
def test_box_fill_matches_the_soft_count(seed, rho):
    rng, log_probs, valid = random_problem(seed)
    boxes = np.array([[0, 0, 4, 3], [2, 1, 9, 7], [5, 5, 6, 6]])
    classes = np.array([1, 2, 1])
    c = BoxFillConstraint.build(boxes=torch.tensor(boxes), box_classes=torch.tensor(classes), valid=torch.tensor(valid),
                                num_labels=3, fraction=rho)
    atoms = Atoms(log_probs, valid=torch.tensor(valid))
    ref, n = reference_box_fill(clipped(log_probs), boxes, classes, valid, rho)
    assert c.num_groundings == n
    assert c.truth(atoms).item() == pytest.approx(ref, rel=1e-9, abs=1e-12)
    assert bool((c.groundings(atoms) <= 0).all())


def test_box_fill_hand_made_cross_is_false_filled_box_true():
    # A 4x4 box of class 1: a one-pixel cross (7 of 16 cells) satisfies box tightness, not "fills half".
    cross = torch.zeros(2, 4, 4, dtype=torch.float64)
    cross[1, 1, :] = cross[1, :, 1] = 1
    cross[0] = 1 - cross[1]
    valid = torch.ones(4, 4, dtype=torch.bool)
    c = BoxFillConstraint.build(boxes=torch.tensor([[0, 0, 4, 4]]), box_classes=torch.tensor([1]), valid=valid,
                                num_labels=2, fraction=0.75)
    truth = c.truth(Atoms(cross.clamp_min(1e-300).log(), valid=valid)).item()
    p = (7 * (1 - EPS) + 9 * EPS) / 16
    assert truth == pytest.approx(math.log(p / 0.75), rel=1e-9)
    full = torch.stack([torch.zeros(4, 4), torch.ones(4, 4)]).double()
    assert c.truth(Atoms(full.clamp_min(1e-300).log(), valid=valid)).item() == 0.0


# -- zero-shot anchor --------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("tau", [0.5, 0.9])
def test_zero_shot_anchor_matches_the_implication(seed, tau):
    rng, log_probs, valid = random_problem(seed)
    z = torch.log_softmax(torch.tensor(rng.normal(size=log_probs.shape) * 4), dim=0)
    c = ZeroShotAnchorConstraint.build(zero_shot_log_probs=z, valid=torch.tensor(valid), threshold=tau)
    P, Z = clipped(log_probs), np.exp(z.double().numpy())
    total, count = 0.0, 0
    for k, r, col in itertools.product(*map(range, P.shape)):
        if valid[r, col] and Z[k, r, col] >= tau:
            total += math.log(1 - Z[k, r, col] + Z[k, r, col] * P[k, r, col])  # c -> k(p), Reichenbach
            count += 1
    atoms = Atoms(log_probs, valid=torch.tensor(valid), negate_all=bool(seed % 2))
    assert c.num_groundings == count
    assert c.truth(atoms).item() == pytest.approx(total, rel=1e-6, abs=1e-9)


# -- colour affinity ---------------------------------------------------------------------------------
def test_rgb_to_lab_matches_skimage():
    skcolor = pytest.importorskip("skimage.color")
    rgb = np.random.default_rng(0).integers(0, 256, size=(5, 7, 3)).astype(np.uint8)
    np.testing.assert_allclose(rgb_to_lab(torch.tensor(rgb)).double().numpy(), skcolor.rgb2lab(rgb), atol=0.05)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dilation", [1, 2])
def test_colour_affinity_matches_same_class_on_similar_pairs(seed, dilation):
    rng, log_probs, valid = random_problem(seed)
    K, H, W = log_probs.shape
    palette = np.array([[200, 30, 30], [202, 31, 29], [20, 200, 40], [30, 30, 220]], np.uint8)  # two reds alike
    image = palette[rng.integers(0, 4, size=(H, W))]
    inside = np.zeros((H, W), bool)
    inside[1:5, 2:7] = True
    lab = rgb_to_lab(torch.tensor(image)).double().numpy()
    P = clipped(log_probs)
    for box in (None, inside):
        c = ColourAffinityConstraint.build(image=torch.tensor(image), valid=torch.tensor(valid),
                                           inside=None if box is None else torch.tensor(box), theta=2.0,
                                           threshold=0.3, dilation=dilation)
        total, count = 0.0, 0
        for r, col in itertools.product(range(H), range(W)):
            for dr, dc in ((0, dilation), (dilation, 0), (dilation, dilation), (dilation, -dilation)):
                q = (r + dr, col + dc)
                if not (0 <= q[0] < H and 0 <= q[1] < W) or not (valid[r, col] and valid[q]):
                    continue
                if box is not None and not (box[r, col] or box[q]):
                    continue
                if math.exp(-np.linalg.norm(lab[r, col] - lab[q]) / 2.0) < 0.3:
                    continue
                total += math.log(1 - np.prod([1 - P[k, r, col] * P[k][q] for k in range(K)]))  # exists k: k(p) and k(q)
                count += 1
        assert c.num_groundings == count
        assert c.truth(Atoms(log_probs, valid=torch.tensor(valid))).item() == pytest.approx(total, rel=1e-9, abs=1e-12)


# -- through CompiledConstraints ---------------------------------------------------------------------
def _compiled(**weights):
    rng = np.random.default_rng(1)
    H = W = 32
    valid = np.ones((H, W), bool)
    valid[:, 24:] = False  # padding
    image = rng.integers(0, 256, size=(H, W, 3)).astype(np.uint8)
    image[4:20, 4:16] = (180, 40, 40)
    zs = torch.log_softmax(torch.tensor(rng.normal(size=(3, H, W)) * 5, dtype=torch.float32), dim=0)
    cfg = ConstraintConfig(weights)
    return rng, CompiledConstraints.build(num_labels=3, boxes=np.array([[3, 3, 17, 21], [10, 12, 22, 30]]),
                                          box_classes=np.array([1, 2]), valid=valid, image=image,
                                          zero_shot_log_probs=zs, config=cfg)


@pytest.mark.parametrize("scale", [1.0, 30.0, 1e4])
def test_new_constraints_give_finite_loss_and_gradients(scale):
    rng, cc = _compiled(box_fill=1.0, zero_shot_anchor=1.0, colour_affinity=1.0)
    assert {"box_fill", "zero_shot_anchor", "colour_affinity"} <= set(cc.constraints)
    logits = torch.tensor(rng.normal(size=(3, 32, 32)) * scale, dtype=torch.float32, requires_grad=True)
    loss = cc.loss(torch.log_softmax(logits, dim=0))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0
    assert (logits.grad[:, :, 24:] == 0).all()


def test_new_constraints_are_off_by_default_and_need_their_data():
    _, cc = _compiled()
    assert not {"box_fill", "zero_shot_anchor", "colour_affinity"} & set(cc.constraints)
    cc = CompiledConstraints.build(num_labels=3, boxes=np.zeros((0, 4)), box_classes=np.zeros(0), valid=np.ones((8, 8), bool),
                                   config=ConstraintConfig({"box_fill": 1, "zero_shot_anchor": 1, "colour_affinity": 1}))
    assert not {"box_fill", "zero_shot_anchor", "colour_affinity"} & set(cc.constraints)
    with pytest.raises(ValueError):
        ConstraintConfig(options={"box_fill": {"fraction": 0.0}})
    with pytest.raises(ValueError):
        ConstraintConfig.from_dict({"box_fil": 1.0})


def test_foreground_fraction_of_the_training_log():
    from stage1_pseudolabel.pipeline.train_images import foreground_fraction

    log_probs = torch.log(torch.tensor([[[0.9, 0.2], [0.6, 0.1]], [[0.1, 0.8], [0.4, 0.9]]]))  # [2, 2, 2]
    inside = torch.tensor([[True, True], [True, False]])
    assert foreground_fraction(log_probs, inside) == pytest.approx(1 / 3)  # only (0, 1) is fg among the 3
    assert math.isnan(foreground_fraction(log_probs, torch.zeros(2, 2, dtype=torch.bool)))
