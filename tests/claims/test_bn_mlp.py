"""Property tests of the bn claims about BatchNorm itself and the one-hidden-layer MLP
(ablations/claims/bn_mlp.py), one per claim, at small sizes.

Exact properties are checked in float64 against float64 rounding, or in float32 against the
rounding bound the claim uses; statistical ones against the sampling spread of the quantity
(each comment says which). Each test states the domain its property holds on.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

from ablations.experiments import batchnorm as bn
from makemore.models import mlp
from makemore.modules import BatchNorm1d, Linear, Streams, batch_variance
from makemore.train import TrainConfig, calibrate, evaluate, train

F32, F64 = torch.finfo(torch.float32).eps, torch.finfo(torch.float64).eps
seeds = st.integers(0, 2**31 - 1)


def double(module):
    """Every parameter and buffer of one of the library's modules in float64, in place."""
    for layer in module.modules():
        for name in layer.param_names + layer.buffer_names:
            tensor = getattr(layer, name)
            if tensor is not None:
                setattr(layer, name, tensor.detach().double().requires_grad_(
                    name in layer.param_names))
    return module


@pytest.mark.claim("bn.standardise")
@given(batch=st.integers(2, 300), width=st.integers(1, 30), seed=seeds, loc=st.floats(-100, 100),
       log_scale=st.floats(-2, 2), law=st.sampled_from(["normal", "exponential"]),
       convention=st.sampled_from(["lecture", "torch"]),
       dtype=st.sampled_from([torch.float32, torch.float64]))
def test_bn_standardise(batch, width, seed, loc, log_scale, law, convention, dtype):
    """Every unit of BN's output (eps 0) has batch mean 0 and std 1 in the convention it
    divides by, up to the rounding the claim allows, for any batch of at least 2 whose values
    are not all equal in the dtype (|loc| / scale <= 1e4 keeps float32 batches distinct)."""
    g = torch.Generator().manual_seed(seed)
    draw = torch.empty(1, batch, width, dtype=torch.float64)
    draw = draw.normal_(generator=g) if law == "normal" else draw.exponential_(generator=g)
    x = (loc + 10**log_scale * draw).to(dtype)
    assume(bool((batch_variance(x) > 0).all()))
    errors = bn.standardised_errors(x, convention)
    # 64 ulps of each unit's conditioning: the named bound "rounding of a batch
    # standardisation" (log2(n) for each of two sums, a few for the rest, a factor 2-3)
    assert errors["mean_error_ulps"] <= 64 and errors["std_error_ulps"] <= 64
    # the other convention's std is sqrt((n-1)/n)^+-1, to float64-level rounding
    assert errors["other_std"] == pytest.approx(errors["other_std_predicted"], rel=1e-4)


@pytest.mark.claim("bn.mlp")
@given(seed=seeds, hidden=st.integers(1, 64), log_scale=st.floats(-1, 1))
def test_bn_mlp(seed, hidden, log_scale):
    """The BN MLP at inference is an MLP without BN: its BatchNorm folds into W1 and b1
    (W1 gamma / sigma, beta - mu gamma / sigma), for any weights and statistics. BN adds no
    capacity to the one-hidden-layer MLP; whatever it changes is optimisation, which the
    calibrated (Kaiming) init already made easy (L:141)."""
    g = torch.Generator().manual_seed(seed)
    model = double(mlp(Streams([seed]), "batchnorm", n_hidden=hidden)).eval()
    norm = bn.norm_of(model)
    norm.gamma = torch.randn(1, hidden, generator=g, dtype=torch.float64) * 10**log_scale
    norm.beta = torch.randn(1, hidden, generator=g, dtype=torch.float64)
    norm.running_mean = torch.randn(1, hidden, generator=g, dtype=torch.float64)
    norm.running_var = torch.rand(1, hidden, generator=g, dtype=torch.float64) + 0.1  # a std
    x = torch.randint(0, 27, (1, 50, 3), generator=g)
    with torch.no_grad():
        logits = model(x)
        scale = norm.gamma / norm.running_var
        w1, (c, w2, b2) = model.layers[2].weight * scale.unsqueeze(1), (
            model.layers[0].weight, model.layers[-1].weight, model.layers[-1].bias)
        b1 = norm.beta - norm.running_mean * scale
        folded = torch.tanh(c[0][x[0]].flatten(1) @ w1[0] + b1[0]) @ w2[0] + b2[0]
    # float64: the two orders of the same affine maps agree to rounding of the largest terms
    assert torch.allclose(logits[0], folded, rtol=1e-10, atol=1e-10 * float(folded.abs().max()))


