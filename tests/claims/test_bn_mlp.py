"""Property tests for the bn claims of the one-hidden-layer MLP (ablations/claims/bn_mlp.py).

Each test checks the claim's falsifiable core directly with the library at small sizes, with
hypothesis choosing what the claim quantifies over (batch sizes, widths, scales, seeds...).
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from makemore.models import mlp
from makemore.modules import BatchNorm1d, Streams, batch_variance
from makemore.train import TrainConfig, calibrate, evaluate, train

F32_EPS = torch.finfo(torch.float32).eps
F64_EPS = torch.finfo(torch.float64).eps
seeds = st.integers(0, 2**31 - 1)


def preactivations(model, x):
    """The BN layer's input for examples x (B, block) of every member."""
    h = x.unsqueeze(0).expand(model.parameters()[0].shape[0], *x.shape)
    for layer in model.layers:
        if isinstance(layer, BatchNorm1d):
            return h
        h = layer(h)
    raise AssertionError("no BatchNorm in the model")


@pytest.mark.claim("bn.standardise")
@settings(max_examples=40)
@given(batch=st.integers(2, 300), width=st.integers(1, 40), seed=seeds,
       loc=st.floats(-100, 100), log_scale=st.floats(-3, 3),
       convention=st.sampled_from(["lecture", "torch"]))
def test_bn_standardise(batch, width, seed, loc, log_scale, convention):
    """Every unit of BN's output (gamma 1, beta 0, eps 0) has batch mean 0 and std 1 in the
    convention it normalised with; the other convention's std is sqrt((n-1)/n)^+-1."""
    generator = torch.Generator().manual_seed(seed)
    x = loc + 10**log_scale * torch.randn(1, batch, width, generator=generator,
                                          dtype=torch.float64)
    with torch.no_grad():
        out = BatchNorm1d(width, eps=0.0, convention=convention)(x)[0]
    # Rounding: the mean of x is off by ~eps*|mean|, i.e. eps*|mean|/std in standard units;
    # mean, variance and division add a few ulps, summation up to ~log2(n). 64 ulps covers it.
    condition = 1 + x[0].mean(0).abs() / x[0].std(0)
    tol = 64 * F64_EPS * condition
    unbiased, biased = out.std(0), out.std(0, unbiased=False)
    ratio = math.sqrt((batch - 1) / batch)
    if convention == "lecture":
        own, other = unbiased, biased / ratio
    else:
        own, other = biased, unbiased * ratio
    assert (out.mean(0).abs() <= tol).all()
    assert ((own - 1).abs() <= tol).all()
    assert ((other - 1).abs() <= tol).all()


@pytest.mark.claim("bn.mlp")
@settings(max_examples=3)
@given(seed=seeds)
def test_bn_mlp(splits, seed):
    """BN gives the shallow, already-calibrated (Kaiming) MLP no better loss: trained on the same
    4 seeds and batches, the BN net's mean val loss is not below the no-BN net's. (The
    200,000-step comparison is the ablation; here 600 steps, where BN has not caught up.)"""
    dev = (splits.dev[0][:5000], splits.dev[1][:5000])
    losses = {}
    for config in ("batchnorm", "kaiming"):
        streams = Streams([seed + i for i in range(4)])
        model = mlp(streams, config)
        train(model, splits.train, TrainConfig(steps=600, decay_step=None), streams)
        if config == "batchnorm":  # 600 steps leave the running stats near their init
            calibrate(model, splits.train[0][:20_000])
        losses[config] = float(evaluate(model, dev).mean())
    # 0.005: the source's 2-decimal resolution, an improvement below it is "no better"; the
    # 4-seed mean difference has sd ~0.007 around +0.02 at 600 steps
    assert losses["batchnorm"] > losses["kaiming"] - 0.005


