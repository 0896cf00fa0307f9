"""Property-based tests of the kaiming family (one per claim ID) and of ablations/theory.py.

Each claim test checks the science directly with the library at small sizes; tolerances come
from the sampling statistics of the quantity (comments say which)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ablations import theory
from ablations.claims.kaiming import (
    drift_sd_bits,
    matmul_std_rel_sd,
    mode_prediction,
    mode_scales,
    offset_seed,
    propagate,
    torch_linear,
)
from makemore.models import GAINS, NOTEBOOK_SEED, deep, mlp
from makemore.modules import Streams

seeds = st.integers(0, 2**31 - 1)


def members(seed: int, **conditions: list) -> pd.DataFrame:
    """A members frame: one member per condition value, seeds seed, seed + 1, ..."""
    (name, values), = conditions.items()
    return pd.DataFrame({"member": range(len(values)), "seed": [seed + i for i in
                                                                 range(len(values))],
                         name: values})


# --- kaiming.fan-in -----------------------------------------------------------------------------

@pytest.mark.claim("kaiming.fan-in")
@settings(max_examples=20)
@given(fan_in=st.integers(1, 300), fan_out=st.integers(20, 300),
       scale=st.floats(0.05, 10.0), seed=seeds)
@example(fan_in=10, fan_out=200, scale=1.0, seed=NOTEBOOK_SEED)
def test_kaiming_fan_in(fan_in, fan_out, scale, seed):
    """std(x @ (W * scale)) = sqrt(fan_in) * scale for Gaussian x and W: dividing W by
    sqrt(fan_in) gives 1 whatever the fan-in."""
    g = torch.Generator().manual_seed(seed)
    batch = 500
    x = torch.randn(batch, fan_in, generator=g, dtype=torch.float64)
    w = torch.randn(fan_in, fan_out, generator=g, dtype=torch.float64)
    predicted = math.sqrt(fan_in) * scale
    # 5 sd of the std's sampling distribution (variance of a sum of products, see
    # matmul_std_rel_sd): exceeded with probability < 1e-6 per example.
    tolerance = 5 * matmul_std_rel_sd(fan_in, fan_out, batch) * predicted
    assert abs((x @ (w * scale)).std().item() - predicted) <= tolerance
    normalised = (x @ (w / math.sqrt(fan_in))).std().item()
    assert abs(normalised - 1.0) <= tolerance / predicted


# --- kaiming.relu-gain --------------------------------------------------------------------------

def relu_log2_growth(width: int, depth: int, seed: int) -> tuple[np.ndarray, float]:
    """log2(q_L / q_1) of a ReLU stack for gain 1 and sqrt 2, and its tolerance in bits."""
    frame = members(seed, gain=[1.0, math.sqrt(2.0)])
    scale = 1 / math.sqrt(width)
    scales = [scale] + [tuple(frame.gain * scale)] * (depth - 1)
    rows = propagate(frame, [width] * (depth + 1), scales, "relu", batch=128)
    first = rows[rows.layer == 1].sort_values("member").pre_std.to_numpy()
    last = rows[rows.layer == depth].sort_values("member").pre_std.to_numpy()
    # ln q drifts with variance 5 sum(1/n) in a finite ReLU net (Hanin & Nica 2019): 4 sd in
    # bits of variance, plus the drift's downward bias Var / 2 (also in bits).
    sd = math.sqrt(5 * (depth - 1) / width) / math.log(2)
    return 2 * np.log2(last / first), 4 * sd + sd**2 * math.log(2) / 2


@pytest.mark.claim("kaiming.relu-gain")
@settings(max_examples=10)
@given(width=st.integers(128, 384), depth=st.integers(4, 12), seed=seeds)
def test_kaiming_relu_gain(width, depth, seed):
    """ReLU halves the second moment: gain sqrt 2 keeps the variance through depth, gain 1
    halves it at every layer (-1 bit per layer)."""
    growth, tolerance = relu_log2_growth(width, depth, seed)
    assert abs(growth[1]) <= tolerance  # gain sqrt 2
    assert abs(growth[0] + (depth - 1)) <= tolerance  # gain 1


# --- kaiming.mode -------------------------------------------------------------------------------

@pytest.mark.claim("kaiming.mode")
@settings(max_examples=10)
@given(widths=st.lists(st.integers(64, 512), min_size=4, max_size=10), seed=seeds)
def test_kaiming_mode(widths, seed):
    """fan_in keeps the forward std at 1 and fan_out the gradient std at 1/sqrt 2 (behind a
    ReLU); the other pass is off by the end widths' ratio only, never by a depth effect."""
    frame = pd.DataFrame({"member": [0, 1], "seed": [seed, seed + 1],
                          "mode": ["fan_in", "fan_out"]})
    rows = propagate(frame, widths, mode_scales(widths, list(frame["mode"])), "relu", batch=128,
                     backward=True)
    sd_forward, sd_backward = drift_sd_bits(widths)
    depth = len(widths) - 1
    for mode, member in (("fan_in", 0), ("fan_out", 1)):
        forward, backward = mode_prediction(widths, mode)
        mine = rows[rows.member == member].set_index("layer")
        # 4 sd of the finite-width log-normal drift (bits of std), plus its bias.
        checks = ((depth, mine.pre_std, forward, sd_forward),
                  (1, mine.grad_std, backward, sd_backward))
        for layer, measured, predicted, sd in checks:
            error = math.log2(measured[layer] / predicted[layer - 1])
            assert abs(error) <= 4 * sd[layer - 1] + sd[layer - 1] ** 2 * math.log(2), (mode, layer)


