"""Property-based tests of the deep part of the bn family (one per claim ID).

Each test checks the science directly with the library at small sizes; hypothesis draws the
shapes, gains, momenta, batch sizes, learning rates and seeds the claims quantify over. Exact
properties are checked in float64 (tolerance: float64 rounding), statistical ones against the
sampling spread of the quantity (comments say which).
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ablations.claims.bn_deep import MOMENTA, RunningStats, as_double, rounding_scale
from makemore.models import deep, mlp
from makemore.modules import BatchNorm1d, Embedding, Linear, Streams, Tanh
from makemore.train import TrainConfig, evaluate, train

seeds = st.integers(0, 2**31 - 1)
F64_REL = 1e-10  # float64 rounding (~1e-15) with room for sums over hundreds of terms


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


@pytest.mark.claim("bn.bias-zero-grad")
@settings(max_examples=30)
@given(batch=st.integers(2, 256), fan_in=st.integers(1, 64), fan_out=st.integers(1, 64),
       seed=seeds, convention=st.sampled_from(["lecture", "torch"]),
       bias_scale=st.floats(0.0, 3.0), double=st.booleans())
def test_bn_bias_zero_grad(batch, fan_in, fan_out, seed, convention, bias_scale, double):
    """A bias followed by BN gets a gradient that is zero up to the rounding of the batch sum
    that cancels it, for any shape, bias, gamma and upstream gradient; without BN the same
    gradient is far above that bound (the control that makes the test able to fail)."""
    streams = Streams([seed])
    linear = Linear(fan_in, fan_out, streams=streams, bias_scale=bias_scale)
    norm = BatchNorm1d(fan_out, convention=convention)
    norm.gamma = 1 + streams.randn(fan_out)
    x, upstream = streams.randn(batch, fan_in), streams.randn(batch, fan_out)
    if double:
        as_double(linear), as_double(norm)
        x, upstream = x.double(), upstream.double()
    linear.requires_grad_(), norm.requires_grad_()
    h = linear(x)
    (norm(h) * upstream).sum().backward()
    bound = batch * rounding_scale(h, upstream, norm.gamma.detach(), norm.eps, 1)
    assert (linear.bias.grad.abs() <= bound).all()  # B * eps * sum|gamma d| / sigma
    control = upstream.sum(1).abs()  # the bias gradient without BN: nothing subtracts it
    assert (control > bound).any()


def ema_error(momentum: float, batch: int, mean: float, std: float, seed: int) -> float:
    """RMS over 512 units of (running mean - true mean) / std after BatchNorm1d tracked
    ceil(3/m) batches of iid N(mean, std^2) data, starting from the true statistics."""
    units = 512
    norm = BatchNorm1d(units, momentum=momentum)
    norm.running_mean = torch.full((1, units), mean)
    norm.running_var = torch.full((1, units), std**2)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _ in range(math.ceil(3 / momentum)):
            norm(mean + std * torch.randn(1, batch, units, generator=generator))
    return ((norm.running_mean - mean) / std).pow(2).mean().sqrt().item()


@pytest.mark.claim("bn.momentum")
@settings(max_examples=12)
@given(momentum=st.floats(0.01, 0.5), batch=st.integers(2, 256), seed=seeds,
       mean=st.floats(-5, 5), log_std=st.floats(-2, 2))
def test_bn_momentum(momentum, batch, seed, mean, log_std):
    """The running mean that BatchNorm1d keeps jitters around the truth by
    sqrt(m / (2 - m) / B) standard deviations: large momentum with a small batch thrashes, a
    small momentum or a large batch settles."""
    steps = math.ceil(3 / momentum)
    predicted = math.sqrt(momentum / (2 - momentum) / batch * (1 - (1 - momentum) ** (2 * steps)))
    measured = ema_error(momentum, batch, mean, 10**log_std, seed)
    # The RMS over 512 independent Gaussian units has relative standard error 1/sqrt(2*512) =
    # 3.1%; 20% is 6.4 standard errors.
    assert abs(measured / predicted - 1) < 0.2


def test_running_stats_mirror_the_mlp_batchnorm(splits):
    """The callback that gives bn.momentum every momentum from one run keeps the same running
    statistics as the MLP's own BatchNorm (momentum 0.001) up to float32 rounding."""
    streams = Streams([3, 4])
    model = mlp(streams, "batchnorm")
    running = RunningStats(model, MOMENTA)
    train(model, splits.train, TrainConfig(steps=50, decay_step=None), streams,
          callbacks=[running])
    k = MOMENTA.index(0.001)
    norm = model.layers[3]
    assert rel_diff(running.mean[k], norm.running_mean) < 1e-5  # ~100 float32 ulps
    assert rel_diff(running.std[k], norm.running_var) < 1e-5


