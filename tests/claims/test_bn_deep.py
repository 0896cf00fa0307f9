"""Property tests of the bn claims about the deep network (L:123, L:241, L:349-361, L:373).

Each states the mathematics a claim rests on at small sizes and lets hypothesis look for a
counterexample: exact identities in float64 (tolerance: float64 rounding), statistical ones
against the sampling spread of the quantity (the comment says which). They use the library's
deep network and the claims' own helpers (ablations.experiments.normalised).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from ablations.experiments.normalised import step0_losses, unigram_entropy
from ablations.experiments.theory import tanh_second_moment
from makemore.models import NOTEBOOK_SEED, DeepConfig, deep
from makemore.modules import BatchNorm1d, Linear, Module, Streams, Tanh

seeds = st.integers(0, 2**31 - 1)
log_uniform = st.floats(-3.0, 3.0).map(lambda e: 10.0**e)  # scales from 1e-3 to 1e3
# Float64 rounding (1e-16 relative) amplified by BatchNorm's x - mean (a condition number of
# max|x| / std, at most ~1e2 for these sizes) and by sums over up to a few hundred terms stays
# below 1e-12; 1e-10 leaves a margin and is still 1e5 times below any real effect tested.
F64_REL = 1e-10


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def double_deep(seed: int, **config: object) -> Module:
    """The deep network (DeepConfig overrides) in float64, BatchNorm without eps (exact
    invariances), two members with the same draws (seed, seed)."""
    model = deep(Streams([seed, seed]), DeepConfig(bn_eps=0.0, **config))
    for module in model.modules():
        for name in module.param_names:
            tensor = getattr(module, name)
            if tensor is not None:
                setattr(module, name, tensor.detach().double().requires_grad_())
        for name in module.buffer_names:
            setattr(module, name, getattr(module, name).double())
    return model


def linears(model: Module) -> list[Linear]:
    return [m for m in model.modules() if isinstance(m, Linear)]


def scale_weights(model: Module, factors: list[float], only_last: bool = False) -> None:
    """Member 1's Linear weights (or only the last one's) times factors[i], exactly in float64;
    member 0 keeps its weights."""
    chosen = linears(model)[-1:] if only_last else linears(model)
    for layer, factor in zip(chosen, factors, strict=True):
        scale = torch.tensor([1.0, factor], dtype=torch.float64).view(2, 1, 1)
        layer.weight = (layer.weight.detach() * scale).requires_grad_()


def forward_backward(model: Module, seed: int, batch: int) -> torch.Tensor:
    """One forward and backward pass of both members on the same random contexts and labels;
    returns the logits."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 27, (1, batch, 3), generator=generator).expand(2, -1, -1)
    y = torch.randint(0, 27, (batch,), generator=generator)
    logits = model(x)
    F.cross_entropy(logits.reshape(2 * batch, -1), y.repeat(2)).backward()
    return logits


