"""Property tests of the kaiming family (one per claim ID) and of the mean-field theory.

Each claim test states a property of the science at small sizes and lets hypothesis search for
a counterexample; tolerances come from the sampling statistics of the quantity (comments say
which), and each strategy spans the property's true domain, stated in the test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from ablations.experiments import theory
from ablations.experiments.deep import (
    finite_width_drift,
    gaussian_stack,
    kaiming_normal_draws,
    linear_default_draws,
    matmul_draws,
    matmul_std_rel_sd,
    mode_stack,
    std_rel_sd,
    torch_linear,
)
from makemore.models import GAINS, deep, mlp
from makemore.modules import Streams

seeds = st.integers(0, 2**31 - 1)


def generator(seed: int, stream: int) -> torch.Generator:
    """An independent stream for inputs (torch keeps seeds mod 2^32)."""
    return torch.Generator().manual_seed((seed + stream * 0x9E3779B9) % 2**32)


@pytest.mark.claim("kaiming.fan-in")
@given(fan_in=st.integers(1, 300), fan_out=st.integers(20, 300), scale=st.floats(0.05, 10.0),
       seed=seeds)
def test_kaiming_fan_in(fan_in, fan_out, scale, seed):
    """std(x @ (W * scale)) = sqrt(fan_in) * scale for Gaussian x and W of any shape, so W /
    sqrt(fan_in) gives 1 whatever the fan-in: every draw of the claim's own measurement lies
    within 5 sampling sd of it (probability 6e-7 per draw to exceed)."""
    rows = matmul_draws([seed], 500, fan_out, [fan_in], [scale])
    assert np.all(rows.z.abs() <= 5)
    unit = rows[rows.scale == "1/sqrt(fan_in)"]["std"].iloc[0]
    assert abs(unit - 1) <= 5 * matmul_std_rel_sd(fan_in, fan_out, 500)


@pytest.mark.claim("kaiming.relu-gain")
@given(width=st.integers(64, 256), depth=st.integers(3, 12), seed=seeds)
def test_kaiming_relu_gain(width, depth, seed):
    """ReLU halves the second moment: gain sqrt 2 keeps the variance through depth, gain 1
    loses a bit per layer; without ReLU gain 1 keeps it (the control)."""
    scale = 1 / math.sqrt(width)
    for phi, gain, bits in (("relu", math.sqrt(2), 0.0), ("relu", 1.0, -1.0),
                            ("linear", 1.0, 0.0)):
        rows = gaussian_stack([seed], [width] * (depth + 1),
                              [scale] + [gain * scale] * (depth - 1), phi, batch=128)
        growth = 2 * math.log2(rows.pre_std.iloc[-1] / rows.pre_std.iloc[0])
        # Each layer's variance ratio has variance at most 5/n (ReLU) or 2/n (linear): over
        # depth - 1 layers log2 of the product drifts by at most (depth - 1) x the single-input
        # drift and has sd sqrt((depth - 1) Var) / ln 2; 5 sd, plus 0.05 bit for the batch's
        # own sampling of the two stds.
        var = {"relu": 5.0, "linear": 2.0}[phi] / width
        drift = (depth - 1) * abs(finite_width_drift(phi, width))
        assert abs(growth - (depth - 1) * bits) <= (
            drift + 5 * math.sqrt((depth - 1) * var) / math.log(2) + 0.05)


def drift_sd_bits(widths: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Finite-width sd of log2 std per layer of a ReLU net, forward and backward: ln q drifts
    with variance 5 sum(1/n_k) over the layers crossed (Hanin & Nica 2019)."""
    inverse = 1.0 / np.asarray(widths[1:], dtype=float)
    forward = np.sqrt(5 * np.cumsum(inverse)) / (2 * math.log(2))
    backward = np.sqrt(5 * np.cumsum(inverse[::-1])[::-1]) / (2 * math.log(2))
    return forward, backward