@pytest.mark.claim("bn.coupling")
@given(seed=seeds, batch=st.integers(3, 256), hidden=st.integers(4, 64))
def test_bn_coupling(seed, batch, hidden):
    """An example's BN output in training mode changes when its batch companions change (two
    random companion sets that are not the same set); in eval mode, and in the MLP without
    BN, its logits are bit-identical whatever the companions. Batches of at least 3: with one
    companion a unit's normalised value is +-1/sqrt(2), set by the order of the two values
    alone, so another companion may leave it unchanged."""
    g = torch.Generator().manual_seed(seed)
    example = torch.randint(0, 27, (1, 3), generator=g)
    companions = [torch.randint(0, 27, (batch - 1, 3), generator=g) for _ in range(2)]
    assume(sorted(map(tuple, companions[0].tolist())) != sorted(map(tuple,
                                                                    companions[1].tolist())))
    with_bn = mlp(Streams([seed]), "batchnorm", n_hidden=hidden)
    without = mlp(Streams([seed]), "kaiming", n_hidden=hidden)

    def forward(model, others, training):
        model.train(training)
        with torch.no_grad():
            logits = model(torch.cat([example, others]).unsqueeze(0))[0, 0]
        return logits, bn.norm_of(model).out[0, 0] if model is with_bn else None

    moved = (forward(with_bn, companions[0], True)[1]
             - forward(with_bn, companions[1], True)[1]).abs().max()
    # two companion sets shift a unit's batch mean by ~1/sqrt(B) of its std (>= 0.06 at
    # B = 256): 1e-3 in standard units is far below that and far above float32 rounding
    assert moved > 1e-3
    for model, training in ((with_bn, False), (without, True)):
        assert torch.equal(forward(model, companions[0], training)[0],
                           forward(model, companions[1], training)[0])


@pytest.mark.claim("bn.regulariser")
@given(seed=seeds, batch=st.integers(2, 256), z=st.floats(-3, 3))
def test_bn_regulariser(seed, batch, z):
    """The jitter is noise centred on the example, like an augmentation: an example z
    standard deviations from a Gaussian population, normalised by BN in training mode with
    random companions from it, lands on average at z up to the first-order bias
    z (1 + z^2) / B, with spread sqrt((1 + z^2 / 2) / B) up to a relative 2 (1 + z^2) / B;
    at evaluation (population statistics) it is z exactly."""
    draws = 4000  # each column is one draw of B - 1 companions
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1, batch, draws, generator=g, dtype=torch.float64)
    x[0, 0] = z
    with torch.no_grad():
        out = BatchNorm1d(draws, eps=0.0)(x)[0, 0]
    mean, sd = float(out.mean()), float(out.std())
    # tolerances: the first-order terms in 1/B of the expansion, plus 5 standard errors of the
    # mean over the draws (sd / sqrt(D)) and of an sd estimate (relative 1 / sqrt(2 D))
    assert abs(mean - z) <= abs(z) * (1 + z * z) / batch + 5 * sd / math.sqrt(draws)
    predicted = math.sqrt((1 + z * z / 2) / batch)
    assert abs(sd / predicted - 1) <= 2 * (1 + z * z) / batch + 5 / math.sqrt(2 * draws)


