"""The ensemble engine (makemore.train): members never influence each other, a member's
trajectory does not depend on the ensemble around it, runs are deterministic, per-member
learning rates and momenta, Adam, and evaluate / calibrate / sample.

Bitwise or tolerance: every operation of the engine acts on each member's slice alone (batched
matmuls, element-wise maps, per-row cross-entropy, per-member means, per-member optimiser
updates), and the summed loss hands each member's loss a gradient of exactly 1.0. With the same
tensor shapes the same kernels run, so what member j holds cannot change a single bit of member
i: those comparisons are bitwise. Changing the number of members changes the shapes, and a
kernel may then block its sums differently, so those comparisons allow float32 round-off (see
LOSS_RTOL / PARAM_ATOL).
"""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from makemore import train as train_module
from makemore.models import NOTEBOOK_SEED, deep, mlp
from makemore.modules import BatchNorm1d, Linear, Sequential, Streams, member_cross_entropy
from makemore.train import (
    INDEX_CHUNK,
    TrainConfig,
    calibrate,
    evaluate,
    sample,
    train,
)

EPS = torch.finfo(torch.float32).eps
STEPS = 25

# Different ensemble sizes may sum in another order: up to a reduction length (<= 30 here) of
# ulps per operation. Measured sensitivity of these 25-step runs: a 1-ulp change of every
# parameter moves the losses by <= 1.3 ulps and the parameters by <= 50 ulps of their largest
# entry (Adam, deep BatchNorm net). Hence 30 * 1.3 * 2 ~ 84 ulps on losses and 30 * 50 ~ 1,700
# ulps of the largest entry on parameters.
LOSS_RTOL = 1e-5
PARAM_ATOL = 2e-4

BUILDERS = {
    "mlp": lambda s: mlp(s, "kaiming", n_hidden=16),
    "mlp-batchnorm": lambda s: mlp(s, "batchnorm", n_hidden=16),
    "deep-batchnorm": lambda s: deep(s, depth=2, n_hidden=16, batchnorm="before",
                                     batchnorm_last=True, gain=1.0),
}


@pytest.fixture(scope="module")
def data(splits):
    """The first 5,000 training examples: enough for distinct batches, cheap to evaluate."""
    x, y = splits.train
    return x[:5000], y[:5000]