@pytest.mark.claim("kaiming.mode")
@given(widths=st.lists(st.integers(64, 512), min_size=3, max_size=10), seed=seeds)
def test_kaiming_mode(widths, seed):
    """Whatever the widths and depth, fan_in and fan_out mode differ only by the end widths'
    ratio: forward by 0.5 log2(n_0 / n_L), backward by 0.5 log2(n_L / n_1), in bits of std."""
    depth = len(widths) - 1
    ends = {}
    for mode, offset in (("fan_in", 0), ("fan_out", 1)):
        rows = mode_stack([(seed + offset) % 2**31], widths, mode, batch=128)
        ends[mode] = (rows.pre_std.iloc[-1], rows.grad_std.iloc[0])
    forward, backward = drift_sd_bits(widths)
    # Two independent nets: sqrt 2 times one net's drift sd; 5 sd, plus 0.1 bit for the batch's
    # sampling of the stds at the narrowest widths.
    forward_gap = math.log2(ends["fan_out"][0] / ends["fan_in"][0])
    backward_gap = math.log2(ends["fan_in"][1] / ends["fan_out"][1])
    assert abs(forward_gap - 0.5 * math.log2(widths[0] / widths[-1])) <= (
        5 * math.sqrt(2) * forward[depth - 1] + 0.1)
    assert abs(backward_gap - 0.5 * math.log2(widths[-1] / widths[1])) <= (
        5 * math.sqrt(2) * backward[0] + 0.1)


