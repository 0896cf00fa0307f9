"""tests/bench/float_step.py against autograd: the benchmark's float-tolerance step must train
the same MLP, or its throughput says nothing.

Tolerance: float32 rounding, measured against a float64 reference in ulps of each tensor's
scale (the larger of its largest entry and its largest update; an ulp is 2**-23 of it). An
entry's update comes through a chain of about ten roundings from the loss, including sums of up
to 64 terms (batch <= 48, hidden <= 64); rounding errors add up like the square root of their
number, about 25 half-ulps for 640 of them, so the bound is 32 ulps. autograd's own float32
step must meet it too, or it would not be a bound on rounding. (Measured over 600 random cases
while writing this test: at most 8.5 ulps for this step, 6.3 for autograd's.) A formulation
error, a missed factor, a stale or transposed operand, is a fraction of the update, thousands
of ulps.
"""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from makemore.models import MLPConfig, mlp
from makemore.modules import Streams
from tests.bench.float_step import FloatStep

BOUND = 32 * 2.0**-23  # of a tensor's scale


def autograd_steps(params, X, Y, lr, dtype):
    """SGD on the MLP as the lecture writes it, by autograd in `dtype`: losses of the first
    step, and the parameters after all steps. X, Y: (steps, E, B, block) and (steps, E, B)."""
    params = [p.detach().to(dtype).clone().requires_grad_() for p in params]
    C, W1, b1, W2, b2 = params
    first = None
    for x, y in zip(X, Y):
        members, batch = y.shape
        emb = C[torch.arange(members).view(-1, 1, 1), x].view(members, batch, -1)
        logits = torch.tanh(emb @ W1 + b1.unsqueeze(1)) @ W2 + b2.unsqueeze(1)
        losses = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), y.flatten(), reduction="none").view(members, batch).mean(1)
        losses.sum().backward()
        with torch.no_grad():
            for p in params:
                p -= lr * p.grad
                p.grad = None
        first = losses.detach() if first is None else first
    return first, [p.detach() for p in params]


@given(members=st.integers(1, 4), batch=st.integers(1, 48), steps=st.integers(1, 3),
       n_embd=st.integers(1, 12), n_hidden=st.integers(1, 64), lr=st.sampled_from([0.1, 1.0]),
       seed=st.integers(0, 2**31 - 1))
def test_float_step_is_as_close_to_float64_as_autograd(members, batch, steps, n_embd, n_hidden,
                                                       lr, seed):
    streams = Streams([seed + i for i in range(members)])
    model = mlp(streams, MLPConfig(w1="kaiming", b1=0.01, w2=0.01, b2=0.0, n_embd=n_embd,
                                   n_hidden=n_hidden))
    params = [p.detach().clone() for p in model.parameters()]
    g = torch.Generator().manual_seed(seed)
    X = torch.randint(0, 27, (steps, members, batch, 3), generator=g)
    Y = torch.randint(0, 27, (steps, members, batch), generator=g)
    step = FloatStep(model, batch)
    losses = [step(x, y, lr) for x, y in zip(X, Y)][0]
    exact_losses, exact = autograd_steps(params, X, Y, lr, torch.float64)
    float32_losses, float32 = autograd_steps(params, X, Y, lr, torch.float32)
    for name, ours, theirs, truth, before in zip(
            ["losses", "C", "W1", "b1", "W2", "b2"], [losses, *step.parameters()],
            [float32_losses, *float32], [exact_losses, *exact], [exact_losses, *params]):
        bound = BOUND * scale(truth, before)
        error = (ours.double() - truth).abs().max().item()
        assert (theirs.double() - truth).abs().max().item() <= bound, f"{name}: not rounding"
        assert error <= bound, f"{name}: {error / bound * 32:.1f} ulps from float64"


def scale(after: torch.Tensor, before: torch.Tensor) -> float:
    """The larger of a tensor's largest entry and its largest change."""
    return max(after.abs().max().item(), (after - before.double()).abs().max().item())


def test_a_wrong_update_is_far_outside_the_bound():
    """The bound has teeth: a step whose b2 update is off by a factor of 1.5 fails it."""
    streams = Streams([1, 2])
    model = mlp(streams, "kaiming")
    params = [p.detach().clone() for p in model.parameters()]
    g = torch.Generator().manual_seed(0)
    X = torch.randint(0, 27, (1, 2, 32, 3), generator=g)
    Y = torch.randint(0, 27, (1, 2, 32), generator=g)
    step = FloatStep(model, 32)
    before = step.b2.clone()
    step(X[0], Y[0], 0.1)
    step.b2.add_(0.5 * (step.b2 - before))
    _, exact = autograd_steps(params, X, Y, 0.1, torch.float64)
    error = (step.parameters()[4].double() - exact[4]).abs().max().item()
    assert error > 100 * BOUND * scale(exact[4], params[4])
