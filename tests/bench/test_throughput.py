"""Throughput in seed-steps per second, in one pytest run: the notebook's plain single-run loop,
the engine (makemore.train, on its fast step) at E = 1, 16, 64 and 256 members for the lecture's
MLP (kaiming config) and for the deep BatchNorm network, and a ceiling: the Linear layers of the
MLP's fast step alone at E = 64. Then what leaving bit-identity would give at E = 64: the
float-tolerance step of float_step.py in the fastest layouts, the same step under torch.compile,
and its six matmuls alone, then with tanh. After each runner the sgemm rate that sets its limit is
measured anew (makemore.throughput), so that both see the same load on shared cores.

Run with `pytest -m bench tests/bench --benchmark-only` (tox -e bench). Nothing here asserts a
time: each benchmark records its figures in extra_info, the end of the run prints them as a
table (conftest.py), and `python -m tests.bench.readme_table` writes the README's table from
the saved JSON. A seed-step is one SGD step of one member: E members doing S steps are E * S.
"""

from __future__ import annotations

import functools
import os

import pytest
import torch
import torch.nn.functional as F

from makemore import fast
from makemore.models import NOTEBOOK_SEED
from makemore.modules import Streams
from makemore.throughput import NETWORKS, Rate, matmul_flops, sgemm_flops_per_second
from makemore.train import TrainConfig, train
from tests.bench.float_step import FloatStep

pytestmark = pytest.mark.bench

STEPS = 200  # per round: long enough to dwarf per-call overhead, short enough for 5 rounds
ROUNDS = 5
MEMBERS = (1, 16, 64, 256)
FLOPS = {name: matmul_flops(build(Streams([0])), 32) for name, build in NETWORKS.items()}

# filled in as the benchmarks run, read by the terminal summary in conftest.py
RESULTS: list[Rate] = []


def notebook_parameters(seed: int) -> list[torch.Tensor]:
    """C, W1, b1, W2, b2 of the kaiming config, drawn as the notebook draws them."""
    g = torch.Generator().manual_seed(seed)
    C = torch.randn((27, 10), generator=g)
    W1 = torch.randn((30, 200), generator=g) * (5 / 3) / 30**0.5
    b1 = torch.randn(200, generator=g) * 0.01
    W2 = torch.randn((200, 27), generator=g) * 0.01
    b2 = torch.randn(27, generator=g) * 0
    parameters = [C, W1, b1, W2, b2]
    for p in parameters:
        p.requires_grad = True
    return parameters + [g]


def notebook_loop(C, W1, b1, W2, b2, g, Xtr, Ytr, steps):
    """The lecture's training loop, written out plainly (one seed, one step at a time)."""
    parameters = [C, W1, b1, W2, b2]
    for i in range(steps):
        ix = torch.randint(0, Xtr.shape[0], (32,), generator=g)
        Xb, Yb = Xtr[ix], Ytr[ix]
        emb = C[Xb]
        embcat = emb.view(emb.shape[0], -1)
        hpreact = embcat @ W1 + b1
        h = torch.tanh(hpreact)
        logits = h @ W2 + b2
        loss = F.cross_entropy(logits, Yb)
        for p in parameters:
            p.grad = None
        loss.backward()
        lr = 0.1 if i < 100_000 else 0.01
        for p in parameters:
            p.data += -lr * p.grad


def record(benchmark, runner: str, network: str, members: int) -> None:
    """Keep the runner's best round, with the sgemm rate measured now, under the same load."""
    rate = members * STEPS / benchmark.stats.stats.min
    sgemm = sgemm_flops_per_second(torch.device("cpu"))
    RESULTS.append(Rate(runner, network, rate, FLOPS[network], sgemm))
    benchmark.extra_info.update({"runner": runner, "network": network, "members": members,
                                 "steps": STEPS, "seed_steps_per_s": rate,
                                 "flops_per_seed_step": FLOPS[network], "sgemm_flops_per_s": sgemm,
                                 "threads": torch.get_num_threads(),
                                 "load_average": os.getloadavg()[0], "cores": os.cpu_count()})


def test_notebook_loop(benchmark, splits):
    Xtr, Ytr = splits.train

    def setup():
        return (*notebook_parameters(NOTEBOOK_SEED), Xtr, Ytr, STEPS), {}

    benchmark.pedantic(notebook_loop, setup=setup, rounds=ROUNDS, warmup_rounds=1)
    record(benchmark, "notebook loop", "MLP", 1)


