"""makemore.fast, the autograd-free training step, against the autograd step of makemore.train.

Tolerance: none. The fast step calls, for every layer, the kernels that autograd calls, on the
same operands, and adds the contributions to each gradient in the order autograd's engine adds
them; its two reformulations (the SGD update fused into the weight-gradient matmul, the one-hot
matmul for the embedding's gradient) are used only where a probe shows that the BLAS sums in
one pass, i.e. in the order of the reference. So every loss, parameter and running statistic
must agree bitwise, after any number of steps; a tolerance of even one ulp would hide a changed
formulation, which the 4-decimal notebook replays (test_replay.py) could then not survive.

Member independence is bitwise too: each kernel works on one member's slice with shapes that
do not depend on how many members there are, so a member's numbers are the same in any
ensemble, next to any other members, and with 1 or 2 threads.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import example, given
from hypothesis import strategies as st

from makemore import fast
from makemore.models import NOTEBOOK_SEED, DeepConfig, MLPConfig, deep, mlp
from makemore.modules import ACTIVATIONS, Module, Sequential, Streams
from makemore.train import TrainConfig, train


@pytest.fixture(scope="module")
def data(splits):
    x, y = splits.train
    return x[:5000], y[:5000]


deep_configs = st.builds(
    DeepConfig,
    depth=st.integers(1, 3),
    n_embd=st.integers(1, 6),
    n_hidden=st.integers(2, 24),
    nonlinearity=st.sampled_from(sorted(ACTIVATIONS)),
    batchnorm=st.sampled_from(["none", "before", "after"]),
    bn_convention=st.sampled_from(["lecture", "torch"]),
    bn_eps=st.sampled_from([0.0, 1e-5]),
    bn_affine=st.booleans(),
    residual=st.booleans(),
    gain=st.sampled_from([1.0, 5 / 3]),
).flatmap(lambda c: st.builds(
    lambda last: DeepConfig(**{**c.__dict__, "batchnorm_last": last,
                               "last_scale": 1.0 if last and not c.bn_affine else 0.1}),
    st.booleans()))
mlp_configs = st.builds(
    MLPConfig,
    w1=st.sampled_from(["kaiming", 0.2]),
    b1=st.sampled_from([None, 0.01]),
    batchnorm=st.booleans(),
    bn_affine=st.booleans(),
    n_embd=st.integers(1, 6),
    n_hidden=st.integers(2, 24),
    nonlinearity=st.sampled_from(["tanh", "relu", "sigmoid", "leaky_relu"]),
)
networks = st.one_of(deep_configs, mlp_configs)
optimisers = st.sampled_from(["sgd", "adam"])


def build(config: DeepConfig | MLPConfig, streams: Streams) -> Sequential:
    return deep(streams, config) if isinstance(config, DeepConfig) else mlp(streams, config)


def state(model: Module) -> list[torch.Tensor]:
    return [t.detach() for t in model.parameters() + model.buffers()]


def identical(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bitwise equal values, NaN matching NaN (a batch of equal inputs with eps = 0 gives 0/0
    in both paths)."""
    return a.shape == b.shape and bool(((a == b) | (a.isnan() & b.isnan())).all())


def all_identical(xs: list[torch.Tensor], ys: list[torch.Tensor]) -> bool:
    return all(identical(x, y) for x, y in zip(xs, ys, strict=True))


def trained(config, seeds, data, *, autograd=False, gains=None, **options):
    """Train `config` for a few steps; autograd=True forces the autograd step (a callback)."""
    streams = Streams(seeds)
    if gains is not None:
        config = DeepConfig(**{**config.__dict__, "gain": gains})
    model = build(config, streams)
    settings = {"steps": 6, "decay_step": 3, "lr": 0.05, **options}
    callbacks = [lambda _: None] if autograd else []
    history = train(model, data, TrainConfig(**settings), streams, callbacks=callbacks)
    return model, history.losses


def lr_for(optimizer: str, members: int, per_member: bool):
    base = 0.05 if optimizer == "sgd" else 0.005
    return tuple(base * (1 + e) for e in range(members)) if per_member else base


@given(config=networks, members=st.integers(1, 3), batch=st.integers(2, 40),
       optimizer=optimisers, per_member_lr=st.booleans())
# found by fresh randomness: a one-member matrix-vector product (n_embd = 1) that sums out of
# index order, which the embedding probe once missed, and a NaN run (BN after the last layer)
@example(config=MLPConfig(w1="kaiming", b1=None, batchnorm=False, bn_affine=False, n_embd=1,
                          n_hidden=2, nonlinearity="tanh"),
         members=1, batch=28, optimizer="sgd", per_member_lr=False)
@example(config=DeepConfig(depth=1, n_embd=1, n_hidden=2, nonlinearity="elu", gain=1.0,
                           batchnorm="after", batchnorm_last=True, bn_eps=0.0, bn_affine=False,
                           last_scale=1.0),
         members=1, batch=2, optimizer="sgd", per_member_lr=False)
