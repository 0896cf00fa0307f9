"""Property tests of the diag claims: grad:data and update:data ratios (L:317-346).

They use the library's deep network and diagnostics directly, on random contexts or a few dozen
steps of the real training split. Tolerances are stated per test from what sets them: the
softmax's departure from uniform, batch noise, float rounding.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from makemore.diagnostics import UpdateRatios, activation_stats, grad_data_ratios
from makemore.models import DeepConfig, deep
from makemore.modules import Streams, member_cross_entropy
from makemore.train import TrainConfig, train

seeds = st.integers(0, 2**31 - 1)
FLOOR = -3.5  # the bottom of the lecture's decent range of update ratios (tolerances.py)


def backward_once(seed: int, batch: int = 64, **overrides: object):
    """The deep net (DeepConfig overrides) after one backward on random contexts and labels,
    with the activation gradients retained."""
    net = deep(Streams([seed]), DeepConfig(), **overrides)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 27, (1, batch, 3), generator=generator)
    y = torch.randint(0, 27, (1, batch), generator=generator)
    out = net(x)
    for layer in net.modules():
        if hasattr(layer, "out") and layer.out.requires_grad:
            layer.out.retain_grad()
    member_cross_entropy(out, y).sum().backward()
    return net


def last_over_hidden(net) -> float:
    """grad:data of the output weight over the geometric mean of the hidden weights'."""
    values = [row["grad_data"] for row in grad_data_ratios(net)]  # C, W1..Wk, W_out
    return values[-1] / math.exp(np.mean(np.log(values[1:-1])))


@pytest.mark.claim("diag.grad-data")
@given(seed=seeds, small=st.floats(0.01, 0.3), factor=st.floats(2.0, 10.0),
       hidden=st.integers(32, 128), depth=st.integers(2, 6))
def test_diag_grad_data(seed, small, factor, hidden, depth):
    """Shrinking the last weight by s raises its grad:data over the hidden weights' as 1/s^2:
    its data shrinks by s while its gradient (softmax - onehot, times h) stays, and every hidden
    gradient passes back through it, shrinking by s. So x 0.1 makes the last layer an outlier
    by 10x in gradient std relative to the others and 100x in grad:data."""
    large = min(small * factor, 1.0)
    config = {"n_hidden": hidden, "depth": depth}
    ratio = (last_over_hidden(backward_once(seed, last_scale=small, **config))
             / last_over_hidden(backward_once(seed, last_scale=large, **config)))
    # Exact for a uniform softmax; logits of std ~0.65 s perturb it by O(s): over 300 random
    # draws of this strategy the deviation reached 7.9% per unit of the larger scale; 15%.
    assert abs(ratio / (large / small) ** 2 - 1) < 0.15 * large


def update_ratios(splits, seed: int, steps: int, lr: float, **overrides: object) -> np.ndarray:
    """(steps, parameters) log10 update:data of the deep net trained on the real data."""
    net = deep(Streams([seed]), DeepConfig(), **overrides)
    ratios = UpdateRatios()
    train(net, splits.train, TrainConfig(steps=steps, lr=lr, decay_step=None), Streams([seed]),
          callbacks=[ratios])
    return ratios.values[:, 0, :].numpy()


def excess(values: np.ndarray) -> np.ndarray:
    """The output weight's log10 update:data minus the hidden weights' mean, per step."""
    return values[:, -1] - values[:, 1:-1].mean(1)


@pytest.mark.claim("diag.update-ratio")
@given(seed=seeds, small=st.floats(0.01, 0.3))
def test_diag_update_ratio(splits, seed, small):
    """The shrunk last layer is an outlier by 2 log10(1/s) decades at the first step (the 1/s^2
    law of grad:data; the update ratio is log10(lr grad:data)) against its unscaled twin, and
    a temporary one: once the weight learns, the excess falls (here within 100 steps of a
    small net at lr 0.1)."""
    net = {"n_hidden": 32, "depth": 2}
    shrunk = update_ratios(splits, seed, 100, 0.1, last_scale=small, **net)
    unscaled = update_ratios(splits, seed, 100, 0.1, last_scale=1.0, **net)
    gap = excess(shrunk) - excess(unscaled)
    # The 1/s^2 law is exact for a uniform softmax; the unscaled twin's logits (std ~0.7 in
    # this small net, on real batches of 32) depart from it: over 120 seeds and s in {0.01,
    # 0.1, 0.3} the first-step gap was off 2 log10(1/s) by -0.09 +- 0.12, at most 0.31 decades.
    assert abs(gap[0] - 2 * math.log10(1 / small)) < 0.5
    # temporary: the last 20 steps' mean gap was at most 0.70 of the first step's (mean 0.43)
    assert gap[-20:].mean() < gap[0]


@pytest.mark.claim("diag.low-lr")
@given(seed=seeds, lr=st.floats(-5.0, -3.0).map(lambda e: 10.0**e))
def test_diag_low_lr(splits, seed, lr):
    """The update ratio is log10(lr) + log10(grad:data): at the first step (same gradients)
    the hidden weights sit log10(lr / 0.1) below lr 0.1's, and at lr <= 1e-3 every hidden
    weight of the lecture's net stays below -3.5 (far below -3) through 50 steps, while lr 0.1
    starts above it (the control)."""
    low = update_ratios(splits, seed, 50, lr)
    base = update_ratios(splits, seed, 1, 0.1)
    assert low[:, 1:-1].max() < FLOOR
    assert base[0, 1:-1].min() > FLOOR
    # Same gradients at step 0; the ratio divides by the data after the update, which differs
    # between the two by lr grad:data <= 1e-3 of it for the hidden weights: 5e-4 decades.
    assert np.allclose(low[0, 1:-1] - base[0, 1:-1], math.log10(lr / 0.1), atol=1e-3)


@pytest.mark.claim("diag.no-fan-in")
@given(seed=seeds, hidden=st.integers(30, 200))
def test_diag_no_fan_in(seed, hidden):
    """Plain randn * 5/3 weights (no 1/sqrt(fan_in)): pre-activation variance ~ (5/3)^2 *
    fan_in * E[h^2] >= 67 at fan-in 30, so P(|tanh| > 0.97) >= 0.8 (theory) where the fan-in net
    has ~9%; and the activation gradients spread over layers by far more than the fan-in net's
    1.3x."""
    stats = {}
    for norm in (False, True):
        rows = activation_stats(backward_once(seed, batch=128, n_hidden=hidden, fan_in_norm=norm))
        grads = [r["grad_std"] for r in rows]
        stats[norm] = (np.mean([r["saturated"] for r in rows]), max(grads) / min(grads))
    assert stats[False][0] > 0.7  # theory 0.8 minus batch-sampling slack (128 x width values)
    assert stats[True][0] < 0.2  # recursion: 21% in layer 1, ~6% beyond; mean ~9%
    assert stats[False][1] > 5 * stats[True][1]