@pytest.mark.parametrize("members", MEMBERS)
@pytest.mark.parametrize("network", list(NETWORKS))
def test_engine(benchmark, splits, network, members):
    config = TrainConfig(steps=STEPS, decay_step=None)

    def setup():
        streams = Streams([NOTEBOOK_SEED + i for i in range(members)])
        return (NETWORKS[network](streams), splits.train, config, streams), {}

    benchmark.pedantic(train, setup=setup, rounds=ROUNDS, warmup_rounds=1)
    record(benchmark, f"engine, {network}, E = {members}", network, members)


def test_linear_layers_alone(benchmark, splits):
    """The ceiling of the step: the MLP's two Linear layers as its fast step runs them (forward,
    input gradient, weight update fused into the weight-gradient matmul, bias sums) at E = 64,
    and nothing else: the limit's matmuls at the efficiency these shapes get."""
    members = 64
    streams = Streams([NOTEBOOK_SEED + i for i in range(members)])
    model = NETWORKS["MLP"](streams)
    step = fast.plan(model, members, 32, splits.train[0].shape[1], "sgd", scalar_lr=True)
    assert step is not None
    ix = streams.randint(splits.train[0].shape[0], 1, 32)[:, 0]
    step(splits.train, ix, 0.1, torch.empty(members))  # fills the buffers the layers read
    linears = [layer for layer in step.layers if isinstance(layer, fast._Linear)]
    step.update.lr = 1e-9  # the weights barely move

    def run():
        for _ in range(STEPS):
            for layer in linears:
                layer.forward(layer.x)
                layer.backward(layer.out)

    with torch.no_grad():
        benchmark.pedantic(run, rounds=ROUNDS, warmup_rounds=1)
    record(benchmark, f"Linear layers of the MLP step alone, E = {members}", "MLP", members)


def float_step_runner(splits, members: int, wrap=lambda step: step):
    """setup and run for pytest-benchmark: STEPS steps of a fresh FloatStep (wrapped, e.g.
    compiled), on batches drawn as the engine draws them."""
    x_all, y_all = splits.train

    def setup():
        streams = Streams([NOTEBOOK_SEED + i for i in range(members)])
        step = FloatStep(NETWORKS["MLP"](streams), 32)
        return (wrap(step), streams.randint(x_all.shape[0], STEPS, 32)), {}

    x = torch.empty(members, 32, x_all.shape[1], dtype=torch.long)
    y = torch.empty(members, 32, dtype=torch.long)

    def run(step, chunk):
        for i in range(STEPS):  # the batch gathered into buffers, as the engine does
            rows = chunk[:, i].reshape(-1)
            torch.index_select(x_all, 0, rows, out=x.view(rows.shape[0], -1))
            torch.index_select(y_all, 0, rows, out=y.view(-1))
            step(x, y, 0.1)

    return setup, run


def test_float_step(benchmark, splits):
    setup, run = float_step_runner(splits, 64)
    benchmark.pedantic(run, setup=setup, rounds=ROUNDS, warmup_rounds=1)
    record(benchmark, "float-tolerance step (float_step.py), E = 64", "MLP", 64)


def test_float_step_compiled(benchmark, splits):
    """The same step under torch.compile (inductor); skipped where it cannot compile."""
    compiled = torch.compile(FloatStep.__call__, dynamic=False)
    setup, run = float_step_runner(splits, 64, lambda step: functools.partial(compiled, step))
    try:
        args, _ = setup()
        run(*args)
    except Exception as error:  # inductor needs a C++ compiler
        pytest.skip(f"torch.compile failed here: {type(error).__name__}")
    benchmark.pedantic(run, setup=setup, rounds=ROUNDS, warmup_rounds=1)
    record(benchmark, "the same step under torch.compile, E = 64", "MLP", 64)


@pytest.mark.parametrize("tanh", [False, True], ids=["matmuls", "matmuls+tanh"])
def test_float_step_ceilings(benchmark, splits, tanh):
    """The float-tolerance step's six matmuls alone at E = 64, and with the hidden layer's tanh
    forward and backward: the second is the most any step of these kernels can reach."""
    setup, run = float_step_runner(splits, 64)
    (step, chunk), _ = setup()
    run(step, chunk)  # fills the buffers the matmuls read

    def ceiling():
        for _ in range(STEPS):
            step.matmuls(tanh)

    benchmark.pedantic(ceiling, rounds=ROUNDS, warmup_rounds=1)
    what = "and tanh forward and backward" if tanh else "alone"
    record(benchmark, f"its six matmuls {what}, E = 64", "MLP", 64)