@pytest.mark.claim("bn.calibrate")
@given(seed=seeds, n=st.integers(25, 400), hidden=st.integers(2, 50), steps=st.integers(1, 30))
def test_bn_calibrate(splits, seed, n, hidden, steps):
    """After calibrate(model, X) the stored statistics are X's mean and std; evaluating X with
    them is normalising X as one batch (the same loss); and each example's logits alone equal
    its logits in a batch (single-example inference)."""
    streams = Streams([seed])
    model = mlp(streams, "batchnorm", n_hidden=hidden)
    train(model, splits.train, TrainConfig(steps=steps, decay_step=None), streams)
    x, y = splits.train[0][:n], splits.train[1][:n]
    calibrate(model, x)
    norm = bn.norm_of(model)
    with torch.no_grad():
        h = bn.bn_input(model, x)[0].double()
        top = float(h.abs().max()) + 1
        # float64 sums stored in float32: a few float32 ulps of the largest value
        assert torch.allclose(norm.running_mean[0].double(), h.mean(0), atol=4 * F32 * top)
        assert torch.allclose(norm.running_var[0].double(), h.std(0), rtol=8 * F32,
                              atol=4 * F32 * top)
        model.eval()
        together = model(x[:20].unsqueeze(0))[0]
        alone = torch.cat([model(x[i : i + 1].unsqueeze(0))[0] for i in range(20)])
        model.train()
        as_batch = model(x.unsqueeze(0))[0]
    biggest = float(together.abs().max()) + 1
    # the same float32 operations up to the matmul's blocking: a few ulps of the largest logit
    assert torch.allclose(alone, together, atol=16 * F32 * biggest)
    batch_loss = float(torch.nn.functional.cross_entropy(as_batch, y))
    # they differ only by the float32 rounding of the statistics: ~1e-6 of the logits' size
    assert abs(float(evaluate(model, (x, y))[0]) - batch_loss) <= 1e-4 * biggest


@pytest.mark.claim("bn.running-stats")
@given(seed=seeds, batch=st.sampled_from([8, 32, 128]), momentum=st.floats(0.02, 0.05),
       loc=st.floats(-3, 3), log_scale=st.floats(-1, 1))
def test_bn_running_stats(seed, batch, momentum, loc, log_scale):
    """Fed batches of a fixed Gaussian population, the running mean and std (the MLP's update,
    kept as a std) end close to the population's but not equal: the mean within its EMA
    noise, the std biased low to the mean of a batch std, c4(B) sigma, for any momentum small
    enough to average many batches (0.02 <= m <= 0.05; smaller ones take longer to test)."""
    width, scale = 200, 10**log_scale
    norm = BatchNorm1d(width, eps=0.0, momentum=momentum, track="std")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _ in range(int(12 / momentum)):  # the init's weight (1 - m)^steps < 1e-5
            norm(loc + scale * torch.randn(1, batch, width, generator=g))
    mean_error = (norm.running_mean[0] - loc) / scale
    ratio = norm.running_var[0] / scale
    noise = math.sqrt(momentum / ((2 - momentum) * batch))  # the EMA's sd, per unit
    assert 0 < mean_error.abs().max() < 5 * noise  # 5 sd bounds all 200 units
    c4 = math.sqrt(2 / (batch - 1)) * math.exp(math.lgamma(batch / 2)
                                               - math.lgamma((batch - 1) / 2))
    # the units' mean ratio has sd ~ noise / sqrt(2 * 200); 5 of those around c4
    assert abs(float(ratio.mean()) - c4) < 5 * noise / math.sqrt(2 * width) + 1e-4
    assert float(ratio.mean()) < 1


@pytest.mark.claim("bn.epsilon")
@given(value=st.floats(-1e4, 1e4), batch=st.integers(2, 200), width=st.integers(1, 8),
       seed=seeds, loc=st.floats(-10, 10), log_scale=st.floats(-1, 2))