@pytest.mark.claim("bn.pytorch-equivalence")
@settings(max_examples=30)
@given(batch=st.integers(2, 200), dim=st.integers(1, 40), momentum=st.floats(0.001, 0.9),
       eps=st.floats(1e-6, 1e-2), steps=st.integers(1, 3), seed=seeds)
def test_bn_pytorch_equivalence(batch, dim, momentum, eps, steps, seed):
    """In float64: the torch convention of our BatchNorm1d is torch.nn.BatchNorm1d (outputs,
    gradients, buffers, eval); the lecture convention has the same buffers and eval outputs but
    its training output is torch's gamma*xhat times sqrt((v_b + eps) / (v_u + eps)) exactly;
    Linear is nn.Linear with the weight transposed and Tanh is torch.tanh."""
    g = torch.Generator().manual_seed(seed)
    gamma = 1 + torch.randn(dim, generator=g, dtype=torch.float64)
    beta = torch.randn(dim, generator=g, dtype=torch.float64)
    theirs = torch.nn.BatchNorm1d(dim, eps=eps, momentum=momentum).double()
    with torch.no_grad():
        theirs.weight.copy_(gamma)
        theirs.bias.copy_(beta)
    ours = {c: as_double(BatchNorm1d(dim, eps, momentum, convention=c)) for c in
            ("lecture", "torch")}
    for norm in ours.values():
        norm.gamma, norm.beta = gamma[None].clone().requires_grad_(), beta[None].clone()
        norm.requires_grad_()
    for _ in range(steps):
        x = 3 * torch.randn(batch, dim, generator=g, dtype=torch.float64) + 1
        up = torch.randn(batch, dim, generator=g, dtype=torch.float64)
        xt = x.clone().requires_grad_()
        out = theirs(xt)
        (out * up).sum().backward()
        xo = x[None].clone().requires_grad_()
        mine = ours["torch"](xo)[0]
        (mine * up).sum().backward()
        assert rel_diff(mine, out) < F64_REL
        # The input gradient is a cancellation among terms of size |gamma * up| / sigma (at
        # batch 2 it is nearly 0 exactly): compare it on that scale.
        sigma = torch.sqrt(x.var(0, unbiased=False) + eps)
        scale = (gamma * up / sigma).abs().max()
        assert ((xo.grad[0] - xt.grad).abs().max() / scale).item() < F64_REL
        lecture = ours["lecture"](x[None])[0]
        ratio = torch.sqrt((x.var(0, unbiased=False) + eps) / (x.var(0) + eps))
        assert rel_diff(lecture - beta, (out - beta) * ratio) < F64_REL
    for norm in ours.values():
        assert rel_diff(norm.running_mean[0], theirs.running_mean) < F64_REL
        assert rel_diff(norm.running_var[0], theirs.running_var) < F64_REL
        norm.eval()
    theirs.eval()
    x = torch.randn(batch, dim, generator=g, dtype=torch.float64)
    with torch.no_grad():
        for norm in ours.values():
            assert rel_diff(norm(x[None])[0], theirs(x)) < F64_REL
    linear = as_double(Linear(dim, 5, streams=Streams([seed]), bias_scale=1.0))
    reference = torch.nn.Linear(dim, 5).double()
    with torch.no_grad():
        reference.weight.copy_(linear.weight[0].T)
        reference.bias.copy_(linear.bias[0])
        assert rel_diff(Tanh()(linear(x[None]))[0], torch.tanh(reference(x))) < F64_REL


