"""makemore.modules against torch.nn, on shapes hypothesis draws (members, batch, widths).

Tolerances come from float32 arithmetic: EPS = 2**-23 is float32's machine epsilon (two units of
round-off, 2u). A sum of n products computed in any order is within about n * u * sum|terms| of
the exact value (Higham's gamma_n bound), so two implementations that sum in different orders
agree to n * EPS * sum|terms|. Where both sides run the same kernel on the same numbers the
comparison is bitwise.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from makemore.modules import (
    ELU,
    BatchNorm1d,
    Embedding,
    Flatten,
    Identity,
    LeakyReLU,
    Linear,
    ReLU,
    Sequential,
    Sigmoid,
    Streams,
    Tanh,
    member_cross_entropy,
    per_member,
)

EPS = torch.finfo(torch.float32).eps

members = st.integers(1, 4)
batch = st.integers(2, 48)
width = st.integers(1, 40)
seeds = st.integers(0, 2**31 - 1)


def within_dot_bound(ours: torch.Tensor, ref: torch.Tensor, n: int, magnitude: torch.Tensor):
    """|ours - ref| <= n * EPS * magnitude element-wise, magnitude = sum of |terms| of each sum."""
    excess = (ours - ref).abs() - n * EPS * magnitude
    assert excess.max().item() <= 0, f"exceeds the float32 bound by {excess.max().item():.3g}"


def streams_for(seed: int, count: int) -> Streams:
    return Streams([seed + i for i in range(count)])


# --- Streams and per_member --------------------------------------------------------------------


@given(seed=seeds, count=members, shape=st.lists(st.integers(1, 5), min_size=1, max_size=3))
def test_stream_draws_do_not_depend_on_the_other_members(seed, count, shape):
    """Member e's draws are its own generator's, bitwise, however many members there are."""
    draws = Streams([seed + i for i in range(count)])
    normal, index = draws.randn(*shape), draws.randint(7, *shape)
    for e in range(count):
        alone = torch.Generator().manual_seed(seed + e)
        assert torch.equal(normal[e], torch.randn(shape, generator=alone))
        assert torch.equal(index[e], torch.randint(0, 7, shape, generator=alone))


def test_per_member():
    assert per_member(0.5, 3, 3) == 0.5
    shaped = per_member((1.0, 2.0, 3.0), 3, 3)
    assert shaped.shape == (3, 1, 1) and shaped.flatten().tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="expected 3 per-member values, got 2"):
        per_member((1.0, 2.0), 3, 2)
    with pytest.raises(ValueError, match="at least one seed"):
        Streams([])


# --- Linear ------------------------------------------------------------------------------------


@given(seed=seeds, count=members, rows=batch, fan_in=width, fan_out=width, bias=st.booleans())
def test_linear_matches_torch(seed, count, rows, fan_in, fan_out, bias):
    """Forward and backward equal torch.nn.Linear holding W.T (torch stores (fan_out, fan_in))."""
    layer = Linear(fan_in, fan_out, bias, streams=streams_for(seed, count))
    g = torch.Generator().manual_seed(seed ^ 1)
    if bias:
        with torch.no_grad():
            layer.bias += torch.randn(layer.bias.shape, generator=g)
    x = torch.randn(count, rows, fan_in, generator=g, requires_grad=True)
    upstream = torch.randn(count, rows, fan_out, generator=g)
    (layer(x) * upstream).sum().backward()
    assert layer.out.shape == (count, rows, fan_out)
    for e in range(count):
        ref = torch.nn.Linear(fan_in, fan_out, bias)
        with torch.no_grad():
            ref.weight.copy_(layer.weight[e].T)
            if bias:
                ref.bias.copy_(layer.bias[e])
        xe = x[e].detach().requires_grad_()
        (ref(xe) * upstream[e]).sum().backward()
        w = layer.weight[e].detach()
        b_abs = layer.bias[e].detach().abs() if bias else 0
        # forward: fan_in products (+ the bias) per output
        within_dot_bound(layer.out[e], ref(xe), fan_in + 1, x[e].abs() @ w.abs() + b_abs)
        # weight grad sums over the batch; input grad over fan_out
        within_dot_bound(layer.weight.grad[e], ref.weight.grad.T, rows,
                         xe.detach().abs().T @ upstream[e].abs())
        within_dot_bound(x.grad[e], xe.grad, fan_out, upstream[e].abs() @ w.abs().T)
        if bias:
            within_dot_bound(layer.bias.grad[e], ref.bias.grad, rows, upstream[e].abs().sum(0))


@given(seed=seeds, count=members, fan_in=width, fan_out=width,
       weight_scale=st.sampled_from([None, 0.5, "per-member"]),
       bias_scale=st.sampled_from([None, 0.01]))
def test_linear_init(seed, count, fan_in, fan_out, weight_scale, bias_scale):
    """W = randn(fan_in, fan_out) * scale (default / sqrt(fan_in)), b = 0, or randn * bias_scale
    drawn right after W from the same generator, bitwise; all parameters are leaves needing
    grad."""
    scales = [0.5 + e for e in range(count)]
    scale = tuple(scales) if weight_scale == "per-member" else weight_scale
    layer = Linear(fan_in, fan_out, streams=streams_for(seed, count), weight_scale=scale,
                   bias_scale=bias_scale)
    for e in range(count):
        g = torch.Generator().manual_seed(seed + e)
        raw = torch.randn((fan_in, fan_out), generator=g)
        if weight_scale is None:
            expected = raw / fan_in**0.5
        else:  # 0.5 + e is exact in float32, so a per-member tensor scales exactly as a float
            expected = raw * (0.5 if weight_scale == 0.5 else scales[e])
        assert torch.equal(layer.weight[e], expected)
        expected_bias = torch.zeros(fan_out) if bias_scale is None else (
            torch.randn(fan_out, generator=g) * bias_scale)
        assert torch.equal(layer.bias[e], expected_bias)
    assert all(p.is_leaf and p.requires_grad for p in layer.parameters())


# --- BatchNorm1d -------------------------------------------------------------------------------


def batchnorm_case(seed, count, rows, dim):
    """Three batches with a per-feature shift of up to 2 std, and random gamma / beta."""
    g = torch.Generator().manual_seed(seed)
    scale = torch.rand(count, 1, dim, generator=g) * 3 + 0.1
    shift = (torch.rand(count, 1, dim, generator=g) * 4 - 2) * scale
    batches = [torch.randn(count, rows, dim, generator=g) * scale + shift for _ in range(3)]
    gamma = torch.randn(count, dim, generator=g)
    beta = torch.randn(count, dim, generator=g)
    return batches, gamma, beta


class Normalised:
    """Float64 batch statistics of x (rows, dim) and the float32 error bounds of a batch norm.

    The mean and variance are sums of `rows` terms: computed in any order they are within about
    rows * u * max|x| of exact, i.e. rows * u * kappa relative to the std, where
    kappa = max|x| / std is the conditioning (large when the batch is nearly constant). The
    rsqrt/division add a few roundings: `unit` = (rows + 4) * EPS * kappa bounds the relative
    error of the statistics of either side. A mean error shifts xhat and a std error scales it,
    so xhat is within unit * (1 + |xhat|); the element-wise sub, mul, mul, add of the output
    add 4 roundings of its size.
    """

    def __init__(self, x: torch.Tensor, eps: float, unbiased: bool):
        x = x.detach().double()
        self.rows = x.shape[0]
        self.mean = x.mean(0)
        self.var = x.var(0, unbiased=unbiased)
        self.std = (self.var + eps).sqrt()
        self.xhat = (x - self.mean) / self.std
        self.max_abs = x.abs().max(0).values
        self.unit = (self.rows + 4) * EPS * self.max_abs / self.std

    def out_bound(self, gamma, beta):
        gamma, beta = gamma.double().abs(), beta.double().abs()
        rounding = 4 * EPS * (gamma * self.xhat.abs() + beta)
        return self.unit * (1 + self.xhat.abs()) * gamma + rounding

    def input_grad_bound(self, gamma, upstream):
        """dx = gamma / std * (g - mean(g) - xhat * mean(g * xhat)): each term within `unit`."""
        spread = self.xhat.abs() * self.xhat.abs().max(0).values
        bracket = upstream.abs().max(0).values * (1 + spread)
        return self.unit * gamma.double().abs() / self.std * bracket

    def gamma_grad_bound(self, upstream):
        return self.unit * (upstream.abs() * (1 + self.xhat.abs())).sum(0)



class RunningDrift:
    """Bounds on the running statistics over several steps: each step blends in a batch mean
    within unit * std and a batch variance within 2 * unit * max|x| * std (the square's error
    relative to max|x|**2), times the momentum; the blend adds two roundings and shrinks the
    earlier error by (1 - momentum)."""

    def __init__(self):
        self.mean = self.var = 0.0

    def check(self, norm: BatchNorm1d, e: int, stats: Normalised, momentum, mean, var):
        mean, var = mean.double(), var.double()
        keep = 1 - momentum
        self.mean = keep * self.mean + momentum * stats.unit * stats.std + 2 * EPS * mean.abs()
        blended = momentum * 2 * stats.unit * stats.max_abs * stats.std
        self.var = keep * self.var + blended + 2 * EPS * var.abs()
        assert_within(norm.running_mean[e], mean, self.mean)
        assert_within(norm.running_var[e], var, self.var)


def assert_within(ours: torch.Tensor, ref: torch.Tensor, bound: torch.Tensor):
    excess = (ours.double() - ref.double()).abs() - bound
    assert excess.max().item() <= 0, f"exceeds the float32 bound by {excess.max().item():.3g}"


@settings(max_examples=30)
@given(seed=seeds, count=members, rows=batch, dim=width, eps=st.sampled_from([1e-5, 1e-3, 1e-2]),
       momenta=st.lists(st.sampled_from([0.001, 0.1, 0.5]), min_size=4, max_size=4))
def test_batchnorm_torch_convention_matches_torch(seed, count, rows, dim, eps, momenta):
    """convention="torch": forward, backward (input, gamma, beta) and running buffers equal
    torch.nn.BatchNorm1d's over three training steps, then the eval-mode forward; per-member
    momenta equal one torch module per member with that momentum. (torch refuses eps = 0 in
    training, so eps = 0 is checked only against the lecture's formula below.)"""
    batches, gamma, beta = batchnorm_case(seed, count, rows, dim)
    ours = BatchNorm1d(dim, eps, tuple(momenta[:count]), members=count, convention="torch")
    with torch.no_grad():
        ours.gamma.copy_(gamma)
        ours.beta.copy_(beta)
    refs = []
    for e in range(count):
        ref = torch.nn.BatchNorm1d(dim, eps=eps, momentum=momenta[e])
        with torch.no_grad():
            ref.weight.copy_(gamma[e])
            ref.bias.copy_(beta[e])
        refs.append(ref)
    upstream = torch.randn(count, rows, dim, generator=torch.Generator().manual_seed(seed + 1))
    drift = [RunningDrift() for _ in range(count)]
    for x in batches:
        x = x.requires_grad_()
        ours.gamma.grad = ours.beta.grad = None
        (ours(x) * upstream).sum().backward()
        for e, ref in enumerate(refs):
            ref.zero_grad()
            xe = x[e].detach().requires_grad_()
            expected = ref(xe)
            (expected * upstream[e]).sum().backward()
            stats = Normalised(xe, eps, unbiased=False)
            assert_within(ours.out[e], expected, stats.out_bound(gamma[e], beta[e]))
            assert_within(x.grad[e], xe.grad, stats.input_grad_bound(gamma[e], upstream[e]))
            assert_within(ours.gamma.grad[e], ref.weight.grad, stats.gamma_grad_bound(upstream[e]))
            assert_within(ours.beta.grad[e], ref.bias.grad, rows * EPS * upstream[e].abs().sum(0))
            drift[e].check(ours, e, stats, momenta[e], ref.running_mean, ref.running_var)
    ours.eval()
    x = batches[0]
    for e, ref in enumerate(refs):
        with torch.no_grad():
            expected = ref.eval()(x[e])
        assert_within(ours(x)[e], expected, eval_bound(x[e], ref.running_mean, ref.running_var,
                                                       eps, gamma[e], beta[e]))


def eval_bound(x, running_mean, running_var, eps, gamma, beta):
    """Eval mode is element-wise with fixed statistics: a few (say 4) roundings of the sizes of
    the terms, |x - mean| / std scaled by |gamma|, plus |beta| (torch folds it all into one
    scale and shift, which cancels against the mean)."""
    size = (x.abs() + running_mean.abs()) / (running_var + eps).sqrt()
    return 4 * EPS * (size * gamma.abs() + beta.abs()).double()


@settings(max_examples=30)
@given(seed=seeds, count=members, rows=batch, dim=width, eps=st.sampled_from([0.0, 1e-5]),
       track=st.sampled_from(["var", "std"]), momentum=st.sampled_from([0.001, 0.1]))
def test_batchnorm_lecture_convention(seed, count, rows, dim, eps, track, momentum):
    """convention="lecture": normalise with the unbiased batch variance and store it (or its
    square root with track="std"); eval mode uses the stored statistics. The reference is the
    lecture's formula in float64."""
    batches, gamma, beta = batchnorm_case(seed, count, rows, dim)
    ours = BatchNorm1d(dim, eps, momentum, members=count, track=track)
    with torch.no_grad():
        ours.gamma.copy_(gamma)
        ours.beta.copy_(beta)
    running_mean = torch.zeros(count, dim, dtype=torch.float64)
    running = torch.ones(count, dim, dtype=torch.float64)
    drift = [RunningDrift() for _ in range(count)]
    for x in batches:
        out = ours(x)
        for e in range(count):
            stats = Normalised(x[e], eps, unbiased=True)
            expected = gamma[e].double() * stats.xhat + beta[e].double()
            assert_within(out[e], expected, stats.out_bound(gamma[e], beta[e]))
            batch_stat = stats.var.sqrt() if track == "std" else stats.var
            running_mean[e] = (1 - momentum) * running_mean[e] + momentum * stats.mean
            running[e] = (1 - momentum) * running[e] + momentum * batch_stat
            drift[e].check(ours, e, stats, momentum, running_mean[e], running[e])
    ours.eval()
    x = batches[0].double()
    var = running**2 if track == "std" else running
    out = ours(batches[0])
    for e in range(count):
        expected = gamma[e] * (x[e] - running_mean[e]) / (var[e] + eps).sqrt() + beta[e]
        assert_within(out[e], expected, eval_bound(x[e], running_mean[e], var[e], eps,
                                                   gamma[e].double(), beta[e].double()))


@given(seed=seeds, rows=st.integers(2, 8), dim=width)
def test_the_two_conventions_differ_by_bessels_factor(seed, rows, dim):
    """The test above can tell the conventions apart: on the same batch the lecture's output is
    the torch one times sqrt((n-1)/n) (exactly so for beta = 0, eps = 0)."""
    (x, *_), _, _ = batchnorm_case(seed, 1, rows, dim)
    lecture = BatchNorm1d(dim, 0.0)(x)
    torch_like = BatchNorm1d(dim, 0.0, convention="torch")(x)
    factor = ((rows - 1) / rows) ** 0.5
    bound = Normalised(x[0], 0.0, unbiased=True).out_bound(torch.ones(dim), torch.zeros(dim))
    assert_within(lecture[0], torch_like[0] * factor, 2 * bound)
    assert ((lecture - torch_like).abs()[0] > 10 * bound).any()


def test_batchnorm_rejects_what_it_cannot_compute():
    with pytest.raises(ValueError, match="at least 2"):
        BatchNorm1d(3)(torch.zeros(1, 1, 3))
    with pytest.raises(ValueError, match="convention"):
        BatchNorm1d(3, convention="keras")
    with pytest.raises(ValueError, match="track"):
        BatchNorm1d(3, track="mad")
    norm = BatchNorm1d(3).eval()
    assert norm(torch.ones(1, 1, 3)).shape == (1, 1, 3)  # eval mode needs no batch


# --- element-wise layers, Embedding, Flatten ---------------------------------------------------

ACTIVATION_PAIRS = [
    (Tanh(), torch.nn.Tanh()),
    (ReLU(), torch.nn.ReLU()),
    (LeakyReLU(), torch.nn.LeakyReLU()),
    (LeakyReLU(0.2), torch.nn.LeakyReLU(0.2)),
    (Sigmoid(), torch.nn.Sigmoid()),
    (ELU(), torch.nn.ELU()),
    (ELU(0.5), torch.nn.ELU(0.5)),
    (Identity(), torch.nn.Identity()),
]


@pytest.mark.parametrize("ours, ref", ACTIVATION_PAIRS, ids=lambda m: repr(m)[:20])
@given(seed=seeds, count=members, rows=batch, dim=width, scale=st.sampled_from([0.1, 1.0, 10.0]))
def test_activations_match_torch(ours, ref, seed, count, rows, dim, scale):
    """Same element-wise kernel on the same tensor: forward and gradient are bitwise equal."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(count, rows, dim, generator=g) * scale).requires_grad_()
    upstream = torch.randn(count, rows, dim, generator=g)
    (ours(x) * upstream).sum().backward()
    ours_grad, x.grad = x.grad, None
    (ref(x) * upstream).sum().backward()
    assert torch.equal(ours.out, ref(x)) and torch.equal(ours_grad, x.grad)


@given(seed=seeds, count=members, rows=batch, num=st.integers(1, 30), dim=width,
       block=st.integers(1, 5))
def test_embedding_is_indexing(seed, count, rows, num, dim, block):
    """out[e, b, t] = C[e][idx[e, b, t]] bitwise; C[e].grad sums the upstream gradients of the
    positions that chose each row (any summation order: within count * EPS * sum|terms|)."""
    table = Embedding(num, dim, streams=streams_for(seed, count))
    g = torch.Generator().manual_seed(seed ^ 7)
    idx = torch.randint(0, num, (count, rows, block), generator=g)
    upstream = torch.randn(count, rows, block, dim, generator=g)
    (table(idx) * upstream).sum().backward()
    for e in range(count):
        assert torch.equal(table.out[e], table.weight[e][idx[e]])
        flat_idx, flat_up = idx[e].flatten(), upstream[e].reshape(-1, dim)
        expected = torch.zeros(num, dim).index_add_(0, flat_idx, flat_up)
        magnitude = torch.zeros(num, dim).index_add_(0, flat_idx, flat_up.abs())
        within_dot_bound(table.weight.grad[e], expected, rows * block, magnitude)


def test_flatten():
    x = torch.arange(2 * 3 * 4 * 5.0).view(2, 3, 4, 5)
    assert torch.equal(Flatten()(x), x.view(2, 3, 20))


@given(seed=seeds, count=members, rows=batch, vocab=st.integers(2, 30))
def test_member_cross_entropy(seed, count, rows, vocab):
    """Each member's mean cross-entropy, as F.cross_entropy on that member alone (mean of `rows`
    terms: within rows * EPS relative)."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(count, rows, vocab, generator=g) * 3
    targets = torch.randint(0, vocab, (count, rows), generator=g)
    losses = member_cross_entropy(logits, targets)
    expected = torch.stack([F.cross_entropy(logits[e], targets[e]) for e in range(count)])
    torch.testing.assert_close(losses, expected, rtol=rows * EPS, atol=0)