# --- kaiming.gains ------------------------------------------------------------------------------

@pytest.mark.claim("kaiming.gains")
@settings(max_examples=20)
@given(nonlinearity=st.sampled_from(["linear", "sigmoid", "tanh", "relu", "leaky_relu"]),
       slope=st.floats(0.0, 1.0), fan_in=st.integers(1, 2000), seed=seeds)
def test_kaiming_gains(nonlinearity, slope, fan_in, seed):
    """calculate_gain gives 1, 5/3, sqrt 2 (and the library's GAINS agree); kaiming_normal_
    draws with std gain / sqrt(fan_in) for any fan-in and leaky slope."""
    assert torch.nn.init.calculate_gain("linear") == 1
    assert torch.nn.init.calculate_gain("tanh") == 5 / 3
    assert torch.nn.init.calculate_gain("relu") == math.sqrt(2)
    assert GAINS[nonlinearity] == torch.nn.init.calculate_gain(nonlinearity)
    param = slope if nonlinearity == "leaky_relu" else None
    gain = torch.nn.init.calculate_gain(nonlinearity, param)
    weight = torch.empty(max(1, 200_000 // fan_in), fan_in)
    extra = {"a": slope} if nonlinearity == "leaky_relu" else {}
    torch.nn.init.kaiming_normal_(weight, nonlinearity=nonlinearity,
                                  generator=torch.Generator().manual_seed(seed), **extra)
    predicted = gain / math.sqrt(fan_in)
    # A Gaussian sample std has sd sigma / sqrt(2 n); 5 sd.
    assert abs(weight.std().item() - predicted) <= 5 * predicted / math.sqrt(2 * weight.numel())


# --- kaiming.tanh-gain --------------------------------------------------------------------------

@pytest.mark.claim("kaiming.tanh-gain")
@settings(max_examples=8)
@given(gain=st.floats(1.3, 3.0), seed=seeds)
@example(gain=5 / 3, seed=NOTEBOOK_SEED)
def test_kaiming_tanh_gain(gain, seed):
    """A tanh stack with gain > 1 settles at the mean-field fixed point (stationary std); gain 1
    contracts towards 0; 5/3 puts q* near 1 with about 5% of units beyond 0.97."""
    width, depth = 256, 20
    frame = members(seed, gain=[1.0, gain])
    scales = [tuple(frame.gain / math.sqrt(width))] * depth
    rows = propagate(frame, [width] * (depth + 1), scales, "tanh", batch=128)
    std = rows.pivot(index="layer", columns="member", values="post_std")
    predicted = theory.variance_recursion(gain, depth, gain**2).std[-1]
    # In the attracting regime a layer's std fluctuates by ~sqrt(2 / (n B)) / 2 = 0.4% per
    # layer at n=256, B=128, damped by the map; 5% is > 4 sd of the accumulated sum plus the
    # O(1/n) finite-width bias.
    assert std[1][depth] == pytest.approx(predicted, rel=0.05)
    assert std[1][depth] / std[1][depth // 2] == pytest.approx(1.0, rel=0.05)  # stationary
    # Gain 1: the recursion predicts a slow 1/sqrt(2l) decay; it must fall by > 15% over the
    # second half of the stack (the recursion gives 29%).
    assert std[0][depth] / std[0][depth // 2] < 0.85
    fixed = theory.fixed_point(5 / 3)
    assert 0.045 <= fixed.saturated <= 0.055 and 1.0 < fixed.q < 1.25
    assert abs(5 / 3 / theory.unit_variance_gain() - 1) < 0.05


# --- kaiming.mlp --------------------------------------------------------------------------------

@pytest.mark.claim("kaiming.mlp")
@settings(max_examples=15)
@given(n_embd=st.integers(2, 24), block_size=st.integers(1, 8),
       nonlinearity=st.sampled_from(["tanh", "relu", "linear"]), seed=seeds)
def test_kaiming_mlp(n_embd, block_size, nonlinearity, seed):
    """The kaiming MLP needs no magic number: W1 has std gain / sqrt(fan_in) (0.304 ~ 0.3 at
    the notebook's 30), so the hidden pre-activations have std ~ gain for any embedding size
    and context, where the hand-tuned 0.2 gives 0.2 sqrt(fan_in), which drifts with fan_in."""
    assert round(GAINS["tanh"] / math.sqrt(30), 1) == 0.3
    streams = Streams([seed])
    model = mlp(streams, "kaiming", n_embd=n_embd, block_size=block_size,
                nonlinearity=nonlinearity)
    fan_in = n_embd * block_size
    w1 = model.layers[2].weight
    expected = GAINS[nonlinearity] / math.sqrt(fan_in)
    # Sample std of fan_in * 200 Gaussian draws: sd = sigma / sqrt(2 n); 5 sd.
    assert abs(w1.std().item() - expected) <= 5 * expected / math.sqrt(2 * w1.numel())
    inputs = torch.Generator().manual_seed(offset_seed(seed, 1))  # not the parameters' stream
    x = torch.randint(0, 27, (1, 2000, block_size), generator=inputs)
    with torch.no_grad():
        model(x)
    embedding_rms = model.layers[0].weight.pow(2).mean().sqrt().item()
    pre = model.layers[2].out.std().item() / embedding_rms
    # pre / gain fluctuates with W1's column norms (chi-square with fan_in dof over 200 units)
    # and the 27 embedding rows: relative sd ~ sqrt(1/(2 * 200) + 1/27); 5 sd.
    assert abs(pre / GAINS[nonlinearity] - 1) <= 5 * math.sqrt(1 / 400 + 1 / 27)


# --- kaiming.linear-default ---------------------------------------------------------------------

@pytest.mark.claim("kaiming.linear-default")
@settings(max_examples=20)
@given(fan_in=st.integers(1, 2000), seed=seeds)
def test_kaiming_linear_default(fan_in, seed):
    """torch.nn.Linear's default weights are U(-1/sqrt(fan_in), 1/sqrt(fan_in)): std
    1/sqrt(3 fan_in), not the lecture's 1/sqrt(fan_in); its weights map unit-variance Gaussian
    input to variance 1/3, not 1."""
    layer = torch_linear(fan_in, max(1, 200_000 // fan_in), seed)
    w = layer.weight.detach()
    sd = (1 / math.sqrt(3 * fan_in)) / math.sqrt(5 * w.numel())  # uniform sample std: s/sqrt(5n)
    assert abs(w.std().item() - 1 / math.sqrt(3 * fan_in)) <= 5 * sd
    assert abs(w.std().item() - 1 / math.sqrt(fan_in)) > 100 * sd  # the source's value is far
    assert w.abs().max().item() <= 1 / math.sqrt(fan_in)
    batch = 512
    # Another stream than the weights' (the same seed would correlate x with W).
    x = torch.randn(batch, fan_in, generator=torch.Generator().manual_seed(offset_seed(seed, 1)))
    with torch.no_grad():
        variance = (x @ w.T).var().item()
    # Weights only: variance fan_in * E[x^2] / (3 fan_in) = 1/3. Its relative sd is at most
    # sqrt(2 / batch) (the batch's second moment) plus the weights' sqrt(0.8 / numel); 5 sd.
    rel = 5 * (math.sqrt(2 / batch) + math.sqrt(0.8 / w.numel()))
    assert abs(3 * variance - 1) <= rel
    assert variance < 1 - rel  # a gain-1 init would give 1: one default layer loses 2/3


# --- kaiming.less-important ---------------------------------------------------------------------

@pytest.mark.claim("kaiming.less-important")
@settings(max_examples=10)
@given(gain=st.floats(0.05, 20.0), seed=seeds)
def test_kaiming_less_important(gain, seed):
    """BatchNorm makes the network's function at init independent of the hidden weights' gain
    (it divides the scale out); without BatchNorm the gain changes the logits (the control)."""
    inputs = torch.Generator().manual_seed(offset_seed(seed, 1))
    x = torch.randint(0, 27, (1, 64, 3), generator=inputs)
    logits = {}
    for bn in ("before", "none"):
        for g in (1.0, gain):
            model = deep(Streams([seed]), batchnorm=bn, bn_eps=0.0, gain=g)
            with torch.no_grad():
                logits[bn, g] = model(x)
    # float32 through 5 normalised layers: agreement to ~1e-5 relative; 1e-4 allows for it.
    torch.testing.assert_close(logits["before", gain], logits["before", 1.0], rtol=1e-4,
                               atol=1e-5)
    if abs(math.log(gain)) > 0.1:
        assert not torch.allclose(logits["none", gain], logits["none", 1.0], rtol=1e-3, atol=1e-4)


# --- ablations/theory.py ------------------------------------------------------------------------

@settings(max_examples=20)
@given(q=st.floats(1e-4, 50.0), seed=seeds)
def test_theory_tanh_moments_match_sampling(q, seed):
    """Quadrature against a Monte Carlo mean of 1e6 draws (5 standard errors)."""
    z = np.random.default_rng(seed).standard_normal(1_000_000)
    t2 = np.tanh(math.sqrt(q) * z) ** 2
    assert abs(theory.tanh_second_moment(q) - t2.mean()) <= 5 * t2.std() / 1000 + 1e-12
    d2 = (1 - t2) ** 2
    assert abs(theory.derivative_moment(q, "tanh") - d2.mean()) <= 5 * d2.std() / 1000 + 1e-12


@given(q=st.floats(0.0, 1e4))
def test_theory_closed_forms(q):
    assert theory.relu_second_moment(q) == q / 2
    assert theory.second_moment(q, "linear") == q
    assert theory.post_activation_std(q, "relu") == pytest.approx(
        math.sqrt(q * (0.5 - 1 / (2 * math.pi))), rel=1e-12, abs=1e-300)
    assert theory.tanh_second_moment(q) <= min(q, 1.0) + 1e-15  # tanh is contractive


@given(gain=st.floats(0.0, 4.0), bias_var=st.sampled_from([0.0, 1e-3, 0.1]))
def test_theory_fixed_point(gain, bias_var):
    fp = theory.fixed_point(gain, bias_var=bias_var)
    if gain <= 1 and bias_var == 0:
        assert fp.q == 0
    else:
        assert fp.q == pytest.approx(gain**2 * theory.tanh_second_moment(fp.q) + bias_var,
                                     rel=1e-9, abs=1e-15)
        # attracting: the recursion from far away arrives there
        far = theory.variance_recursion(gain, 400, 25.0, bias_var=bias_var).q[-1]
        assert far == pytest.approx(fp.q, rel=1e-3, abs=1e-4)


def test_theory_recursion_shapes_and_values():
    r = theory.variance_recursion(math.sqrt(2), 6, 1.0, "relu")
    assert r.q.shape == (6,) and np.allclose(r.q, 1.0) and np.all(np.isnan(r.saturated))
    assert theory.unit_variance_gain() == pytest.approx(1.5925374, rel=1e-6)
    assert theory.tanh_saturation(0.0) == 0.0
    with pytest.raises(ValueError):
        theory.variance_recursion(1.0, 3, 1.0, "gelu")


@pytest.mark.slow
def test_kaiming_family_runs_quick(tmp_path):
    """Every kaiming claim through the real runner, quick profile, 2 seeds (about a minute)."""
    from ablations.context import PROFILES, Context
    from ablations.registry import select
    from ablations.runner import run_all

    outcomes = run_all(select(["kaiming"]), Context(PROFILES["quick"], n_seeds=2), tmp_path,
                       report=lambda _: None)
    assert {o.claim_id for o in outcomes} == {
        "kaiming.fan-in", "kaiming.relu-gain", "kaiming.mode", "kaiming.gains",
        "kaiming.tanh-gain", "kaiming.mlp", "kaiming.linear-default", "kaiming.less-important"}
    assert all((tmp_path / o.claim_id / "figure.png").is_file() for o in outcomes)


def test_kaiming_cheap_claims_run(tmp_path):
    """The claims without training through the real runner, quick profile, 2 seeds (seconds)."""
    from ablations.context import PROFILES, Context
    from ablations.registry import select
    from ablations.runner import run_all

    cheap = ["kaiming.fan-in", "kaiming.relu-gain", "kaiming.mode", "kaiming.gains",
             "kaiming.tanh-gain", "kaiming.linear-default"]
    outcomes = run_all(select(cheap), Context(PROFILES["quick"], n_seeds=2), tmp_path,
                       report=lambda _: None)
    verdicts = {o.claim_id: o.verdict for o in outcomes}
    assert verdicts.pop("kaiming.linear-default") == "not reproduced"
    assert set(verdicts.values()) == {"reproduced"}, verdicts
