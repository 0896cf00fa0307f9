"""The notebook's own printed numbers, replayed with its seed through makemore.train: a fast
prefix (step-0 losses, the deep BatchNorm network after 1,001 steps) and, marked slow, the full
200,000-step runs (each 40-80 s).

The replay is exact: one member with the notebook's seed draws the notebook's parameters and
batches, so the printed 4-decimal numbers must come out as printed (a float32 difference in the
fifth decimal would be a different computation, not noise)."""

from __future__ import annotations

import pytest

from makemore.diagnostics import activation_stats, grad_data_ratios
from makemore.models import NOTEBOOK_SEED, deep, mlp
from makemore.modules import Streams, Tanh
from makemore.train import TrainConfig, evaluate, train

STEP0 = {"batchnorm": 3.3239, "original": 27.8817, "kaiming": 3.3179, "fix-tanh": 3.3135}


@pytest.mark.parametrize("config", sorted(STEP0))
def test_step0_loss(config, splits):
    streams = Streams([NOTEBOOK_SEED])
    history = train(mlp(streams, config), splits.train, TrainConfig(steps=1), streams)
    assert round(history.initial.item(), 4) == STEP0[config]


def test_deep_batchnorm_diagnostics_after_1001_steps(splits):
    """The notebook's loop i = 0..1000 (lr 0.1) on the deep BatchNorm network (gain 1.0), then
    the printed tanh-layer statistics and grad:data ratios of the last step."""
    streams = Streams([NOTEBOOK_SEED])
    model = deep(streams, batchnorm="before", batchnorm_last=True, gain=1.0)
    config = TrainConfig(steps=1001, decay_step=150_000)
    history = train(model, splits.train, config, streams, retain_activation_grads=True)
    assert round(history.initial.item(), 4) == 3.2870
    layers = activation_stats(model, threshold=0.97, kind=Tanh)
    assert [round(100 * row["saturated"], 2) for row in layers] == [2.78, 2.56, 2.25, 1.69, 1.88]
    assert all(0.63 <= round(row["std"], 2) <= 0.65 for row in layers)
    # activation-gradient std: 2.6e-3 in the first tanh layer, falling to 1.95e-3 in the last
    assert f"{layers[0]['grad_std']:.1e}" == "2.6e-03"
    assert f"{layers[-1]['grad_std']:.2e}" == "1.95e-03"
    assert all(a["grad_std"] > b["grad_std"] for a, b in zip(layers, layers[1:], strict=False))
    ratios = [row["grad_data"] for row in grad_data_ratios(model)]  # C, 5 hidden W, last W
    assert [f"{r:.1e}" for r in ratios[:-1]] == [
        "8.0e-03", "4.9e-02", "7.0e-02", "6.1e-02", "5.6e-02", "5.6e-02"]
    assert f"{ratios[-1]:.2e}" == "1.16e-01"


FULL = {
    "kaiming": (2.0377, 2.1070),
    "fix-tanh": (2.0356, 2.1027),
    "batchnorm": (2.0674, 2.1057),  # evaluated with the running statistics
}


@pytest.mark.slow
@pytest.mark.parametrize("config", sorted(FULL))
def test_full_replay(config, splits):
    """200,000 steps, lr 0.1 then 0.01 from step 100,000: the notebook's final losses."""
    streams = Streams([NOTEBOOK_SEED])
    model = mlp(streams, config)
    train(model, splits.train, TrainConfig(steps=200_000, decay_step=100_000), streams)
    losses = (evaluate(model, splits.train).item(), evaluate(model, splits.dev).item())
    assert tuple(round(loss, 4) for loss in losses) == FULL[config]