def deep_pair(seed: int, scale: float, depth: int, width: int, batchnorm: str = "before",
              **config) -> tuple:
    """Two members with the same draws, the second's Linear weights multiplied by `scale` in
    float64 (exact); a forward and backward pass on one batch of random contexts. Returns the
    model, the tanh outputs and the per-member log10 grad:data ratio of every Linear weight."""
    streams = Streams([seed, seed])
    model = as_double(deep(streams, depth=depth, n_hidden=width, batchnorm=batchnorm,
                           batchnorm_last=batchnorm != "none", bn_eps=0.0, gain=1.0, **config))
    factor = torch.tensor([1.0, scale], dtype=torch.float64).view(2, 1, 1)
    linears = [m for m in model.modules() if isinstance(m, Linear)]
    for layer in linears:
        layer.weight = (layer.weight.detach() * factor).requires_grad_()
    x = torch.randint(0, 27, (1, 64, 3), generator=torch.Generator().manual_seed(seed))
    y = torch.randint(0, 27, (64,), generator=torch.Generator().manual_seed(seed + 1))
    logits = model(x.expand(2, -1, -1))
    torch.nn.functional.cross_entropy(logits.reshape(128, -1), y.repeat(2)).backward()
    outs = [m.out for m in model.modules() if isinstance(m, Tanh)]
    ratios = torch.stack([(m.weight.grad.flatten(1).std(1) / m.weight.flatten(1).std(1)).log10()
                          for m in linears])
    emb = next(m for m in model.modules() if isinstance(m, Embedding))
    emb_ratio = (emb.weight.grad.flatten(1).std(1) / emb.weight.flatten(1).std(1)).log10()
    return outs, ratios, emb_ratio


@pytest.mark.claim("bn.gain-robust")
@settings(max_examples=20)
@given(gain=st.floats(0.1, 5.0), depth=st.integers(1, 3), width=st.integers(4, 32), seed=seeds)
def test_bn_gain_robust(gain, depth, width, seed):
    """With BN before every tanh (eps 0), multiplying the Linear weights by a gain g leaves
    every activation unchanged but divides each weight gradient by g: the update:data ratio
    moves by exactly -2 log10 g. Without BN (control) the activations do change."""
    outs, ratios, _ = deep_pair(seed, gain, depth, width)
    for out in outs:
        assert rel_diff(out[1], out[0]) < F64_REL
    assert torch.allclose(ratios[:, 1] - ratios[:, 0],
                          torch.full_like(ratios[:, 0], -2 * math.log10(gain)), atol=1e-9)
    if abs(math.log(gain)) > 0.05:  # a gain this far from 1 moves tanh outputs by >> 1e-10
        plain, _, _ = deep_pair(seed, gain, depth, width, batchnorm="none")
        assert rel_diff(plain[0][1], plain[0][0]) > 1e-6


@pytest.mark.claim("bn.no-fan-in")
@settings(max_examples=20)
@given(n_embd=st.integers(1, 12), width=st.integers(4, 64), depth=st.integers(1, 3),
       lr_factor=st.floats(1.0, 100.0), seed=seeds)
def test_bn_no_fan_in(n_embd, width, depth, lr_factor, seed):
    """With BN, dropping the fan-in normalisation multiplies every Linear weight by
    sqrt(fan_in): the forward pass is unchanged and each weight's update:data ratio falls by
    exactly log10(fan_in) (the embedding's does not); a k-times larger learning rate raises
    every ratio by log10 k, so 10x lifts it by one decade."""
    streams = Streams([seed, seed])
    model = as_double(deep(streams, depth=depth, n_embd=n_embd, n_hidden=width,
                           batchnorm="before", batchnorm_last=True, bn_eps=0.0,
                           fan_in_norm=False, gain=1.0))
    linears = [m for m in model.modules() if isinstance(m, Linear)]
    fan_ins = [layer.weight.shape[1] for layer in linears]
    for layer, fan_in in zip(linears, fan_ins, strict=True):  # member 0: normalised
        scale = torch.tensor([fan_in**-0.5, 1.0], dtype=torch.float64).view(2, 1, 1)
        layer.weight = (layer.weight.detach() * scale).requires_grad_()
    x = torch.randint(0, 27, (1, 64, 3), generator=torch.Generator().manual_seed(seed))
    y = torch.randint(0, 27, (64,), generator=torch.Generator().manual_seed(seed + 1))
    logits = model(x.expand(2, -1, -1))
    assert rel_diff(logits[1], logits[0]) < F64_REL
    torch.nn.functional.cross_entropy(logits.reshape(128, -1), y.repeat(2)).backward()
    lr = torch.tensor([0.1, 0.1 * lr_factor], dtype=torch.float64)
    for layer, fan_in in zip(linears, fan_ins, strict=True):
        ratio = ((lr * layer.weight.grad.flatten(1).std(1)) / layer.weight.flatten(1).std(1))
        shift = (ratio[1] / ratio[0]).log10().item()
        assert abs(shift - (math.log10(lr_factor) - math.log10(fan_in))) < 1e-9


