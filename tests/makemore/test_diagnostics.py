"""makemore.diagnostics and makemore.stats: the per-member statistics the claims read."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from makemore.diagnostics import (
    UpdateRatios,
    activation_stats,
    dead_units,
    grad_data_ratios,
    never_active,
    per_member_std,
)
from makemore.models import deep
from makemore.modules import Streams, Tanh, member_cross_entropy
from makemore.stats import mean_ci
from makemore.train import TrainConfig, train

EPS = torch.finfo(torch.float32).eps


@given(seed=st.integers(0, 2**31 - 1), members=st.integers(1, 4),
       shape=st.lists(st.integers(1, 12), min_size=1, max_size=2), shift=st.sampled_from([0, 5]))
def test_per_member_std(seed, members, shape, shift):
    """The unbiased std of each member's entries, computed in float64 and rounded once to
    float32: within one rounding (EPS relative) of the float64 value."""
    if math.prod(shape) < 2:
        shape = [2]
    x = torch.randn(members, *shape, generator=torch.Generator().manual_seed(seed)) + shift
    ours = per_member_std(x)
    exact = x.double().flatten(1).std(1)
    assert ours.dtype == torch.float32 and ours.shape == (members,)
    torch.testing.assert_close(ours.double(), exact, rtol=EPS, atol=0)


@pytest.fixture(scope="module")
def trained(splits):
    """Two members of a small deep tanh net after 3 steps, activation gradients retained."""
    streams = Streams([1, 2])
    model = deep(streams, depth=2, n_hidden=12)
    ratios = UpdateRatios(every=2)
    x, y = splits.train
    train(model, (x[:2000], y[:2000]), TrainConfig(steps=5, lr=0.1), streams, callbacks=[ratios],
          retain_activation_grads=True)
    return model, ratios


def test_activation_stats(trained):
    model, _ = trained
    rows = activation_stats(model, threshold=0.5, kind=Tanh)
    tanhs = [(i, m) for i, m in enumerate(model.modules()) if isinstance(m, Tanh)]
    assert [(r["layer"], r["position"], r["member"]) for r in rows] == [
        (i, p, e) for p, (i, _) in enumerate(tanhs) for e in range(2)]
    for row in rows:
        out = dict(tanhs)[row["layer"]].out
        flat = out[row["member"]].detach().flatten()
        assert row["mean"] == pytest.approx(flat.mean().item(), rel=1e-6)
        assert row["std"] == pytest.approx(flat.std().item(), rel=1e-6)
        assert row["saturated"] == pytest.approx((flat.abs() > 0.5).double().mean().item())
        assert row["grad_std"] == pytest.approx(out.grad[row["member"]].std().item(), rel=1e-6)


def test_grad_data_ratios(trained):
    """One row per 2-D parameter (embedding and weights, not biases) and member."""
    model, _ = trained
    rows = grad_data_ratios(model)
    weights = [(n, p) for n, p in model.named_parameters() if p.dim() == 3]
    assert [(r["parameter"], r["member"]) for r in rows] == [(n, e) for n, _ in weights
                                                            for e in range(2)]
    for row in rows:
        p, e = dict(weights)[row["parameter"]], row["member"]
        expected = (p.grad[e].double().std() / p[e].detach().double().std()).item()
        assert row["grad_data"] == pytest.approx(expected, rel=2 * EPS)


def test_update_ratios(splits):
    """log10(std(lr * grad) / std(data)) at every `every`-th step, read at the callback (before
    the next step), per member and 2-D parameter."""
    streams = Streams([3, 4])
    model = deep(streams, depth=1, n_hidden=8)
    ratios = UpdateRatios(every=2)
    expected = []

    def reference(state):
        if state.step % 2:
            return
        weights = [p for p in state.model.parameters() if p.dim() == 3]
        expected.append([[math.log10((state.lr * p.grad[e]).double().std()
                                     / p[e].detach().double().std()) for p in weights]
                         for e in range(2)])

    x, y = splits.train
    train(model, (x[:500], y[:500]), TrainConfig(steps=5, lr=0.1), streams,
          callbacks=[ratios, reference])
    assert ratios.steps == [0, 2, 4] and len(ratios.names) == 3
    assert ratios.values.shape == (3, 2, 3)
    # float32 stds and their quotient: ~3 EPS relative, i.e. 3 EPS / ln 10 in log10, plus the
    # float32 rounding of a log10 of size ~3 (1 ulp = 2.4e-7): 1e-6 covers both
    reference_values = torch.tensor(expected, dtype=torch.float64)
    torch.testing.assert_close(ratios.values.double(), reference_values, rtol=0, atol=1e-6)


def test_dead_and_never_active_units():
    out = torch.tensor([[[0.99, 0.5, -0.2], [-0.995, 0.1, -0.1]],
                        [[0.2, 0.99, 0.0], [0.3, 0.98, 0.4]]])  # (2 members, 2 examples, 3 units)
    assert dead_units(out, 0.97).tolist() == [1, 1]
    assert never_active(out).tolist() == [1, 0]


def test_mean_ci():
    one = mean_ci([2.5])
    assert (one.mean, one.ci_low, one.ci_high, one.n) == (2.5, 2.5, 2.5, 1)
    values = np.random.default_rng(0).normal(3.0, 0.1, size=16)
    estimate = mean_ci(values)
    assert estimate.ci_low < estimate.mean < estimate.ci_high
    assert estimate.mean == pytest.approx(values.mean())
    # the bootstrap CI of a mean is about mean +- 1.96 * sd / sqrt(n)
    half = 1.96 * values.std(ddof=1) / 4
    assert estimate.ci_high - estimate.ci_low == pytest.approx(2 * half, rel=0.25)
    assert mean_ci(values) == estimate  # a fixed resampling seed
    assert math.isinf(mean_ci([1.0, math.inf]).mean)
    with pytest.raises(ValueError):
        mean_ci([])


def test_member_cross_entropy_of_uniform_logits_is_log_vocab():
    logits = torch.zeros(3, 5, 27)
    targets = torch.randint(0, 27, (3, 5), generator=torch.Generator().manual_seed(0))
    expected = torch.full((3,), math.log(27))
    torch.testing.assert_close(member_cross_entropy(logits, targets), expected)