def update_shift(model: Module, lrs: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """Per Linear weight: log10 update:data of member 1 minus member 0 (update = lr * grad)."""
    shifts = []
    for layer in linears(model):
        grad, data = layer.weight.grad.flatten(1), layer.weight.detach().flatten(1)
        ratio = torch.tensor(lrs, dtype=torch.float64) * grad.std(1) / data.std(1)
        shifts.append(math.log10(ratio[1] / ratio[0]))
    return np.array(shifts)


@pytest.mark.claim("bn.gain-robust")
@given(seed=seeds, gain=st.floats(0.05, 20.0), depth=st.integers(1, 4),
       width=st.integers(4, 48), batch=st.integers(4, 64))
def test_bn_gain_robust(seed, gain, depth, width, batch):
    """With BN before every tanh and after the last Linear, multiplying every Linear weight by
    any gain g > 0 leaves every activation exactly unchanged (BN divides the scale out) and
    divides every weight gradient by g, so each update:data ratio moves by exactly -2 log10 g.
    Control: without BN the same gain changes the activations."""
    config = {"depth": depth, "n_hidden": width}
    model = double_deep(seed, batchnorm="before", batchnorm_last=True, gain=1.0, **config)
    scale_weights(model, [gain] * (depth + 1))
    logits = forward_backward(model, seed, batch)
    for out in [m.out for m in model.modules() if isinstance(m, Tanh)] + [logits]:
        assert rel_diff(out[1], out[0]) < F64_REL
    assert np.allclose(update_shift(model), -2 * math.log10(gain), atol=1e-9)
    plain = double_deep(seed, gain=1.0, **config)
    scale_weights(plain, [gain] * depth + [1.0])
    plain_logits = forward_backward(plain, seed, batch)
    if abs(math.log(gain)) > 0.01:  # tanh is not linear: a 1% scale moves it by >> 1e-10
        assert rel_diff(plain_logits[1], plain_logits[0]) > 1e-6


@pytest.mark.claim("bn.no-fan-in")
@given(seed=seeds, n_embd=st.integers(1, 12), width=st.integers(4, 64), depth=st.integers(1, 3),
       lr_factor=st.floats(1.0, 100.0), batch=st.integers(4, 64))
def test_bn_no_fan_in(seed, n_embd, width, depth, lr_factor, batch):
    """Without 1/sqrt(fan_in) every Linear weight is sqrt(fan_in) times the normalised one:
    with BN the forward pass is unchanged and each weight's update:data ratio falls by exactly
    log10(fan_in) (2 decades at fan-in 100); k times the learning rate raises every ratio by
    log10 k, so 10x lifts it by one decade."""
    model = double_deep(seed, batchnorm="before", batchnorm_last=True, gain=1.0, n_embd=n_embd,
                        n_hidden=width, depth=depth)
    fan_ins = [layer.weight.shape[1] for layer in linears(model)]
    scale_weights(model, [math.sqrt(f) for f in fan_ins])  # member 1: plain randn
    logits = forward_backward(model, seed, batch)
    assert rel_diff(logits[1], logits[0]) < F64_REL
    expected = math.log10(lr_factor) - np.log10(fan_ins)
    assert np.allclose(update_shift(model, (1.0, lr_factor)), expected, atol=1e-9)


GAUSSIAN_TANH_STD = math.sqrt(tanh_second_moment(1.0))  # 0.628: tanh of a unit Gaussian


def tanh_stds(seed: int, batch: int, **config: object) -> np.ndarray:
    """Each tanh layer's std at init (the deep net's first forward pass on random contexts)."""
    model = deep(Streams([seed]), DeepConfig(**config))
    x = torch.randint(0, 27, (1, batch, 3), generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        model(x)
    return np.array([m.out.std().item() for m in model.modules() if isinstance(m, Tanh)])


def allowed_std_error(batch: int, width: int) -> float:
    """How far a tanh layer's std over batch x width values of standardised pre-activations
    may fall from GAUSSIAN_TANH_STD: its sampling sd is at most about std / (2 sqrt(n)) for
    n values (tanh's kurtosis is below 3), 5 sd of it is exceeded in ~1e-6 of draws, and the
    pre-activations' finite-width departure from a Gaussian moves E tanh^2 by O(1/width)."""
    return 5 * GAUSSIAN_TANH_STD / (2 * math.sqrt(batch * width)) + 1 / width


@pytest.mark.claim("bn.deep-homogeneous")
@given(seed=seeds, gain=st.floats(0.1, 5.0), depth=st.integers(1, 8),
       width=st.integers(32, 128), batch=st.integers(16, 128))
def test_bn_deep_homogeneous(seed, gain, depth, width, batch):
    """With BN before every tanh each tanh layer sees every unit standardised over the batch,
    whatever the gain and the depth, so every layer's std at init is that of tanh of a unit
    Gaussian, sqrt(E tanh(z)^2) = 0.628: the 0.63 the notebook prints for its first layers.
    (Without BN a gain of 0.1 or 5 moves the std by 0.3 or more.)"""
    stds = tanh_stds(seed, batch, depth=depth, n_hidden=width, gain=gain, batchnorm="before",
                     batchnorm_last=True)
    assert np.all(np.abs(stds - GAUSSIAN_TANH_STD) < allowed_std_error(batch, width))


@pytest.mark.claim("bn.last-layer-gamma")
@given(seed=seeds, weight_scale=log_uniform, gamma=log_uniform, depth=st.integers(1, 3),
       width=st.integers(4, 48), batch=st.integers(4, 64))
def test_bn_last_layer_gamma(seed, weight_scale, gamma, depth, width, batch):
    """With BN after the last Linear, scaling its weight by any s > 0 leaves the logits exactly
    unchanged, and each logit's batch std is gamma * sqrt((B - 1) / B) (the lecture normalises
    by the unbiased variance): gamma alone sets how confident the softmax is. Without the last
    BN the same s multiplies the logits (their bias is zero at init)."""
    config = {"depth": depth, "n_hidden": width, "gain": 1.0, "batchnorm": "before"}
    model = double_deep(seed, batchnorm_last=True, last_scale=gamma, **config)
    scale_weights(model, [weight_scale], only_last=True)
    logits = forward_backward(model, seed, batch)
    assert rel_diff(logits[1], logits[0]) < F64_REL
    last_gamma = [m for m in model.modules() if isinstance(m, BatchNorm1d)][-1].gamma[0]
    spread = logits[0].std(0, unbiased=False)
    assert torch.allclose(spread, last_gamma * math.sqrt((batch - 1) / batch), rtol=F64_REL,
                          atol=0.0)
    plain = double_deep(seed, batchnorm_last=False, last_scale=1.0, **config)
    scale_weights(plain, [weight_scale], only_last=True)
    plain_logits = forward_backward(plain, seed, batch)
    assert rel_diff(plain_logits[1], weight_scale * plain_logits[0]) < F64_REL


def test_step0_losses_draw_the_notebooks_batch(splits):
    """The claim's step-0 loss is the notebook's own: its seed, parameters and first batch,
    gamma x 0.1, give the 3.2870 it prints (to four decimals)."""
    loss = step0_losses([NOTEBOOK_SEED], splits.train, last_bn=True, gamma_scale=0.1)
    assert abs(loss[0] - 3.2870) < 5e-5


def folded_logits(model: Module, x: torch.Tensor) -> torch.Tensor:
    """The logits of the same network with no BatchNorm: after model's forward pass on x, each
    BN layer, an affine map per unit given its batch statistics, is folded into the Linear
    before it (BN before a tanh or at the end) or after it (BN after a tanh)."""
    layers = list(model.children())
    weights, biases, pending = [], [], None  # pending: (scale, shift) of a BN after a tanh
    for i, layer in enumerate(layers):
        if isinstance(layer, BatchNorm1d):
            h = layers[i - 1].out
            scale = layer.gamma / torch.sqrt(h.var(1) + layer.eps)
            shift = layer.beta - scale * h.mean(1)
            if isinstance(layers[i - 1], Linear):  # fold into the Linear before
                weights[-1] = weights[-1] * scale.unsqueeze(1)
                biases[-1] = biases[-1] * scale + shift
            else:
                pending = (scale, shift)
        elif isinstance(layer, Linear):
            w = layer.weight
            b = layer.bias if layer.bias is not None else torch.zeros_like(w[:, 0])
            if pending is not None:  # fold the BN after the previous tanh into this Linear
                b = b + torch.bmm(pending[1].unsqueeze(1), w).squeeze(1)
                w = w * pending[0].unsqueeze(2)
                pending = None
            weights.append(w)
            biases.append(b)
    h = layers[1](layers[0](x))  # embedding, flatten
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        h = torch.baddbmm(b.unsqueeze(1), h, w)
        h = torch.tanh(h) if i < len(weights) - 1 else h
    return h


@pytest.mark.claim("bn.placement")
@given(seed=seeds, placement=st.sampled_from(["before", "after"]), last=st.booleans(),
       depth=st.integers(1, 4), width=st.integers(4, 48), batch=st.integers(4, 64),
       affine=st.floats(0.1, 3.0))
def test_bn_placement(seed, placement, last, depth, width, batch, affine):
    """On any batch, BN before the tanh, after it, or after the last Linear is an affine map
    per unit that folds exactly into a neighbouring Linear: every placement computes a plain
    tanh network of the same shape. No placement changes what the network can express; they
    differ in how it trains (the claim's 200,000-step comparison), so results can be similar."""
    model = double_deep(seed, depth=depth, n_hidden=width, batchnorm=placement,
                        batchnorm_last=last)
    generator = torch.Generator().manual_seed(seed)
    for norm in (m for m in model.modules() if isinstance(m, BatchNorm1d)):
        norm.gamma = affine * torch.randn(norm.gamma.shape, generator=generator).double()
        norm.beta = torch.randn(norm.beta.shape, generator=generator).double()
    x = torch.randint(0, 27, (2, batch, 3), generator=generator)
    with torch.no_grad():
        logits = model(x)
        assert rel_diff(folded_logits(model, x), logits) < F64_REL


@pytest.fixture(scope="module")
def long_contexts():
    """The training split with six characters of context, as numpy arrays."""
    from makemore.data import load_splits

    x, y = load_splits(6).train
    return x.numpy(), y.numpy()


def conditional_entropy(contexts: np.ndarray, targets: np.ndarray) -> float:
    """H(Y | context) of the empirical distribution, in nats."""
    _, context_id = np.unique(contexts, axis=0, return_inverse=True)
    pairs, counts = np.unique(np.stack([context_id, targets]), axis=1, return_counts=True)
    context_counts = np.bincount(context_id)[pairs[0]]
    return float(-(counts * np.log(counts / context_counts)).sum() / len(targets))


@pytest.mark.claim("bn.context-bottleneck")
@given(seed=seeds, size=st.integers(100, 5000), k=st.integers(1, 5), spread=log_uniform)
def test_bn_context_bottleneck(long_contexts, seed, size, k, spread):
    """Any model that sees the last k characters predicts some q(y | those k); on any sample
    of the data its cross-entropy is at least the conditional entropy H(Y | last k) (Gibbs'
    inequality), however well it is optimised: the context sets a floor no optimiser can pass.
    A longer context can only lower that floor: H(Y | last k + 1) <= H(Y | last k)."""
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(long_contexts[1]), size=size, replace=False)
    x, y = long_contexts[0][rows], long_contexts[1][rows]
    floor = conditional_entropy(x[:, -k:], y)
    assert conditional_entropy(x[:, -k - 1:], y) <= floor + 1e-12  # float64 sums of <= 5000
    _, context_id = np.unique(x[:, -k:], axis=0, return_inverse=True)
    logits = spread * rng.standard_normal((context_id.max() + 1, 27))
    loss = F.cross_entropy(torch.from_numpy(logits[context_id]), torch.from_numpy(y))
    assert loss.item() >= floor - 1e-12


@pytest.mark.claim("bn.deeper-nets")
@given(seed=seeds, depth=st.integers(20, 50), gain=st.floats(0.1, 5.0),
       targets=st.integers(2, 5000), spread=log_uniform)
def test_bn_deeper_nets(seed, depth, gain, targets, spread):
    """Two things the claim's measurement rests on. A run that did not train is one no better
    than the unigram entropy: no model that ignores its context does better (Gibbs'
    inequality; the log-frequencies reach it). And BN resets the scale at every layer: the last
    tanh of a 20-50-layer stack sits at the std of tanh of a unit Gaussian whatever the gain,
    while without BN at gain 1 the signal fades with depth (below 0.3 by layer 20)."""
    rng = np.random.default_rng(seed)
    y = torch.from_numpy(rng.integers(0, 27, targets))
    frequencies = torch.bincount(y, minlength=27).double() / targets
    floor = unigram_entropy(y)
    best = F.cross_entropy(frequencies.clamp_min(1e-300).log().expand(targets, 27), y)
    assert abs(best.item() - floor) < 1e-12
    constant = torch.from_numpy(spread * rng.standard_normal(27)).expand(targets, 27)
    assert F.cross_entropy(constant, y).item() >= floor - 1e-12
    bn = tanh_stds(seed, 64, depth=depth, n_hidden=32, gain=gain, batchnorm="before",
                   batchnorm_last=True)
    assert abs(bn[-1] - GAUSSIAN_TANH_STD) < allowed_std_error(64, 32)
    assert tanh_stds(seed, 64, depth=depth, n_hidden=32, gain=1.0)[-1] < 0.3
