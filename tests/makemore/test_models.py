"""makemore.models: parameter counts, gains, the notebook's draw order and the deep network's
knobs."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from makemore.models import (
    GAINS,
    LEAKY_SLOPE,
    MLP_CONFIGS,
    NOTEBOOK_SEED,
    DeepConfig,
    count_parameters,
    deep,
    kaiming_std,
    mlp,
)
from makemore.modules import ACTIVATIONS, BatchNorm1d, LeakyReLU, Linear, Residual, Streams

DEEP_BN = {"batchnorm": "before", "batchnorm_last": True, "gain": 1.0}


@pytest.mark.parametrize(
    "build, expected",
    [
        (lambda s: mlp(s, "kaiming"), 11_897),
        (lambda s: mlp(s, "batchnorm"), 12_097),
        (lambda s: deep(s), 46_497),
        (lambda s: deep(s, **DEEP_BN), 47_024),
    ],
    ids=["mlp", "mlp-batchnorm", "deep", "deep-batchnorm"],
)
def test_parameter_counts(build, expected):
    """The notebook's counts, per member, whatever the ensemble size."""
    assert count_parameters(build(Streams([1]))) == expected
    assert count_parameters(build(Streams([1, 2, 3]))) == expected


@pytest.mark.parametrize("name", sorted(GAINS))
def test_gains_are_torchs(name):
    param = LEAKY_SLOPE if name == "leaky_relu" else None
    assert GAINS[name] == pytest.approx(torch.nn.init.calculate_gain(name, param), rel=1e-15)
    assert kaiming_std(name, 30) == pytest.approx(GAINS[name] / math.sqrt(30), rel=1e-15)


def test_every_gain_belongs_to_a_layer():
    """Each gain key names an activation layer; the leaky gain uses that layer's slope."""
    assert set(GAINS) <= set(ACTIVATIONS)
    assert LeakyReLU().negative_slope == LEAKY_SLOPE
    with pytest.raises(ValueError, match="no gain"):
        kaiming_std("elu", 30)


KAIMING = "(5/3) / 30**0.5"
# The notebook's loss-log table (ref/notebook-facts.md), written out rather than read from
# MLP_CONFIGS: scales of W1, b1 (None: no b1), W2, b2.
NOTEBOOK_SCALES = {
    "original": (1.0, 1.0, 1.0, 1.0),
    "fix-softmax": (1.0, 1.0, 0.01, 0.0),
    "fix-tanh": (0.2, 0.01, 0.01, 0.0),
    "kaiming": (KAIMING, 0.01, 0.01, 0.0),
    "batchnorm": (KAIMING, None, 0.01, 0.0),
}


def notebook_draws(config: str) -> tuple[list[torch.Tensor], torch.Generator]:
    """C, W1, b1, W2, b2 drawn by hand, in the notebook's order and with its expressions, from
    its generator."""
    w1, b1, w2, b2 = NOTEBOOK_SCALES[config]
    g = torch.Generator().manual_seed(NOTEBOOK_SEED)
    C = torch.randn((27, 10), generator=g)
    W1 = torch.randn((30, 200), generator=g)
    W1 = W1 * (5 / 3) / 30**0.5 if w1 == KAIMING else W1 * w1
    drawn = [C, W1]
    if b1 is not None:
        drawn.append(torch.randn(200, generator=g) * b1)
    W2 = torch.randn((200, 27), generator=g) * w2
    b2 = torch.randn(27, generator=g) * b2
    return drawn + [W2, b2], g


@pytest.mark.parametrize("config", sorted(NOTEBOOK_SCALES))
def test_notebook_draw_order(config):
    """A one-member MLP with the notebook's seed holds the parameters drawn by hand in the
    notebook's order, and leaves the generator where the notebook's is, so the batches drawn
    next are the notebook's too. Bitwise, except the kaiming W1: the notebook writes
    randn * (5/3) / 30**0.5, we multiply by one constant; six roundings of at most
    u = EPS / 2 apart (its two constants and two operations, our constant and product), so
    within 3 * EPS relative."""
    assert set(NOTEBOOK_SCALES) == set(MLP_CONFIGS)
    streams = Streams([NOTEBOOK_SEED])
    model = mlp(streams, config)
    expected, g = notebook_draws(config)
    # BatchNorm's gain and bias are constants, not draws
    params = [p for name, p in model.named_parameters() if "BatchNorm1d" not in name]
    assert [tuple(p.shape[1:]) for p in params] == [tuple(t.shape) for t in expected]
    assert torch.equal(streams.generators[0].get_state(), g.get_state())
    for i, (ours, theirs) in enumerate(zip(params, expected, strict=True)):
        if i == 1 and NOTEBOOK_SCALES[config][0] == KAIMING:
            torch.testing.assert_close(ours[0], theirs, rtol=3 * 2**-23, atol=0)
        else:
            assert torch.equal(ours[0], theirs)


def test_mlp_configs_reject_what_they_do_not_know():
    with pytest.raises(ValueError, match="unknown MLP config"):
        mlp(Streams([1]), "xavier")
    with pytest.raises(ValueError, match="w1 must be"):
        mlp(Streams([1]), "kaiming", w1="xavier")
    for bad in ({"depth": 0}, {"batchnorm": "inside"}, {"nonlinearity": "gelu"}):
        with pytest.raises(ValueError):
            DeepConfig(**bad)


def hidden_and_last(model) -> tuple[list[Linear], Linear]:
    linears = [m for m in model.modules() if isinstance(m, Linear)]
    return linears[:-1], linears[-1]