def test_bn_epsilon(value, batch, width, seed, loc, log_scale):
    """A constant float32 batch has batch variance exactly 0: with eps 0 BN divides by zero
    (nan or inf out), with eps 1e-5 output and input gradient are finite and the output is at
    most the mean's rounding over sqrt(eps). On a batch that is not constant, eps changes an
    output by at most |xhat| eps / (2 v): negligible where v >> eps."""
    x = torch.full((1, batch, width), value, requires_grad=True)
    assert bool((batch_variance(x.detach()) == 0).all())
    shares = bn.constant_batch(value, batch, width, 0.0)
    assert shares["nonfinite_out"] == 1.0
    out = BatchNorm1d(width, eps=1e-5)(x)
    out.sum().backward()
    assert torch.isfinite(x.grad).all()
    # x - mean is at most a few float32 ulps of the value
    assert (out.abs() <= 8 * F32 * abs(value) / math.sqrt(1e-5)).all()
    g = torch.Generator().manual_seed(seed)
    x = loc + 10**log_scale * torch.randn(1, batch, width, generator=g, dtype=torch.float64)
    with torch.no_grad():
        plain, smoothed = (BatchNorm1d(width, eps=e)(x)[0] for e in (0.0, 1e-5))
    bound = plain.abs() * 1e-5 / (2 * x[0].var(0)) + 64 * F64 * (1 + plain.abs())
    assert ((plain - smoothed).abs() <= bound).all()


@pytest.mark.claim("bn.bias-zero-grad")
@given(batch=st.integers(2, 256), fan_in=st.integers(1, 64), fan_out=st.integers(4, 64),
       seed=seeds, convention=st.sampled_from(["lecture", "torch"]), bias_scale=st.floats(0, 3),
       dtype=st.sampled_from([torch.float32, torch.float64]))
def test_bn_bias_zero_grad(batch, fan_in, fan_out, seed, convention, bias_scale, dtype):
    """A bias followed by BN gets a gradient within the rounding bound of the batch sum that
    cancels it, for any shape, bias, gain and upstream gradient. Without BN (the control) the
    same gradient is sum_i d_i, random with sd sqrt(B): one unit can fall under the bound by
    chance (probability ~ B^1.5 u), so the control asks it of any of at least 4 units
    (probability ~ 1e-13 that none exceeds it)."""
    streams = Streams([seed])
    linear = double(Linear(fan_in, fan_out, streams=streams, bias_scale=bias_scale)) \
        if dtype == torch.float64 else Linear(fan_in, fan_out, streams=streams,
                                              bias_scale=bias_scale)
    norm = BatchNorm1d(fan_out, convention=convention)
    norm.gamma = (1 + streams.randn(fan_out)).to(dtype).requires_grad_()
    norm.beta = norm.beta.to(dtype)
    x, up = streams.randn(batch, fan_in).to(dtype), streams.randn(batch, fan_out).to(dtype)
    h = linear(x)
    (norm(h) * up).sum().backward()
    bound = bn.rounding_bound(h, up, norm.gamma.detach(), norm.eps)
    assert (linear.bias.grad.abs() <= bound).all()
    assert (up.sum(1).abs() > bound).any()


def ema_error(momentum: float, batch: int, mean: float, std: float, seed: int) -> float:
    """RMS over 512 units of (running mean - mean) / std after BatchNorm1d tracked ceil(3/m)
    batches of iid N(mean, std^2) data, starting from the true statistics."""
    norm = BatchNorm1d(512, momentum=momentum)
    norm.running_mean, norm.running_var = torch.full((1, 512), mean), torch.full((1, 512), std**2)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _ in range(math.ceil(3 / momentum)):
            norm(mean + std * torch.randn(1, batch, 512, generator=g))
    return float(((norm.running_mean - mean) / std).pow(2).mean().sqrt())


@pytest.mark.claim("bn.momentum")
@given(momentum=st.floats(0.01, 0.5), batch=st.integers(2, 256), seed=seeds,
       mean=st.floats(-5, 5), log_std=st.floats(-2, 2))
