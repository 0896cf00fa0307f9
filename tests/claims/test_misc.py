"""Property tests for the misc claims (ablations/claims/misc.py): what torch.no_grad saves in an
evaluation, and whether training makes samples more name-like."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ablations.claims.misc import (
    bigram_log_probs,
    bigram_nll,
    graph_bytes,
    predicted_bytes,
    sample_quality,
)
from makemore.data import split_words
from makemore.models import MLPConfig, mlp
from makemore.modules import Streams
from makemore.train import TrainConfig, sample, train

seeds = st.integers(0, 2**31 - 1)


@pytest.mark.claim("misc.no-grad")
@settings(max_examples=20)
@given(n_embd=st.integers(1, 12), n_hidden=st.integers(1, 64), block=st.integers(1, 5),
       examples=st.integers(1, 300), members=st.integers(1, 3), seed=seeds)
def test_misc_no_grad(n_embd, n_hidden, block, examples, members, seed):
    """Whatever the MLP's shape and the split's size: with autograd the graph saves exactly the
    tensors the backward pass needs (bytes predicted from the shapes), under no_grad nothing,
    and the loss is bitwise the same."""
    config = MLPConfig(w1="kaiming", b1=0.01, w2=0.01, b2=0.0, n_embd=n_embd,
                       n_hidden=n_hidden, block_size=block)
    model = mlp(Streams([seed + i for i in range(members)]), config)
    g = torch.Generator().manual_seed(seed)
    data = (torch.randint(0, 27, (examples, block), generator=g),
            torch.randint(0, 27, (examples,), generator=g))
    loss_grad, with_grad = graph_bytes(model, data, grad=True)
    loss_plain, without = graph_bytes(model, data, grad=False)
    expected = predicted_bytes(examples, config, members)
    assert with_grad["saved_bytes"] == expected["saved_bytes"]
    assert with_grad["graph_only_bytes"] == expected["graph_only_bytes"] > 0
    assert without["saved_bytes"] == 0 and without["saved_storages"] == 0
    assert torch.equal(loss_grad, loss_plain)


@pytest.mark.claim("misc.samples")
@settings(max_examples=4)
@given(seed=seeds)
def test_misc_samples(seed, splits):
    """A few hundred SGD steps already make samples far more name-like than the same init's:
    they close over half the gap in bigram NLL between untrained samples and real names."""
    train_words, dev_words, _ = split_words(splits.words)
    log_probs = bigram_log_probs(train_words)
    streams = Streams([seed])
    model = mlp(streams, "kaiming", n_hidden=64)
    before = sample(model, 40, 3, seed + 10)
    train(model, splits.train, TrainConfig(steps=400, decay_step=None), streams)
    after = sample(model, 40, 3, seed + 10)
    untrained, trained = bigram_nll(before, log_probs), bigram_nll(after, log_probs)
    data = bigram_nll(dev_words, log_probs)
    # Untrained samples are near-uniform strings (~4.8 nats/char under the bigram), real names
    # 2.45; 40 samples (~300 characters) pin a mean NLL to about +-0.1.
    assert (untrained - trained) / (untrained - data) > 0.5
    quality = sample_quality(after, train_words, log_probs)
    assert quality["length_tvd"] < sample_quality(before, train_words, log_probs)["length_tvd"]


@pytest.mark.slow
def test_misc_family_runs_quick(tmp_path):
    """Both misc claims through the real runner, quick profile, 2 seeds (a 4,000-step run)."""
    from ablations.context import PROFILES, Context
    from ablations.registry import select
    from ablations.runner import run_all

    outcomes = run_all(select(["misc"]), Context(PROFILES["quick"], n_seeds=2), tmp_path,
                       report=lambda _: None)
    verdicts = {o.claim_id: o.verdict for o in outcomes}
    assert verdicts == {"misc.no-grad": "reproduced", "misc.samples": "reproduced"}
    assert all((tmp_path / o.claim_id / "figure.png").is_file() for o in outcomes)