@given(gains=st.lists(st.sampled_from([0.5, 1.0, 5 / 3, 2.0]), min_size=2, max_size=3),
       batchnorm_last=st.booleans(), fan_in_norm=st.booleans())
def test_deep_gain_per_member(gains, batchnorm_last, fan_in_norm):
    """Members with the same seed differ only by their gain: hidden weights are gain *
    randn / sqrt(fan_in) (or gain * randn without fan-in normalisation); the last Linear gets
    the gain only when a BatchNorm follows it, else it is scaled by last_scale = 0.1."""
    count = len(gains)
    model = deep(Streams([7] * count), depth=2, n_hidden=16, gain=tuple(gains),
                 batchnorm_last=batchnorm_last, fan_in_norm=fan_in_norm)
    base = deep(Streams([7]), depth=2, n_hidden=16, gain=1.0, batchnorm_last=batchnorm_last,
                fan_in_norm=fan_in_norm)
    hidden, last = hidden_and_last(model)
    base_hidden, base_last = hidden_and_last(base)
    for e, gain in enumerate(gains):
        for ours, ref in zip(hidden, base_hidden, strict=True):
            # one float32 multiplication by the gain on each side: at most an ulp apart
            torch.testing.assert_close(ours.weight[e], ref.weight[0] * gain, rtol=2**-23, atol=0)
        expected_last = base_last.weight[0] * (gain if batchnorm_last else 1.0)
        torch.testing.assert_close(last.weight[e], expected_last, rtol=2**-23, atol=0)
    if batchnorm_last:
        assert torch.equal(model.layers[-1].gamma, torch.full((count, 27), 0.1))
    else:
        g = torch.Generator().manual_seed(7)
        torch.randn(27, 10, generator=g)
        first = torch.randn(30, 16, generator=g)
        assert torch.equal(base_hidden[0].weight[0], first / 30**0.5 if fan_in_norm else first)


@pytest.mark.parametrize("placement", ["none", "before", "after"])
def test_deep_layout(placement):
    """Layer order and biases: a bias only where no BatchNorm directly follows the Linear."""
    model = deep(Streams([1]), depth=2, n_hidden=8, batchnorm=placement)
    kinds = [type(m).__name__ for m in model.layers]
    block = {"none": ["Linear", "Tanh"], "before": ["Linear", "BatchNorm1d", "Tanh"],
             "after": ["Linear", "Tanh", "BatchNorm1d"]}[placement]
    assert kinds == ["Embedding", "Flatten", *block, *block, "Linear"]
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Linear):
            followed_by_bn = i + 1 < len(kinds) and kinds[i + 1] == "BatchNorm1d"
            assert (layer.bias is None) == followed_by_bn
    bn_momentum = deep(Streams([1, 2]), depth=1, n_hidden=8, batchnorm="before",
                       bn_momentum=(0.1, 0.01)).layers[3]
    assert isinstance(bn_momentum, BatchNorm1d)
    assert bn_momentum.momentum.flatten().tolist() == pytest.approx([0.1, 0.01])


@given(seed=st.integers(0, 2**31 - 1), depth=st.integers(1, 4),
       batchnorm=st.sampled_from(["none", "before", "after"]))
def test_residual_blocks(seed, depth, batchnorm):
    """residual=True wraps every hidden block of equal widths (all but the first) as h + f(h),
    with the plain network's parameters drawn in the same order, bitwise."""
    plain = deep(Streams([seed, seed + 1]), depth=depth, n_hidden=16, batchnorm=batchnorm)
    residual = deep(Streams([seed, seed + 1]), depth=depth, n_hidden=16, batchnorm=batchnorm,
                    residual=True)
    assert all(torch.equal(a, b) for a, b in
               zip(plain.parameters(), residual.parameters(), strict=True))
    blocks = [m for m in residual.layers if isinstance(m, Residual)]
    assert len(blocks) == depth - 1
    x = torch.randint(0, 27, (2, 8, 3), generator=torch.Generator().manual_seed(seed))
    residual(x)
    for block in blocks:
        before = residual.layers[residual.layers.index(block) - 1].out
        assert torch.equal(block.out, before + block.block.out)
        assert isinstance(block.block.layers[0], Linear)


def test_batchnorm_without_affine_parameters():
    """bn_affine=False: no gamma or beta (each BN has 2 * width parameters fewer), and the
    output is the standardised input: per unit, batch mean 0 and unbiased variance 1 up to
    float32 round-off of a 64-term sum (64 * EPS)."""
    eps = torch.finfo(torch.float32).eps
    for build in (lambda s, **o: mlp(s, "batchnorm", **o),
                  lambda s, **o: deep(s, **DEEP_BN, **o, last_scale=1.0)):
        with_affine, without = build(Streams([1])), build(Streams([1]), bn_affine=False)
        widths = [m.running_mean.shape[1] for m in without.modules()
                  if isinstance(m, BatchNorm1d)]
        assert count_parameters(without) == count_parameters(with_affine) - 2 * sum(widths)
        norm = next(m for m in without.modules() if isinstance(m, BatchNorm1d))
        assert not hasattr(norm, "gamma") and not hasattr(norm, "beta")
    norm = BatchNorm1d(5, eps=0.0, affine=False, members=2)
    out = norm(torch.randn(2, 64, 5, generator=torch.Generator().manual_seed(0)) * 3 + 1)
    torch.testing.assert_close(out.mean(1), torch.zeros(2, 5), rtol=0, atol=64 * eps)
    torch.testing.assert_close(out.var(1), torch.ones(2, 5), rtol=0, atol=64 * eps)
    with pytest.raises(ValueError, match="last_scale=1.0"):
        DeepConfig(batchnorm_last=True, bn_affine=False)
