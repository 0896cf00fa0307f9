"""Property-based tests of the tanh family (one per claim ID).

Each test checks the science directly with the library at small sizes; hypothesis draws the
seeds, inputs, units and learning rates the claim quantifies over; tolerances come from float
rounding or from the seed-to-seed spread of the quantity (comments say which).
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ablations.claims.init import mlp_parts
from ablations.claims.tanh import (
    BLOCKED,
    FAN_IN,
    SATURATED,
    hidden_extremes,
    local_gradients,
)
from ablations.theory import tanh_saturation
from makemore.models import NOTEBOOK_SEED, mlp
from makemore.modules import Streams
from makemore.train import TrainConfig, train

EPS32 = torch.finfo(torch.float32).eps
seeds = st.integers(0, 2**31 - 1)
float32s = st.floats(-60, 60, width=32)


@pytest.fixture(scope="module")
def contexts(splits) -> torch.Tensor:
    """The distinct training contexts: a unit's extremes over the split are its extremes here."""
    return torch.unique(splits.train[0], dim=0)


def hidden_batch(splits, seed: int, size: int = 512, **overrides):
    """Pre-activations and tanh outputs of the MLP on `size` training examples: (size, units)."""
    x = splits.train[0]
    pick = torch.randint(0, x.shape[0], (size,), generator=torch.Generator().manual_seed(seed))
    model = mlp(Streams([seed]), "original", **overrides)
    with torch.no_grad():
        model(x[pick].unsqueeze(0))
    return model.layers[2].out[0], model.layers[3].out[0]


@pytest.mark.claim("tanh.saturation")
@settings(max_examples=10)
@given(seed=seeds)
@example(seed=NOTEBOOK_SEED)
def test_tanh_saturation(splits, seed):
    """Plain randn W1, b1: pre-activations of std ~ sqrt(31) = 5.6, whose central 99% spans
    about +-14, and most |h| beyond 0.99 (Gaussian prediction 0.635)."""
    pre, h = hidden_batch(splits, seed)
    share = (h.abs() > SATURATED).double().mean().item()
    predicted = tanh_saturation(FAN_IN + 1.0, SATURATED)
    # Over 64 seeds: share 0.62 +- 0.03, half-width 14.5 +- 1.1, std 5.5 +- 0.4; 5 SD bands.
    assert abs(share - predicted) < 0.15
    low, high = torch.quantile(pre.flatten(), torch.tensor([0.005, 0.995]))
    assert abs((high - low).item() / 2 - 2.576 * math.sqrt(FAN_IN + 1.0)) < 5 * 1.1
    assert share > 0.5
    _, fixed = hidden_batch(splits, seed, w1=0.2, b1=0.01)
    assert (fixed.abs() > SATURATED).double().mean().item() < share / 10


@pytest.mark.claim("tanh.local-gradient")
@given(x=arrays("float32", 64, elements=float32s), g=arrays("float32", 64, elements=float32s))
def test_tanh_local_gradient(x, g):
    """Backward through tanh multiplies the upstream gradient by 1 - t^2: never more than 1,
    exactly 1 at 0, exactly 0 where float32 tanh rounds to +-1 (|x| > 9.011)."""
    x, g = torch.from_numpy(x), torch.from_numpy(g)
    x[0] = 0.0
    grad, t = local_gradients(x, upstream=g), torch.tanh(x)
    assert ((grad - g * (1 - t * t)).abs() <= 2 * EPS32 * g.abs()).all()  # 2 roundings
    assert (grad.abs() <= g.abs()).all()
    assert grad[0] == g[0]
    assert (grad[x.abs() >= 9.02] == 0).all()
    assert (grad[(x.abs() < 9.0) & (g != 0)] != 0).all()


@pytest.mark.claim("tanh.dead-neuron")
@settings(max_examples=10)
@given(seed=seeds, unit=st.integers(0, 199), shift=st.floats(40.0, 1e4))
@example(seed=NOTEBOOK_SEED, unit=0, shift=40.0)
def test_tanh_dead_neuron(splits, contexts, seed, unit, shift):
    """A unit pushed into the tail on every example gets exactly zero gradient into its weights
    and bias while the others learn; the plain init has no such unit on the data."""
    streams = Streams([seed])
    model = mlp(streams, "original")
    low, _ = hidden_extremes(model, contexts)
    assert (low <= SATURATED).all()  # no unit saturated on every distinct context at init
    with torch.no_grad():
        b1 = mlp_parts(model)["b1"]
        b1[0, unit] += math.copysign(shift, b1[0, unit].item())
    grads = {}

    def record(state):
        grads.update({n: p.grad.clone() for n, p in mlp_parts(state.model).items()})

    train(model, splits.train, TrainConfig(steps=1), streams, callbacks=[record])
    assert (grads["W1"][0, :, unit] == 0).all() and grads["b1"][0, unit] == 0
    others = torch.cat([grads["W1"][0, :, :unit], grads["W1"][0, :, unit + 1:]], dim=1)
    assert (others.norm(dim=0) > 0).sum() > 100  # most live units get a gradient