@pytest.mark.claim("bn.coupling")
@settings(max_examples=20)
@given(seed=seeds, batch=st.integers(3, 64), hidden=st.integers(4, 64))
def test_bn_coupling(seed, batch, hidden):
    """An example's logits under BN in training mode change when its companions change; in eval
    mode and without BN they are bit-identical."""
    generator = torch.Generator().manual_seed(seed)
    example = torch.randint(0, 27, (1, 3), generator=generator)
    companions = [torch.randint(0, 27, (batch - 1, 3), generator=generator) for _ in range(2)]
    bn = mlp(Streams([seed]), "batchnorm", n_hidden=hidden)
    plain = mlp(Streams([seed]), "kaiming", n_hidden=hidden)

    def logits(model, others, training):
        model.train(training)
        with torch.no_grad():
            return model(torch.cat([example, others]).unsqueeze(0))[0, 0]

    jitter = (logits(bn, companions[0], True) - logits(bn, companions[1], True)).abs().max()
    # the companions move the batch mean by O(1/sqrt(B)) in standard units; 1e-4 is far above
    # float32 rounding (~1e-7) and far below the jitter's scale (~1e-2 even at B = 64)
    assert jitter > 1e-4
    assert torch.equal(logits(bn, companions[0], False), logits(bn, companions[1], False))
    assert torch.equal(logits(plain, companions[0], True), logits(plain, companions[1], True))


@pytest.mark.claim("bn.regulariser")
@settings(max_examples=3)
@given(seed=seeds)
def test_bn_regulariser(splits, seed):
    """Where the MLP can overfit (512 training examples), the same net with BN ends with a
    smaller train-val gap than without BN, trained on the same seed and batches."""
    pick = torch.randperm(splits.train[0].shape[0], generator=torch.Generator().manual_seed(seed))
    subset = (splits.train[0][pick[:512]], splits.train[1][pick[:512]])
    dev = (splits.dev[0][:5000], splits.dev[1][:5000])
    gaps = {}
    for config in ("batchnorm", "kaiming"):
        streams = Streams([seed])
        model = mlp(streams, config)
        train(model, subset, TrainConfig(steps=1500, decay_step=None), streams)
        if config == "batchnorm":
            calibrate(model, subset[0])
        gaps[config] = float(evaluate(model, dev)[0] - evaluate(model, subset)[0])
    # the gaps are ~1-3 nats and differ by ~0.5 over seeds in the ablation: any sign is decisive
    assert gaps["batchnorm"] < gaps["kaiming"]


@pytest.mark.claim("bn.calibrate")
@settings(max_examples=15)
@given(seed=seeds, n=st.integers(25, 400), hidden=st.integers(2, 50), steps=st.integers(1, 30))
def test_bn_calibrate(splits, seed, n, hidden, steps):
    """After calibrate(model, X): the stored stats are X's exact mean and std; evaluating X with
    them equals normalising X as one batch (the same loss); and each example's logits alone
    equal its logits in the batch (single-example inference)."""
    streams = Streams([seed])
    model = mlp(streams, "batchnorm", n_hidden=hidden)
    train(model, splits.train, TrainConfig(steps=steps, decay_step=None), streams)
    x, y = splits.train[0][:n], splits.train[1][:n]
    calibrate(model, x)
    norm = next(m for m in model.modules() if isinstance(m, BatchNorm1d))
    eval_loss = float(evaluate(model, (x, y))[0])
    with torch.no_grad():
        h = preactivations(model, x)[0].double()
        scale = h.abs().max() + 1
        # float64 accumulation, float32 storage: a few float32 ulps of the largest value
        assert torch.allclose(norm.running_mean[0].double(), h.mean(0), atol=4 * F32_EPS * scale)
        assert torch.allclose(norm.running_var[0].double(), h.std(0),
                              rtol=8 * F32_EPS, atol=4 * F32_EPS * scale)
        model.eval()  # 20 of the n >= 25 examples: a batch whose own statistics differ
        together = model(x[:20].unsqueeze(0))[0]
        alone = torch.cat([model(x[i : i + 1].unsqueeze(0))[0] for i in range(20)])
        model.train()  # X normalised as one batch by its own statistics
        as_batch = model(x.unsqueeze(0))[0]
    top = together.abs().max() + 1
    # same float32 operations up to the matmul's blocking: a few ulps of the largest logit
    assert torch.allclose(alone, together, atol=16 * F32_EPS * top)
    batch_loss = float(torch.nn.functional.cross_entropy(as_batch, y))
    # the two differ only by float32 rounding of the statistics: ~1e-6 of the logits' size
    assert abs(eval_loss - batch_loss) <= 1e-4 * top


@pytest.mark.claim("bn.running-stats")
@settings(max_examples=10)
@given(seed=seeds, batch=st.sampled_from([8, 32, 128]), momentum=st.floats(0.01, 0.05),
       loc=st.floats(-3, 3), log_scale=st.floats(-1, 1))