@pytest.mark.claim("kaiming.gains")
@given(slope=st.floats(0.0, 1.0), fan_in=st.integers(1, 2000), seed=seeds)
def test_kaiming_gains(slope, fan_in, seed):
    """calculate_gain gives 1, 5/3, sqrt 2 (and the library's GAINS agree); kaiming_normal_
    draws with std gain / sqrt(fan_in) for any fan-in (and leaky slope): every draw of the
    claim's measurement within 5 sampling sd of a Gaussian sample std."""
    assert torch.nn.init.calculate_gain("linear") == 1
    assert torch.nn.init.calculate_gain("tanh") == 5 / 3
    assert torch.nn.init.calculate_gain("relu") == math.sqrt(2)
    for nonlinearity in ("linear", "sigmoid", "tanh", "relu", "leaky_relu"):
        assert GAINS[nonlinearity] == torch.nn.init.calculate_gain(nonlinearity)
    assert np.all(kaiming_normal_draws([seed], [fan_in], 200_000).z.abs() <= 5)
    weight = torch.empty(max(1, 200_000 // fan_in), fan_in)
    torch.nn.init.kaiming_normal_(weight, a=slope, nonlinearity="leaky_relu",
                                  generator=generator(seed, 0))
    gain = torch.nn.init.calculate_gain("leaky_relu", slope)
    assert abs(weight.std().item() * math.sqrt(fan_in) / gain - 1) <= 5 * std_rel_sd(
        weight.numel(), 3.0)


@pytest.mark.claim("kaiming.tanh-gain")
@given(gain=st.floats(0.3, 3.0).filter(lambda g: not 0.9 < g < 1.4), seed=seeds)
def test_kaiming_tanh_gain(gain, seed):
    """tanh is contractive: below gain 1 the std of a deep tanh stack keeps shrinking; from
    1.4 up it settles where the mean-field recursion says (a nonzero fixed point). Between 0.9
    and 1.4 twenty layers cannot tell the two apart (the approach to q* = 0 is slow), so the
    simulated property is stated outside it; the theory holds everywhere."""
    width, depth = 256, 20
    rows = gaussian_stack([seed], [width] * (depth + 1), [gain / math.sqrt(width)] * depth,
                          "tanh", batch=128)
    std = rows.set_index("layer").post_std
    if gain <= 0.9:
        # gain 0.9: layer 20 / layer 10 = 0.33 (sd 0.012 over nets); 0.85 leaves > 40 sd
        assert std[depth] / std[depth // 2] < 0.85
        assert theory.fixed_point(gain).q == 0.0
    else:
        predicted = theory.variance_recursion(gain, depth, gain**2).std[-1]
        # per-net relative sd of the last layer's std: 0.7% at gain 1.4, less above; 5 sd
        assert abs(std[depth] / predicted - 1) <= 0.035
        assert theory.fixed_point(gain).q > 0.0
    assert theory.tanh_second_moment(gain**2) < gain**2  # contractive: E[tanh(x)^2] < E[x^2]
    assert abs(5 / 3 / theory.unit_variance_gain() - 1) < 0.05  # 5/3 ~ 1/std(tanh(z))


@pytest.mark.claim("kaiming.mlp")
@given(n_embd=st.integers(2, 24), block_size=st.integers(1, 8),
       nonlinearity=st.sampled_from(["tanh", "relu", "linear"]), seed=seeds)
def test_kaiming_mlp(n_embd, block_size, nonlinearity, seed):
    """The Kaiming MLP needs no magic number: W1 has std gain / sqrt(fan_in) (0.304 ~ 0.3 at
    the notebook's 30), so the hidden pre-activations have std ~ gain for any embedding size
    and context, where a hand-tuned 0.2 gives 0.2 sqrt(fan_in), which drifts with fan_in."""
    assert round(GAINS["tanh"] / math.sqrt(30), 1) == 0.3
    model = mlp(Streams([seed]), "kaiming", n_embd=n_embd, block_size=block_size,
                nonlinearity=nonlinearity)
    fan_in = n_embd * block_size
    w1 = model.layers[2].weight
    expected = GAINS[nonlinearity] / math.sqrt(fan_in)
    assert abs(w1.std().item() / expected - 1) <= 5 * std_rel_sd(w1.numel(), 3.0)
    x = torch.randint(0, 27, (1, 2000, block_size), generator=generator(seed, 1))
    with torch.no_grad():
        model(x)
    embedding_rms = model.layers[0].weight.pow(2).mean().sqrt().item()
    pre = model.layers[2].out.std().item() / embedding_rms
    # pre / gain fluctuates with W1's column norms (chi-square with fan_in dof over 200 units)
    # and the 27 embedding rows: relative sd ~ sqrt(1/(2 * 200) + 1/27); 5 sd.
    assert abs(pre / GAINS[nonlinearity] - 1) <= 5 * math.sqrt(1 / 400 + 1 / 27)


@pytest.mark.claim("kaiming.linear-default")
@given(fan_in=st.integers(1, 2000), seed=seeds)
def test_kaiming_linear_default(fan_in, seed):
    """torch.nn.Linear's default weights are U(-1/sqrt(fan_in), 1/sqrt(fan_in)): the bound is
    the lecture's 1/sqrt(fan_in), the std 1/sqrt(3 fan_in) (every draw of the claim's
    measurement within 5 sampling sd of a uniform sample std); unit Gaussian input leaves a
    default layer with variance 1/3, not 1."""
    draws = linear_default_draws([seed], [fan_in], 200_000).iloc[0]
    assert abs(draws.z) <= 5
    assert draws["max |w| x sqrt(fan_in)"] <= 1 + 2**-23  # the bound, to float32 rounding
    assert abs(draws["std x sqrt(fan_in)"] - 1) > 0.4  # gain 1 is far: 1 - 1/sqrt(3) = 0.42
    w = torch_linear(fan_in, max(1, 200_000 // fan_in), seed).weight.detach()
    batch, units = 512, w[: max(256, 20_000 // fan_in)]
    x = torch.randn(batch, fan_in, generator=generator(seed, 1))
    with torch.no_grad():
        variance = (x @ units.T).var().item()
    # Weights only: variance E[x^2] |w_row|^2 = 1/3 on average. Relative sd at most sqrt(2 /
    # batch) (the batch's second moment) plus the weights' sqrt(0.8 / numel); 5 sd.
    tolerance = 5 * (math.sqrt(2 / batch) + math.sqrt(0.8 / units.numel()))
    assert abs(3 * variance - 1) <= tolerance
    assert tolerance < 0.5  # so a gain-1 layer's variance 1 (3 here) lies far outside


@pytest.mark.claim("kaiming.less-important")
@given(gain=st.floats(0.05, 20.0), scale=st.floats(1e-3, 1e3), seed=seeds)
def test_kaiming_less_important(gain, scale, seed):
    """Two of the innovations remove the init's scale by construction: BatchNorm makes the
    network's function at init independent of the hidden weights' gain (it divides the scale
    out; without it the logits change, the control), and Adam's first update is the same
    whatever the scale of a parameter's gradient (SGD's scales with it). Adam's part holds
    where the gradient dwarfs its eps (1e-8): gradients of 1e-3 x scale >= 1e-6."""
    x = torch.randint(0, 27, (1, 64, 3), generator=generator(seed, 1))
    logits = {}
    for bn in ("before", "none"):
        for g in (1.0, gain):
            model = deep(Streams([seed]), batchnorm=bn, bn_eps=0.0, gain=g)
            with torch.no_grad():
                logits[bn, g] = model(x)
    # float32 through 5 normalised layers: ~1e-5 relative; 1e-4 allows for it.
    torch.testing.assert_close(logits["before", gain], logits["before", 1.0], rtol=1e-4,
                               atol=1e-5)
    if abs(math.log(gain)) > 0.1:
        assert not torch.allclose(logits["none", gain], logits["none", 1.0], rtol=1e-3, atol=1e-4)
    grad = 1e-3 * (torch.rand(100, generator=generator(seed, 2)) + 0.5)
    steps = {}
    for c in (1.0, scale):
        p = torch.zeros(100, requires_grad=True)
        adam = torch.optim.Adam([p], lr=1e-3)
        p.grad = c * grad
        adam.step()
        steps[c] = p.detach().clone()
    # Adam's first step is lr g / (|g| + eps): off lr by eps / |g| at most, plus float rounding
    rtol = 1e-8 / (grad.min().item() * min(scale, 1.0)) + 1e-6
    torch.testing.assert_close(steps[scale], steps[1.0], rtol=rtol, atol=0.0)


@pytest.mark.claim("kaiming.deep-unforgiving")
@given(gain=st.floats(0.2, 0.8), depth=st.integers(2, 50), width=st.integers(64, 256),
       seed=seeds)
def test_kaiming_deep_unforgiving(gain, depth, width, seed):
    """Below gain 1 a tanh stack loses its input signal at least as fast as gain^depth: since
    E[tanh(a)^2] <= E[a^2], each layer multiplies the variance by at most gain^2 times a
    finite-width factor. One layer passes a usable signal; fifty at gain 0.5 pass 1e-15 of it,
    nothing a network can learn from."""
    rows = gaussian_stack([seed], [width] * (depth + 1), [gain / math.sqrt(width)] * depth,
                          "tanh", batch=128)
    shrink = math.log(rows.post_std.iloc[-1] / rows.post_std.iloc[0])
    # ln of a layer's variance factor has mean -1/n and variance 2/n (a chi-square over n);
    # over depth - 1 layers, 5 sd of their sum, halved for the std.
    slack = 2.5 * math.sqrt(2 * (depth - 1) / width)
    assert shrink <= (depth - 1) * math.log(gain) + slack
    assert rows.post_std.iloc[0] > 0.1  # the first layer's signal is fine: std ~ gain


# --- ablations/experiments/theory.py --------------------------------------------------------------


@given(q=st.floats(1e-4, 50.0), seed=seeds)
def test_theory_tanh_moments_match_sampling(q, seed):
    """Quadrature against a Monte Carlo mean of 1e6 draws (5 standard errors)."""
    z = np.random.default_rng(seed).standard_normal(1_000_000)
    t2 = np.tanh(math.sqrt(q) * z) ** 2
    assert abs(theory.tanh_second_moment(q) - t2.mean()) <= 5 * t2.std() / 1000 + 1e-12
    d2 = (1 - t2) ** 2
    assert abs(theory.derivative_moment(q, "tanh") - d2.mean()) <= 5 * d2.std() / 1000 + 1e-12


@given(gain=st.floats(0.0, 4.0), bias_var=st.sampled_from([0.0, 1e-3, 0.1]))
def test_theory_fixed_point(gain, bias_var):
    """q* solves the recursion and attracts it; without bias it is 0 up to gain 1."""
    fp = theory.fixed_point(gain, bias_var=bias_var)
    if gain <= 1 and bias_var == 0:
        assert fp.q == 0
    else:
        assert fp.q == pytest.approx(gain**2 * theory.tanh_second_moment(fp.q) + bias_var,
                                     rel=1e-9, abs=1e-15)
        for start in (fp.q / 2, 2 * fp.q):  # attracting: one step moves toward q*
            step = gain**2 * theory.tanh_second_moment(start) + bias_var
            assert abs(step - fp.q) < abs(start - fp.q)


def test_theory_values():
    r = theory.variance_recursion(math.sqrt(2), 6, 1.0, "relu")
    assert np.allclose(r.q, 1.0) and np.all(np.isnan(r.saturated))
    assert theory.unit_variance_gain() == pytest.approx(1.5925374, rel=1e-6)
    assert theory.tanh_saturation(0.0) == 0.0
    assert np.allclose(theory.gradient_profile(np.array([4.0, 4.0, 4.0])), [4.0, 2.0, 1.0])
    with pytest.raises(ValueError):
        theory.variance_recursion(1.0, 3, 1.0, "gelu")