@pytest.mark.claim("tanh.other-nonlinearities")
@given(x=arrays("float32", 128, elements=float32s))
def test_tanh_other_nonlinearities(x):
    """Local gradients: ReLU is exactly 0 below 0 and 1 above; leaky ReLU is never 0; sigmoid is
    at most 1/4 and blocked (< 0.0199 x 1/4) beyond |x| = 2 atanh(0.99), as tanh is beyond
    atanh(0.99); ELU is e^x below 0, so below 0.0199 from x = ln 0.0199 but not exactly 0."""
    x = torch.from_numpy(x)
    cut = math.atanh(SATURATED)
    grads = {name: local_gradients(x, name) for name in
             ("tanh", "sigmoid", "relu", "leaky_relu", "elu")}
    assert torch.equal(grads["relu"] == 0, x <= 0)
    assert (grads["relu"][x > 0] == 1).all()
    assert (grads["leaky_relu"] >= 0.01 - 1e-9).all()
    assert (grads["sigmoid"] <= 0.25).all()
    assert (grads["sigmoid"][x.abs() > 2 * cut + 1e-3] < BLOCKED * 0.25).all()
    assert (grads["tanh"][x.abs() > cut + 1e-3] < BLOCKED).all()
    negative = x < 0
    assert torch.allclose(grads["elu"][negative], x[negative].exp(), rtol=1e-5, atol=1e-30)
    assert (grads["elu"][x < math.log(BLOCKED) - 1e-3] < BLOCKED).all()
    assert (grads["elu"][x > -80] > 0).all()


@pytest.mark.claim("tanh.dead-relu-lr")
@settings(max_examples=8)
@given(seed=seeds, unit=st.integers(0, 199), lr=st.floats(0.1, 2.0))
def test_tanh_dead_relu_lr(splits, contexts, seed, unit, lr):
    """A ReLU unit off the data manifold never gets a gradient, so at any learning rate its
    own weights and bias stay exactly where they are; with leaky ReLU (control) they move."""
    for name in ("relu", "leaky_relu"):
        streams = Streams([seed])
        model = mlp(streams, "kaiming", nonlinearity=name)
        with torch.no_grad():
            mlp_parts(model)["b1"][0, unit] = -100.0  # below every pre-activation on the data
        assert hidden_extremes(model, contexts)[1][0, unit] <= 0  # never fires on the data
        w1 = mlp_parts(model)["W1"][0, :, unit].clone()
        train(model, splits.train, TrainConfig(steps=20, lr=lr, decay_step=None), streams)
        moved = not torch.equal(mlp_parts(model)["W1"][0, :, unit], w1)
        assert moved == (name == "leaky_relu")


@pytest.mark.claim("tanh.fix")
@settings(max_examples=10)
@given(seed=seeds)
@example(seed=NOTEBOOK_SEED)
def test_tanh_fix(splits, seed):
    """Scaling W1 scales the pre-activations: W1 * 0.2 (b1 * 0.01) gives twice the span of
    W1 * 0.1, about +-1.4 at 0.1, and a saturated share near the Gaussian 1.6% at 0.2."""
    pre_tenth, h_tenth = hidden_batch(splits, seed, w1=0.1, b1=0.01)
    pre_fifth, h_fifth = hidden_batch(splits, seed, w1=0.2, b1=0.01)
    # Same draws, the bias is 1e-2 of the weights' scale: the ratio is 2 to within 1%.
    assert abs(pre_fifth.std() / pre_tenth.std() - 2.0) < 0.02
    predicted = math.sqrt(FAN_IN * 0.1**2 + 0.01**2)
    # The std's seed-to-seed spread is 7.5% (64 seeds): 5 SD.
    assert abs(pre_tenth.std().item() / predicted - 1) < 0.375
    share = (h_fifth.abs() > SATURATED).double().mean().item()
    assert share < 0.08  # Gaussian 0.0157; at 5 SD of the std's spread (std x 1.375): 0.079
    assert (h_tenth.abs() > SATURATED).double().mean().item() <= share