def test_bn_running_stats(seed, batch, momentum, loc, log_scale):
    """Fed batches of a fixed Gaussian population, the running mean and std (the notebook's
    update, kept as std) end close to the population's, but not equal: the mean within its EMA
    noise, the std biased low by the mean of the batch std, c4(B) sigma."""
    width, scale = 200, 10**log_scale
    steps = int(12 / momentum)  # the EMA's init weight (1-m)^steps < 1e-5
    generator = torch.Generator().manual_seed(seed)
    norm = BatchNorm1d(width, eps=0.0, momentum=momentum, track="std")
    with torch.no_grad():
        for _ in range(steps):
            norm(loc + scale * torch.randn(1, batch, width, generator=generator))
    mean_err = (norm.running_mean[0] - loc) / scale
    ratio = norm.running_var[0] / scale
    # EMA noise of the mean: sd sqrt(m / ((2 - m) B)) per unit; 5 sd bounds all 200 units
    noise = math.sqrt(momentum / ((2 - momentum) * batch))
    assert mean_err.abs().max() < 5 * noise
    assert mean_err.abs().max() > 0  # not identical
    c4 = math.sqrt(2 / (batch - 1)) * math.exp(
        math.lgamma(batch / 2) - math.lgamma((batch - 1) / 2))
    # the units' mean ratio has sd ~ noise / sqrt(2 * 200): 5 of those around c4
    assert abs(float(ratio.mean()) - c4) < 5 * noise / math.sqrt(2 * width) + 1e-4
    assert float(ratio.mean()) < 1  # biased low


@pytest.mark.claim("bn.epsilon")
@settings(max_examples=40)
@given(value=st.floats(-1e4, 1e4, allow_nan=False), batch=st.integers(2, 200),
       width=st.integers(1, 8), seed=seeds, loc=st.floats(-10, 10), log_scale=st.floats(-1, 2))
def test_bn_epsilon(value, batch, width, seed, loc, log_scale):
    """A constant float32 batch: with eps 0, BN divides by zero (nan/inf output) when the batch
    variance is exactly 0, and otherwise blows the rounding noise of the mean up to unit size,
    sqrt((n-1)/n); with eps 1e-5 output and input gradient are finite and the output is at most
    rounding / sqrt(eps). On a non-degenerate batch eps changes an output by at most
    |xhat| eps / (2 v)."""
    x = torch.full((1, batch, width), value, requires_grad=True)
    zero_var = bool((batch_variance(x.detach()) == 0).all())
    out = BatchNorm1d(width, eps=0.0)(x).detach()
    if zero_var:
        assert not torch.isfinite(out).all()
    else:
        assert torch.allclose(out.abs(), torch.tensor(math.sqrt((batch - 1) / batch)), rtol=1e-3)
    out = BatchNorm1d(width, eps=1e-5)(x)
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    # x - mean is at most a few float32 ulps of the value
    assert (out.abs() <= 8 * F32_EPS * (abs(value) + 1e-30) / math.sqrt(1e-5)).all()
    generator = torch.Generator().manual_seed(seed)
    x = loc + 10**log_scale * torch.randn(1, batch, width, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        plain, smoothed = (BatchNorm1d(width, eps=e)(x)[0] for e in (0.0, 1e-5))
    var = x[0].var(0)
    bound = plain.abs() * (1e-5 / (2 * var)) + 64 * F64_EPS * (1 + plain.abs())
    assert ((plain - smoothed).abs() <= bound).all()


@pytest.mark.slow
def test_bn_mlp_claims_run_quick(tmp_path):
    """The seven claims through the real runner, quick profile with 2 seeds: every verdict is
    computed and every file written."""
    from ablations.context import PROFILES, Context
    from ablations.registry import select
    from ablations.runner import run_all

    claims = [c for c in select(["bn.*"]) if c.id in {
        "bn.standardise", "bn.mlp", "bn.coupling", "bn.regulariser", "bn.calibrate",
        "bn.running-stats", "bn.epsilon"}]
    outcomes = run_all(claims, Context(PROFILES["quick"], n_seeds=2), tmp_path,
                       report=lambda _: None)
    assert len(outcomes) == 7
    for outcome in outcomes:
        for name in ("result.json", "table.csv", "figure.png"):
            assert (tmp_path / outcome.claim_id / name).is_file()
    verdicts = {o.claim_id: o.verdict for o in outcomes}
    assert verdicts["bn.mlp"] == "not evaluated"  # 4,000 steps cannot judge a 200k-step loss
    assert verdicts["bn.standardise"] == "reproduced"
