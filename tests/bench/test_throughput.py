"""Throughput of the lecture's MLP (kaiming config) in seed-steps per second: the notebook's plain
single-run loop beside the ensemble engine at E = 1, 16 and 64 members, in one pytest run.

Run with `pytest tests/bench --benchmark-only`. Nothing here asserts a time: the figures are
recorded in each benchmark's extra_info and summarised in a ratio table at the end of the run
(tests/bench/conftest.py). A seed-step is one SGD step of one seed (one member), so E members
doing S steps are E * S seed-steps.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from makemore.models import NOTEBOOK_SEED, mlp
from makemore.modules import Streams
from makemore.train import TrainConfig, train

pytestmark = pytest.mark.bench

STEPS = 300  # per round: long enough to dwarf per-call overhead, short enough for 5 rounds
ROUNDS = 5
MEMBERS = (1, 16, 64)

# runner name -> seed-steps per second (mean round), filled in as the benchmarks run and read
# by the terminal summary in conftest.py
RESULTS: dict[str, float] = {}


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


def record(benchmark, name: str, members: int) -> None:
    rate = members * STEPS / benchmark.stats.stats.mean
    benchmark.extra_info.update({"members": members, "steps": STEPS, "seed_steps_per_s": rate})
    RESULTS[name] = rate


def test_notebook_loop(benchmark, splits):
    Xtr, Ytr = splits.train

    def setup():
        return (*notebook_parameters(NOTEBOOK_SEED), Xtr, Ytr, STEPS), {}

    benchmark.pedantic(notebook_loop, setup=setup, rounds=ROUNDS, warmup_rounds=1)
    record(benchmark, "notebook loop", 1)


@pytest.mark.parametrize("members", MEMBERS)
def test_engine(benchmark, splits, members):
    config = TrainConfig(steps=STEPS, decay_step=None)

    def setup():
        streams = Streams([NOTEBOOK_SEED + i for i in range(members)])
        return (mlp(streams, "kaiming"), splits.train, config, streams), {}

    benchmark.pedantic(train, setup=setup, rounds=ROUNDS, warmup_rounds=1)
    record(benchmark, f"engine E={members}", members)
