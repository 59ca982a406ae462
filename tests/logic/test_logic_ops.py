"""The connectives and quantifiers of logic/ against a direct probability-space reference (float64)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from logic import DEFAULT_EPS, clamp_truth, exists, forall, log_and, log_implies, log_not, log_or

# Any probability a clipped atom can have: [eps, 1 - eps] (plus some far below, which unclipped
# connectives must handle exactly too).
probs = st.one_of(
    st.floats(min_value=DEFAULT_EPS, max_value=1 - DEFAULT_EPS),
    st.floats(min_value=1e-300, max_value=1e-6),
)
ATOL = 1e-9  # float64 log-space comparisons
SETTINGS = settings(max_examples=60, deadline=None)


def vec(n_min: int = 1, n_max: int = 12):
    return st.integers(n_min, n_max).flatmap(lambda n: arrays(np.float64, (n,), elements=probs))


def ref_not(p):
    """The documented negation in probability space: ``1 - min(p, 1 - eps)``."""
    return 1.0 - np.minimum(p, 1.0 - DEFAULT_EPS)


def log_t(p: np.ndarray) -> torch.Tensor:
    return torch.log(torch.as_tensor(p, dtype=torch.float64))


def close_in_log(log_value: torch.Tensor, prob_ref, *, rtol: float = 1e-7) -> None:
    """``log_value`` vs ``log(prob_ref)``, relative in probability space (= absolute in log space)."""
    ref = np.log(np.asarray(prob_ref, np.float64))
    np.testing.assert_allclose(log_value.detach().numpy(), ref, rtol=0, atol=rtol + ATOL)


# -- connectives ----------------------------------------------------------------------------------
@SETTINGS
@given(vec())
def test_not_matches_one_minus_p(p):
    close_in_log(log_not(log_t(p)), ref_not(p))


@SETTINGS
@given(vec(), vec())
def test_and_or_implies_match_reference(p, q):
    n = min(len(p), len(q))
    p, q = p[:n], q[:n]
    x, y = log_t(p), log_t(q)
    # (products of tiny probabilities underflow float64: compare "and" as a sum of logs)
    np.testing.assert_allclose(log_and(x, y).numpy(), np.log(p) + np.log(q), rtol=1e-12)
    close_in_log(log_or(x, y), ref_not(ref_not(p) * ref_not(q)))
    close_in_log(log_implies(x, y), ref_not(p * ref_not(q)))
    inside = (p >= DEFAULT_EPS) & (q >= DEFAULT_EPS)  # clipped atoms: no clamp inside formulas
    close_in_log(log_or(x, y)[torch.as_tensor(inside)], (p + q - p * q)[inside])
    close_in_log(log_implies(x, y)[torch.as_tensor(inside)], (1 - p + p * q)[inside])


def test_not_is_accurate_in_float32_at_both_ends():
    # Near 0 (p -> 1): log(-expm1(x)); far (p -> 0): log1p(-exp(x)). Both must keep full relative
    # precision of 1 - p, which the naive log(1 - exp(x)) loses at one end or the other.
    x64 = torch.tensor([-1e-5, -1e-3, -0.3, -0.69, -0.7, -2.0, -20.0, -60.0], dtype=torch.float64)
    ref = torch.log(-torch.expm1(x64))
    ref[x64 < -0.6] = torch.log1p(-torch.exp(x64[x64 < -0.6]))
    got = log_not(x64.float()).double()
    assert torch.allclose(got, ref, rtol=1e-5, atol=0)


# -- quantifiers ----------------------------------------------------------------------------------
@SETTINGS
@given(st.integers(1, 5), st.integers(1, 6), st.data())
def test_masked_quantifiers_match_reference(rows, cols, data):
    p = data.draw(arrays(np.float64, (rows, cols), elements=probs))
    mask = data.draw(arrays(np.bool_, (rows, cols)))
    x, m = log_t(p), torch.as_tensor(mask)
    for dim in (0, 1):
        sum_log_p = np.where(mask, np.log(p), 0.0).sum(axis=dim)
        prod_not = np.where(mask, ref_not(p), 1.0).prod(axis=dim)
        np.testing.assert_allclose(forall(x, dim=dim, mask=m).numpy(), sum_log_p, rtol=1e-12)
        got_exists = exists(x, dim=dim, mask=m)
        nonempty = mask.any(axis=dim)
        close_in_log(got_exists[torch.as_tensor(nonempty)], ref_not(prod_not)[nonempty], rtol=1e-6)
        # Empty set: forall true, exists false (log(eps) after clamping).
        assert torch.all(forall(x, dim=dim, mask=m)[torch.as_tensor(~nonempty)] == 0)
        assert torch.allclose(got_exists[torch.as_tensor(~nonempty)], torch.tensor(math.log(DEFAULT_EPS), dtype=torch.float64))
    np.testing.assert_allclose(forall(x).numpy(), np.log(p).sum(), rtol=1e-12)
    close_in_log(exists(x), ref_not(ref_not(p).prod()), rtol=1e-6)
    clipped = np.clip(p, DEFAULT_EPS, 1 - DEFAULT_EPS)  # clipped atoms: exists is exact
    close_in_log(exists(clamp_truth(x)), 1 - (1 - clipped).prod(), rtol=1e-6)


def test_exists_of_underflowing_probabilities_keeps_a_gradient():
    # p underflows (and -inf): after clipping to eps, exists is exact, log(1 - (1 - eps)^n), and
    # each atom gets the gradient ~1/n, not zero.
    x = torch.tensor([-1000.0] * 15 + [-math.inf], requires_grad=True)
    e = exists(clamp_truth(x))
    e.backward()
    assert e.item() == pytest.approx(math.log(-math.expm1(16 * math.log1p(-DEFAULT_EPS))), abs=1e-4)
    assert torch.allclose(x.grad, torch.full_like(x, 1 / 16), rtol=1e-3)


# -- clamping and gradients -----------------------------------------------------------------------
SPECIAL = [0.0, -0.0, -1e-12, -1e-7, -1e-6, -1e-3, -0.5, -1.0, -13.8, -30.0, -80.0, -200.0, -1e30, -math.inf]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("clip", [True, False])
def test_values_and_gradients_finite_at_extremes(dtype, clip):
    x = torch.tensor(SPECIAL, dtype=dtype)
    grid = torch.cartesian_prod(x, x)
    a0 = grid[:, 0].clone().requires_grad_()
    b0 = grid[:, 1].clone().requires_grad_()
    a, b = (clamp_truth(a0), clamp_truth(b0)) if clip else (a0, b0)
    outs = [log_not(a), log_or(a, b), log_implies(a, b), exists(torch.stack([a, b]), dim=0)]
    if clip:  # and / forall of -inf are -inf by definition; finite once clipped
        outs += [log_and(a, b), forall(torch.stack([a, b]), dim=0)]
    assert all(torch.isfinite(o).all() for o in outs)
    sum(o.sum() for o in outs).backward()
    assert torch.isfinite(a0.grad).all() and torch.isfinite(b0.grad).all()
    if clip:  # straight-through: every atom moves the truth, saturated or not
        assert (a0.grad != 0).all() and (b0.grad != 0).all()


def test_not_clamps_as_documented():
    x = torch.tensor([0.0, -1e-9, -math.inf], requires_grad=True)
    y = log_not(x)
    assert y[0].item() == pytest.approx(math.log(DEFAULT_EPS), rel=1e-6)
    assert y[1].item() == pytest.approx(math.log(DEFAULT_EPS), rel=1e-6)
    assert -1e-30 < y[2].item() <= 0
    y.sum().backward()
    # Straight-through: a certainly-true atom still learns that lowering it raises its negation.
    assert x.grad[0] < 0 and x.grad[1] < 0 and torch.isfinite(x.grad).all()
    assert x.grad[0].item() == pytest.approx(-1.0 / math.expm1(DEFAULT_EPS), rel=1e-3)
    z = clamp_truth(torch.tensor([-math.inf, 0.0], dtype=torch.float64))
    assert z.tolist() == [math.log(DEFAULT_EPS), math.log1p(-DEFAULT_EPS)]
    assert log_not(z).tolist() == pytest.approx([math.log1p(-DEFAULT_EPS), math.log(DEFAULT_EPS)], rel=1e-9)


def test_gradcheck_away_from_clamps():
    x = torch.tensor([-1e-3, -0.2, -0.69, -0.7, -3.0, -40.0], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([-0.5, -2e-3, -1.0, -5.0, -0.1, -0.01], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: log_not(t), (x,))
    assert torch.autograd.gradcheck(lambda s, t: log_or(s, t), (x, y))
    assert torch.autograd.gradcheck(lambda s, t: log_implies(s, t), (x, y))
    assert torch.autograd.gradcheck(lambda s: exists(s.reshape(2, 3), dim=1), (x,))