# --- containers --------------------------------------------------------------------------------


def small_network(count: int = 2) -> Sequential:
    streams = streams_for(5, count)
    return Sequential([
        Embedding(27, 4, streams=streams), Flatten(), Linear(12, 8, False, streams=streams),
        BatchNorm1d(8, members=count), Tanh(), Linear(8, 27, streams=streams),
    ])


def test_sequential_parameters_and_modes():
    net = small_network()
    names = [name for name, _ in net.named_parameters()]
    assert names == ["1.Embedding.weight", "3.Linear.weight", "4.BatchNorm1d.gamma",
                     "4.BatchNorm1d.beta", "6.Linear.weight", "6.Linear.bias"]
    shapes = [tuple(p.shape) for p in net.parameters()]
    assert shapes == [(2, 27, 4), (2, 12, 8), (2, 8), (2, 8), (2, 8, 27), (2, 27)]
    assert all(p.is_leaf and p.requires_grad for p in net.parameters())
    assert [tuple(b.shape) for b in net.buffers()] == [(2, 8), (2, 8)]
    assert not any(b.requires_grad for b in net.buffers())
    x = torch.randint(0, 27, (2, 5, 3))
    out = net(x)
    assert out.shape == (2, 5, 27) and net.out is out
    assert net.eval() is net and not any(m.training for m in net.modules())
    assert net.train() is net and all(m.training for m in net.modules())
    # eval mode uses running statistics: a batch of one works and each example is independent
    net.eval()
    torch.testing.assert_close(net(x[:, :1]), net(x)[:, :1], rtol=4 * 12 * EPS, atol=1e-6)


def test_to_keeps_values_and_leaves():
    net = small_network()
    net(torch.randint(0, 27, (2, 5, 3)))  # moves the running statistics away from their start
    before = [t.clone() for t in net.parameters() + net.buffers()]
    assert net.to("cpu") is net
    after = net.parameters() + net.buffers()
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert all(p.is_leaf and p.requires_grad and p.grad is None for p in net.parameters())
    assert not any(b.requires_grad for b in net.buffers())


def test_to_moves_everything_a_step_touches():
    """After to(device), a training step runs there: parameters, buffers and a per-member
    BatchNorm momentum all move (the "meta" device stands in for CUDA: it checks devices and
    shapes without computing)."""
    streams = streams_for(3, 2)
    net = Sequential([Embedding(27, 4, streams=streams), Flatten(),
                      Linear(12, 8, False, streams=streams),
                      BatchNorm1d(8, momentum=(0.1, 0.01), members=2), Tanh()]).to("meta")
    out = net(torch.randint(0, 27, (2, 5, 3)).to("meta"))
    assert out.device.type == "meta"
    assert all(t.device.type == "meta" for t in net.parameters() + net.buffers())