def run(build, seeds, data, perturb=None, **config):
    """Build (a BUILDERS name, or a function of the streams) and train an ensemble;
    `perturb(model, streams)` may alter it before training."""
    streams = Streams(seeds)
    model = BUILDERS[build](streams) if isinstance(build, str) else build(streams)
    if perturb is not None:
        perturb(model, streams)
    options = {"steps": STEPS, "decay_step": STEPS // 2, **config}
    history = train(model, data, TrainConfig(**options), streams)
    return model, history


def state(model) -> list[torch.Tensor]:
    return [t.detach() for t in model.parameters() + model.buffers()]


def member_equal(a, b, i: int, k: int | None = None) -> bool:
    """Member i of a equals member k (default i) of b, bitwise: parameters and buffers."""
    k = i if k is None else k
    return all(torch.equal(x[i], y[k]) for x, y in zip(state(a), state(b), strict=True))


def assert_member_close(model, history, alone, alone_history, i):
    torch.testing.assert_close(history.losses[:, i], alone_history.losses[:, 0],
                               rtol=LOSS_RTOL, atol=0)
    for x, y in zip(state(model), state(alone), strict=True):
        torch.testing.assert_close(x[i], y[0], rtol=0, atol=PARAM_ATOL * y[0].abs().max().item())


ensembles = st.integers(2, 4).flatmap(
    lambda n: st.tuples(st.just(n), st.permutations(range(n)).map(lambda p: p[:2])))


@settings(max_examples=12)
@given(build=st.sampled_from(sorted(BUILDERS)), ensemble=ensembles,
       what=st.sampled_from(["parameters", "data stream"]),
       optimizer=st.sampled_from(["sgd", "adam"]))
def test_members_never_influence_each_other(data, build, ensemble, what, optimizer):
    """Perturb member j's parameters or its batch stream: member i's losses, parameters and
    running statistics are bitwise unchanged (and member j's do change)."""
    count, (i, j) = ensemble
    seeds = [NOTEBOOK_SEED + m for m in range(count)]
    lr = 0.1 if optimizer == "sgd" else 0.01

    def perturb(model, streams):
        if what == "data stream":
            streams.generators[j] = torch.Generator().manual_seed(12345)
            return
        g = torch.Generator().manual_seed(j)
        with torch.no_grad():
            for p in model.parameters():
                p[j] += 0.1 * torch.randn(p[j].shape, generator=g)

    base, base_history = run(build, seeds, data, optimizer=optimizer, lr=lr)
    model, history = run(build, seeds, data, perturb, optimizer=optimizer, lr=lr)
    assert torch.equal(history.losses[:, i], base_history.losses[:, i])
    assert member_equal(model, base, i)
    assert torch.equal(evaluate(model, data)[i], evaluate(base, data)[i])
    assert not torch.equal(history.losses[:, j], base_history.losses[:, j])


@settings(max_examples=8)
@given(build=st.sampled_from(sorted(BUILDERS)), count=st.integers(2, 5), position=st.integers(0, 4),
       optimizer=st.sampled_from(["sgd", "adam"]))
def test_a_member_alone_follows_its_trajectory_in_an_ensemble(data, build, count, position,
                                                               optimizer):
    """A one-member ensemble retraces the same seed inside a larger ensemble (float32 round-off
    only: the shapes differ, see LOSS_RTOL)."""
    position %= count
    seeds = [NOTEBOOK_SEED + 17 * m for m in range(count)]
    lr = 0.1 if optimizer == "sgd" else 0.01
    model, history = run(build, seeds, data, optimizer=optimizer, lr=lr)
    alone, alone_history = run(build, seeds[position : position + 1], data, optimizer=optimizer,
                               lr=lr)
    assert_member_close(model, history, alone, alone_history, position)
    torch.testing.assert_close(evaluate(model, data)[position], evaluate(alone, data)[0],
                               rtol=LOSS_RTOL, atol=0)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("build", sorted(BUILDERS))
def test_determinism(data, build, optimizer):
    """The same seeds give the same numbers, bitwise: nothing is drawn from global state."""
    torch.manual_seed(0)
    first, first_history = run(build, [3, 4], data, optimizer=optimizer, lr=0.01)
    torch.manual_seed(1)  # global randomness must not matter
    second, second_history = run(build, [3, 4], data, optimizer=optimizer, lr=0.01)
    assert torch.equal(first_history.losses, second_history.losses)
    assert all(member_equal(first, second, m) for m in range(2))
    assert torch.equal(evaluate(first, data), evaluate(second, data))


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_per_member_learning_rates(data, optimizer):
    """lr=(a, b, c) trains member e exactly as the scalar lr e would (before and after the decay
    at step STEPS // 2): same shapes, and the tuple holds the same float32 values."""
    rates = (0.2, 0.05, 0.01) if optimizer == "sgd" else (0.01, 0.003, 0.001)
    seeds = [NOTEBOOK_SEED] * 3
    mixed, mixed_history = run("mlp", seeds, data, optimizer=optimizer, lr=rates)
    for e, rate in enumerate(rates):
        single, single_history = run("mlp", seeds, data, optimizer=optimizer, lr=rate)
        assert torch.equal(mixed_history.losses[:, e], single_history.losses[:, e])
        assert member_equal(mixed, single, e)
    assert TrainConfig(lr=(0.1, 0.2), decay_step=5).learning_rate(5) == pytest.approx((0.01, 0.02))
    with pytest.raises(ValueError, match="expected 3 per-member values"):
        run("mlp", seeds, data, lr=(0.1, 0.2))


def test_per_member_batchnorm_momentum(data):
    """Momentum only moves the running statistics: with momenta (0.1, 0.5) the losses are those
    of the scalar runs bitwise, and the buffers those of the scalar runs up to the rounding of
    1 - momentum in float32 vs float64 (one ulp per blend, shrinking: <= 2 * STEPS ulps)."""
    seeds = [NOTEBOOK_SEED] * 2
    momenta = (0.1, 0.5)

    def build(momentum):
        def builder(streams):
            return deep(streams, depth=2, n_hidden=16, batchnorm="before", bn_momentum=momentum)
        return run(builder, seeds, data)

    mixed, mixed_history = build(momenta)
    for e, momentum in enumerate(momenta):
        single, single_history = build(momentum)
        assert torch.equal(mixed_history.losses[:, e], single_history.losses[:, e])
        for x, y in zip(mixed.buffers(), single.buffers(), strict=True):
            torch.testing.assert_close(x[e], y[e], rtol=2 * STEPS * EPS, atol=1e-7)
    first, second = [m for m in mixed.modules() if isinstance(m, BatchNorm1d)][0].running_mean
    assert not torch.allclose(first, second)  # the momenta made a difference


def test_adam_matches_torch(data):
    """Our Adam (beta 0.9 / 0.999, eps 1e-8) follows torch.optim.Adam on a one-member network.
    The two order the bias corrections differently (a few ulps per update); over STEPS steps
    with lr 0.01 the parameters stay within PARAM_ATOL of their largest entry."""
    streams = Streams([NOTEBOOK_SEED])
    ours = BUILDERS["mlp"](streams)
    train(ours, data, TrainConfig(steps=STEPS, decay_step=None, lr=0.01, optimizer="adam"), streams)
    streams = Streams([NOTEBOOK_SEED])
    theirs = BUILDERS["mlp"](streams)
    optimiser = torch.optim.Adam(theirs.parameters(), lr=0.01)
    x, y = data
    batches = streams.randint(x.shape[0], STEPS, 32)
    for step in range(STEPS):
        ix = batches[:, step]
        optimiser.zero_grad()
        member_cross_entropy(theirs(x[ix]), y[ix]).sum().backward()
        optimiser.step()
    for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(a, b.detach(), rtol=0, atol=PARAM_ATOL * b.abs().max().item())


@settings(max_examples=10)
@given(build=st.sampled_from(sorted(BUILDERS)), chunk=st.integers(1, 5000))
def test_evaluate_in_chunks_equals_one_pass(data, monkeypatch, build, chunk):
    """The loss over a split is the same whatever the chunk size, and equals F.cross_entropy over
    the whole split member by member. Each side is a float32 mean of up to N = 5,000 terms
    (chunk means are combined in float64), so they agree within N * EPS relative (gamma_N)."""
    model, _ = run(build, [5, 6], data, steps=5)
    before = [b.clone() for b in model.buffers()]
    monkeypatch.setattr(train_module, "_eval_chunk", lambda model, members, n: chunk)
    chunked = evaluate(model, data)
    monkeypatch.undo()
    whole = evaluate(model, data)
    x, y = data
    model.eval()
    with torch.no_grad():
        logits = model(x.unsqueeze(0).expand(2, *x.shape))
    direct = torch.stack([F.cross_entropy(logits[e], y) for e in range(2)]).double()
    model.train()
    n = x.shape[0]
    torch.testing.assert_close(chunked, whole, rtol=n * EPS, atol=0)
    torch.testing.assert_close(whole, direct, rtol=n * EPS, atol=0)
    assert chunked.dtype == torch.float64 and chunked.shape == (2,)
    assert model.training  # the mode is restored, and eval mode leaves the statistics alone
    assert all(torch.equal(a, b) for a, b in zip(before, model.buffers(), strict=True))


@pytest.mark.parametrize("build", ["mlp-batchnorm", "deep-batchnorm"])
def test_calibrate_sets_the_full_set_statistics(data, monkeypatch, build):
    """After calibrate, each BatchNorm holds the mean and unbiased variance (or std, for the
    MLP's running std) of its input over the whole set, with the earlier BatchNorms already
    calibrated: checked by one eval-mode pass over the set. The inputs are dot products of up
    to K = 30 terms recomputed in other chunk sizes (a few ulps * K apart); their means and
    variances are accumulated in float64, so K * EPS relative to max|input| (twice for
    variances) bounds the difference."""
    model, _ = run(build, [7, 8], data, steps=10)
    x, _ = data
    # uneven chunks
    monkeypatch.setattr(train_module, "_eval_chunk", lambda model, members, n: 1234)
    calibrate(model, x)
    assert model.training
    model.eval()
    with torch.no_grad():
        model(x.unsqueeze(0).expand(2, *x.shape))
    layers = model.layers
    norms = [i for i, layer in enumerate(layers) if isinstance(layer, BatchNorm1d)]
    assert norms
    for i in norms:
        norm, inputs = layers[i], layers[i - 1].out.double()
        fan_in = layers[i - 1].weight.shape[1] if isinstance(layers[i - 1], Linear) else 1
        size = fan_in * EPS * inputs.abs().amax(1)  # bound on the mean's difference
        mean, var = inputs.mean(1), inputs.var(1)
        var_size = 2 * size * inputs.abs().amax(1)  # d(x**2) = 2 x dx
        if norm.track == "std":  # d(sqrt v) = dv / (2 sqrt v)
            stored, stored_size = var.sqrt(), var_size / (2 * var.sqrt())
        else:
            stored, stored_size = var, var_size
        # + one rounding to float32 of the stored value
        assert ((norm.running_mean.double() - mean).abs() <= size + EPS * mean.abs()).all()
        assert ((norm.running_var.double() - stored).abs() <= stored_size + EPS * stored).all()


def test_sample(data):
    """Names are a-z only, at most max_length long, the same for the same seed, and differ
    between seeds and between members."""
    # BatchNorm: sampling one context at a time works only in eval mode
    model, _ = run("mlp-batchnorm", [NOTEBOOK_SEED, NOTEBOOK_SEED + 1], data, steps=50)
    names = sample(model, 20, block_size=3, seed=NOTEBOOK_SEED + 10)
    assert len(names) == 20 and all(re.fullmatch(r"[a-z]*", name) for name in names)
    assert names == sample(model, 20, block_size=3, seed=NOTEBOOK_SEED + 10)
    assert names != sample(model, 20, block_size=3, seed=NOTEBOOK_SEED + 11)
    assert names != sample(model, 20, block_size=3, seed=NOTEBOOK_SEED + 10, member=1)
    assert all(len(n) <= 4 for n in sample(model, 20, block_size=3, seed=1, max_length=4))
    assert model.training


def test_train_bookkeeping(data):
    """Callbacks see every step with gradients attached and the step's losses; the history
    holds every step (also across index chunks); progress hears of every step."""
    seen, told = [], []

    def callback(state):
        assert all(p.grad is not None for p in state.model.parameters())
        seen.append((state.step, state.losses.clone(), state.lr))

    streams = Streams([1, 2])
    model = BUILDERS["mlp"](streams)
    steps = INDEX_CHUNK + 3
    config = TrainConfig(steps=steps, decay_step=INDEX_CHUNK, lr=0.1)
    history = train(model, data, config, streams, callbacks=[callback], progress=told.append)
    assert history.losses.shape == (steps, 2) and history.seeds == [1, 2]
    assert [s for s, _, _ in seen] == list(range(steps))
    assert all(torch.equal(history.losses[s], losses) for s, losses, _ in seen)
    assert seen[INDEX_CHUNK - 1][2] == 0.1 and seen[INDEX_CHUNK][2] == pytest.approx(0.01)
    assert sum(told) == steps
    assert torch.equal(history.initial, history.losses[0])


def test_invalid_training_settings(data):
    for bad in ({"steps": 0}, {"batch_size": 0}, {"optimizer": "rmsprop"}, {"lr": 0.0},
                {"lr": (0.1, -0.1)}):
        with pytest.raises(ValueError):
            TrainConfig(**bad)
    streams = Streams([1])
    with pytest.raises(ValueError, match="batch size 1 with BatchNorm"):
        train(BUILDERS["mlp-batchnorm"](streams), data, TrainConfig(steps=1, batch_size=1), streams)
    run("mlp", [1], data, steps=2, batch_size=1)  # without BatchNorm a batch of one is fine


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_equals_cpu(data):
    """The same seeds on CUDA: the same batches (drawn on the CPU generators), losses within
    float32 round-off of the CPU run. GPU kernels sum in other orders and block sizes: the
    LOSS_RTOL argument with reduction trees up to 10 times deeper (TF32 is off by default)."""
    cpu, cpu_history = run("deep-batchnorm", [1, 2], data)
    streams = Streams([1, 2])
    model = BUILDERS["deep-batchnorm"](streams).to("cuda")
    history = train(model, data, TrainConfig(steps=STEPS, decay_step=STEPS // 2), streams)
    torch.testing.assert_close(history.losses, cpu_history.losses, rtol=10 * LOSS_RTOL, atol=0)
    torch.testing.assert_close(evaluate(model, data), evaluate(cpu, data), rtol=10 * LOSS_RTOL,
                               atol=0)


def test_calibrate_reaches_batchnorms_inside_residual_blocks(data):
    """With residual blocks the BatchNorms sit inside them: calibrate still sets each to the
    mean of its input over the set (checked by an eval pass; the bound of the test above)."""
    def builder(streams):
        return deep(streams, depth=3, n_hidden=16, batchnorm="before", residual=True)

    model, _ = run(builder, [7, 8], data, steps=10)
    x, _ = data
    calibrate(model, x)
    model.eval()
    with torch.no_grad():
        model(x.unsqueeze(0).expand(2, *x.shape))
    parents = [m for m in model.modules() if isinstance(m, Sequential)]
    checked = 0
    for parent in parents:
        for before, norm in zip(parent.layers, parent.layers[1:], strict=False):
            if isinstance(norm, BatchNorm1d):
                inputs = before.out.double()
                size = before.weight.shape[1] * EPS * inputs.abs().amax(1)
                mean = inputs.mean(1)
                assert ((norm.running_mean.double() - mean).abs()
                        <= size + EPS * mean.abs()).all()
                checked += 1
    assert checked == 3