def test_bn_momentum(momentum, batch, seed, mean, log_std):
    """The running mean jitters around the truth by sqrt(m / (2 - m) / B) standard deviations:
    a large momentum with a small batch thrashes, a small momentum or a large batch settles."""
    steps = math.ceil(3 / momentum)
    predicted = math.sqrt(momentum / (2 - momentum) / batch * (1 - (1 - momentum) ** (2 * steps)))
    # the RMS over 512 independent Gaussian units has a relative standard error of
    # 1 / sqrt(2 * 512) = 3.1%: 20% is 6.4 standard errors
    assert abs(ema_error(momentum, batch, mean, 10**log_std, seed) / predicted - 1) < 0.2


@pytest.mark.claim("bn.pytorch-equivalence")
@given(batch=st.integers(2, 300), dim=st.integers(1, 40), seed=seeds)
def test_bn_pytorch_equivalence(batch, dim, seed):
    """In float64: our BatchNorm1d in torch's convention is torch.nn.BatchNorm1d (outputs,
    gradients, buffers, eval); in the lecture's it has the same buffers, eval outputs and beta
    gradient, and its training output is torch's times sqrt((v_b + eps) / (v_u + eps)),
    exactly; Linear is nn.Linear with the weight transposed and Tanh is torch.tanh."""
    worst = bn.torch_comparison(batch, dim, seed)
    # the named bound "float64 agreement of two implementations"
    for compared in ("torch_convention", "lecture_same", "lecture_closed_form", "linear_tanh"):
        assert worst[compared] <= 1e-10, compared
    convention = 1 - math.sqrt((batch - 1) / batch)  # the real difference, eps aside
    assert 0.5 * convention < worst["lecture_train_output"] <= convention + 1e-10


@pytest.mark.claim("bn.affine")
@given(seed=seeds, batch=st.integers(8, 256), hidden=st.integers(8, 32),
       log_gain=st.floats(-3, 3))
def test_bn_affine(seed, batch, hidden, log_gain):
    """Without gain and bias BN forces every unit to stay standardised on every batch, however
    large its weights: Chebyshev then caps the share of a unit's batch that tanh saturates
    (|tanh| > 0.97, |z| > atanh(0.97) = 2.09) at 1 / 2.09^2 = 23%. A gain of 3 (the control)
    moves a Gaussian unit past the cap (|z| > 0.70: about half of it); on a batch of 8 or more
    one unit stays under only if 7 of its 8 values sit within 0.7 sd of the mean (about 1%),
    so with 8 or more units, some unit passes it."""
    streams = Streams([seed])
    linear = Linear(30, hidden, bias=False, streams=streams, weight_scale=10**log_gain)
    x = streams.randn(batch, 30)
    with torch.no_grad():
        z = BatchNorm1d(hidden, eps=0.0)(linear(x))  # gamma 1, beta 0: no affine part
        assume(bool((batch_variance(linear(x)) > 0).all()))
    saturated = (torch.tanh(z).abs() > 0.97).float().mean(1)
    assert (saturated <= 1 / math.atanh(0.97) ** 2 + 1e-6).all()
    assert (torch.tanh(3 * z).abs() > 0.97).float().mean(1).max() > 1 / math.atanh(0.97) ** 2