def test_fast_step_is_bit_identical_to_autograd(data, config, members, batch, optimizer,
                                                 per_member_lr):
    seeds = [NOTEBOOK_SEED + m for m in range(members)]
    options = {"batch_size": batch, "optimizer": optimizer,
               "lr": lr_for(optimizer, members, per_member_lr)}
    ours, our_losses = trained(config, seeds, data, **options)
    ref, ref_losses = trained(config, seeds, data, autograd=True, **options)
    assert identical(our_losses, ref_losses)
    if not all(torch.isfinite(t).all() for t in [ref_losses, *state(ref)]):
        # Domain: runs that stay finite. Once a gradient is NaN (BN with eps = 0 on a batch of
        # equal rows), the one-hot matmul spreads 0 * NaN to rows that autograd leaves alone;
        # the losses above still agree, and the run is flagged as diverged either way.
        return
    assert all_identical(state(ours), state(ref))
    # the layers keep their last forward's outputs, as after an autograd run
    assert all_identical([m.out for m in ours.modules() if hasattr(m, "out")],
                         [m.out.detach() for m in ref.modules() if hasattr(m, "out")])
    assert all(p.grad is None for p in ours.parameters())


@pytest.mark.parametrize("batch", [140, 520])
def test_long_sums_fall_back_to_the_reference_order(data, batch):
    """Past the BLAS's one-pass length (MKL: 384 products) the one-hot matmul (3 * 140 rows)
    and the fused update (520 rows) would round partial sums: the step then keeps the gradient
    kernels of autograd, and stays bit-identical."""
    config = DeepConfig(depth=1, n_hidden=8, batchnorm="before")
    ours, our_losses = trained(config, [1, 2], data, batch_size=batch, steps=3)
    ref, ref_losses = trained(config, [1, 2], data, batch_size=batch, steps=3, autograd=True)
    assert identical(our_losses, ref_losses)
    assert all_identical(state(ours), state(ref))


@given(config=networks, position=st.integers(0, 15), optimizer=optimisers,
       per_member_lr=st.booleans())
def test_a_member_is_bitwise_the_same_in_any_ensemble(data, config, position, optimizer,
                                                      per_member_lr):
    """Member `seed` alone (E = 1), among 5 and among 16 members whose seeds, learning rates
    and (deep network) gains differ from its own: the same losses, parameters and running
    statistics, bitwise."""
    seed, lr = NOTEBOOK_SEED, lr_for(optimizer, 1, False)
    results = []
    for members in (1, 5, 16):
        at = position % members
        seeds = [seed if e == at else seed + 1 + e for e in range(members)]
        rates = (tuple(lr if e == at else 2 * lr / (1 + e) for e in range(members))
                 if per_member_lr else lr)
        gains = None
        if isinstance(config, DeepConfig):
            gains = tuple(1.0 if e == at else 0.5 + e / 8 for e in range(members))
        model, losses = trained(config, seeds, data, optimizer=optimizer, lr=rates, gains=gains)
        results.append(([t[at] for t in state(model)], losses[:, at]))
    (first, first_losses), *others = results
    for tensors, losses in others:
        assert identical(losses, first_losses)
        assert all_identical(tensors, first)


@given(config=networks, optimizer=optimisers)
def test_one_or_two_threads_give_the_same_bits(data, config, optimizer):
    """The kernels split members, rows or columns between threads, never a sum: the same
    numbers on 1 and 2 threads."""
    threads = torch.get_num_threads()
    runs = []
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            runs.append(trained(config, [3, 4, 5], data, optimizer=optimizer,
                                lr=lr_for(optimizer, 3, False)))
    finally:
        torch.set_num_threads(threads)
    (one, one_losses), (two, two_losses) = runs
    assert identical(one_losses, two_losses)
    assert all_identical(state(one), state(two))


@pytest.mark.parametrize("config", ["kaiming", "fix-tanh", "batchnorm", "original"])
def test_the_notebook_configurations_train_on_the_fast_path(config):
    """The replays (test_replay.py) train these through train(): they run on the fast step."""
    streams = Streams([NOTEBOOK_SEED])
    assert fast.plan(mlp(streams, config), 1, 32, 3, "sgd", scalar_lr=True) is not None
    model = deep(streams, batchnorm="before", batchnorm_last=True, gain=1.0)
    assert fast.plan(model, 1, 32, 3, "sgd", scalar_lr=True) is not None


def test_unsupported_networks_train_with_autograd(data):
    """A layer without fast kernels: plan declines, and train() runs the autograd step."""

    class Doubling(Module):
        def __call__(self, x):
            self.out = 2 * x
            return self.out

    streams = Streams([1, 2])
    model = mlp(streams, "kaiming")
    model.layers.insert(3, Doubling())
    assert fast.plan(model, 2, 32, 3, "sgd", scalar_lr=True) is None
    history = train(model, data, TrainConfig(steps=3), streams)
    assert history.losses.shape == (3, 2)
    assert all(p.grad is not None for p in model.parameters())  # autograd's gradients