def final_dev_loss(splits_by_block, seeds_pair, steps: int, block_size: int = 3,
                   **config) -> torch.Tensor:
    """A small deep BN net (2 x 64) trained `steps` steps; loss on 5,000 dev examples."""
    splits = splits_by_block(block_size)
    streams = Streams(seeds_pair)
    model = deep(streams, depth=2, n_hidden=64, block_size=block_size, **config)
    train(model, splits.train, TrainConfig(steps=steps, decay_step=None), streams)
    x, y = splits.dev
    return evaluate(model, (x[:5000], y[:5000]))


@pytest.fixture(scope="module")
def splits_by_block():
    from makemore.data import load_splits

    return load_splits


@pytest.mark.claim("bn.placement")
@settings(max_examples=2)
@given(seed=st.integers(0, 2**30), last=st.booleans())
def test_bn_placement(splits_by_block, seed, last):
    """BN after the tanh instead of before it reaches about the same loss (small net, 1,000
    steps, two seeds per placement)."""
    before, after = (final_dev_loss(splits_by_block, [seed, seed + 1], 1000, batchnorm=place,
                                    batchnorm_last=last) for place in ("before", "after"))
    # At this size the seed-to-seed sd of the loss is ~0.01 and the placements differ by ~0.02
    # on average; 0.06 nats is well under the ~0.1 that context length or the last-layer BN
    # change at the same step count, so a real placement effect would show.
    assert (after.mean() - before.mean()).abs() < 0.06


@pytest.mark.claim("bn.context-bottleneck")
@settings(max_examples=2)
@given(seed=st.integers(0, 2**30))
def test_bn_context_bottleneck(splits_by_block, seed):
    """The same BN network, optimised the same way, does better with more context: 3
    characters beat 1 (small net, 1,000 steps)."""
    one, three = (final_dev_loss(splits_by_block, [seed, seed + 1], 1000, block_size=b,
                                 batchnorm="before", batchnorm_last=False) for b in (1, 3))
    # Observed gap ~0.1 nats with seed-to-seed sd ~0.01: requiring 0.05 leaves 5 sd of margin.
    assert (one - three).min() > 0.05


@pytest.mark.slow
def test_bn_deep_claims_run_quick(tmp_path):
    """The seven claims through the real runner, quick profile with 2 seeds: every verdict is
    computed and every file written."""
    from ablations.context import PROFILES, Context
    from ablations.registry import select
    from ablations.runner import run_all

    ids = {"bn.bias-zero-grad", "bn.momentum", "bn.pytorch-equivalence", "bn.gain-robust",
           "bn.no-fan-in", "bn.placement", "bn.context-bottleneck"}
    claims = [c for c in select(["bn.*"]) if c.id in ids]
    outcomes = run_all(claims, Context(PROFILES["quick"], n_seeds=2), tmp_path,
                       report=lambda _: None)
    assert {o.claim_id for o in outcomes} == ids
    for outcome in outcomes:
        for name in ("result.json", "table.csv", "figure.png"):
            assert (tmp_path / outcome.claim_id / name).is_file()
    verdicts = {o.claim_id: o.verdict for o in outcomes}
    assert verdicts["bn.placement"] == verdicts["bn.context-bottleneck"] == "not evaluated"
    assert verdicts["bn.pytorch-equivalence"] == "partly reproduced"