@pytest.mark.claim("bn.init-unit-gaussian")
@given(seed=seeds, log_gain=st.floats(-1, 0.5))
def test_bn_init_unit_gaussian(splits, seed, log_gain):
    """At init the pre-activation units' variance over the data, averaged over units, is
    gain^2 tr(S) / fan_in, S the covariance of the embedded contexts: the gain sets the scale
    (5/3 in the lecture's init) and the data's embedding its size. The average of 200 random
    quadratic forms w'Sw (w ~ N(0, s^2)) has sd s^2 sqrt(2 tr(S^2) / 200): 5 of those."""
    gain = 10**log_gain
    model = mlp(Streams([seed]), "batchnorm", w1=gain / math.sqrt(30))
    x = splits.train[0][torch.randperm(splits.train[0].shape[0],
                                       generator=torch.Generator().manual_seed(seed))[:10_000]]
    with torch.no_grad():
        emb = model.layers[1](model.layers[0](x.unsqueeze(0)))[0].double()
        variance = bn.bn_input(model, x)[0].double().var(0).mean()
    cov = torch.cov(emb.T)
    s2 = gain**2 / 30
    spread = s2 * math.sqrt(2 * float((cov @ cov).trace()) / 200)
    assert abs(float(variance - s2 * torch.trace(cov))) <= 5 * spread


@pytest.mark.claim("bn.buffer-init")
@given(dim=st.integers(1, 300), eps=st.floats(1e-8, 1e-2), momentum=st.floats(0.001, 1.0),
       seed=seeds)
def test_bn_buffer_init(dim, eps, momentum, seed):
    """A fresh BatchNorm1d, ours (the lecture's class) and torch.nn's, starts with running mean
    0 and running variance 1 (not 0), so that eval mode before any update passes an input
    through as x / sqrt(1 + eps); a zero variance would multiply it by 1 / sqrt(eps)."""
    ours = BatchNorm1d(dim, eps=eps, momentum=momentum)
    theirs = torch.nn.BatchNorm1d(dim, eps=eps, momentum=momentum)
    for buffers in ((ours.running_mean[0], ours.running_var[0]),
                    (theirs.running_mean, theirs.running_var)):
        assert torch.equal(buffers[0], torch.zeros(dim))
        assert torch.equal(buffers[1], torch.ones(dim))
    x = torch.randn(1, 16, dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        ours.eval()
        assert torch.allclose(ours(x), x / math.sqrt(1 + eps), rtol=4 * F32, atol=0)


@pytest.mark.claim("bn.buffers-no-grad")
@given(seed=seeds, depth=st.integers(1, 3), width=st.integers(2, 32), steps=st.integers(1, 20))
def test_bn_buffers_no_grad(splits, seed, depth, width, steps):
    """With the running-buffer update outside torch.no_grad the buffers carry an autograd graph
    that grows with every step (each step's update hangs on the last), inside it none; the
    losses and buffers are bitwise the same either way."""
    runs = {}
    for graph in (False, True):
        model, streams = bn.deep_bn([seed], graph, depth=depth, n_hidden=width)
        nodes = []
        for _ in range(2):
            history = train(model, splits.train, TrainConfig(steps=steps, decay_step=None),
                            streams)
            nodes.append(bn.graph_nodes(model.buffers()))
        runs[graph] = model, history.losses, nodes
    (plain, plain_losses, plain_nodes), (tracked, tracked_losses, tracked_nodes) = \
        runs[False], runs[True]
    assert plain_nodes == [0, 0]
    assert 0 < tracked_nodes[0] < tracked_nodes[1]
    assert torch.equal(plain_losses, tracked_losses)
    for a, b in zip(plain.buffers(), tracked.buffers(), strict=True):
        assert torch.equal(a, b.detach())



def test_buffer_update_is_the_library_batchnorm():
    """BufferUpdate, which bn.buffers-no-grad trains in both arms, computes what the library's
    BatchNorm1d computes: the same output, input gradient and buffers, bitwise."""
    x = torch.randn(1, 32, 20, generator=torch.Generator().manual_seed(0)) * 3 + 1
    results = []
    for layer in (BatchNorm1d(20, momentum=0.1), bn.BufferUpdate(20, momentum=0.1)):
        inputs = x.clone().requires_grad_()
        out = layer(inputs)
        (out * torch.linspace(-1, 1, 20)).sum().backward()
        results.append((out.detach(), inputs.grad, layer.running_mean, layer.running_var))
    for ours, library in zip(*results, strict=True):
        assert torch.equal(ours, library)
