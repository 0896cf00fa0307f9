"""init: the output layer and the loss at initialisation (L:20-44, L:83)."""

from __future__ import annotations

import math

import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from ablations.context import Context
from ablations.plotting import reference
from ablations.registry import Claim, Judgement, Measurement, Metric, Source, Verdict, register
from ablations.verdicts import says

# --- init.expected-loss -----------------------------------------------------------------------

VOCAB_SIZES = (2, 4, 10, 27, 100, 1000)


def measure_expected_loss(ctx: Context) -> Measurement:
    """Cross-entropy of uniform (all-zero) logits for every vocabulary size and label, float64;
    the control is the closed form ln V for each V."""
    rows = []
    for vocab in VOCAB_SIZES:
        logits = torch.zeros(vocab, vocab, dtype=torch.float64)
        labels = torch.arange(vocab)
        losses = F.cross_entropy(logits, labels, reduction="none")
        rows.append({"vocab_size": vocab, "loss_min": losses.min().item(),
                     "loss_max": losses.max().item(), "ln_v": math.log(vocab)})
    table = pd.DataFrame(rows)
    at_27 = table.loc[table.vocab_size == 27].iloc[0]
    worst = float((table.loss_max - table.ln_v).abs().max())
    return Measurement(
        table=table,
        metrics={"uniform_loss_v27": Metric.exact(at_27.loss_max, "nats"),
                 "max_abs_error_vs_ln_v": Metric.exact(worst, "nats")},
        predictions={"uniform_loss_v27": math.log(27)},
    )


def judge_expected_loss(m: Measurement, ctx: Context) -> Judgement:
    loss = m.metrics["uniform_loss_v27"].mean
    error = m.metrics["max_abs_error_vs_ln_v"].mean
    # ln 27 = 3.2958: the source's "3.29" is the value truncated to 2 decimals, so it asserts a
    # value in [3.29, 3.30); ln V must hold to float64 rounding (1e-12) for every V and label.
    ok = 3.29 <= loss < 3.30 and error <= 1e-12
    return Judgement(
        Verdict.REPRODUCED if ok else Verdict.NOT_REPRODUCED,
        f"uniform loss at V=27 is {loss:.6f} nats (ln 27 = {math.log(27):.6f}); source: 3.29. "
        f"Over V in {list(VOCAB_SIZES)} and every label the loss equals ln V to {error:.1e}; "
        "the source's 3.29 truncates 3.2958 (rounded it is 3.30).",
        holds_instead="" if ok else f"the uniform loss is {loss:.4f}, not 3.29",
        tolerance="the source truncates to 2 decimals: [3.29, 3.30); ln V must hold to float64 rounding",
    )


def plot_expected_loss(m: Measurement, fig: Figure) -> None:
    ax = fig.add_subplot()
    t = m.table
    ax.plot(t.vocab_size, t.ln_v, color="0.5", label="ln V (prediction)")
    ax.scatter(t.vocab_size, t.loss_max, zorder=3, label="measured, uniform logits")
    reference(ax, 3.29, "source (V=27)")
    ax.set_xscale("log")
    ax.set(title="Loss of uniform predictions = ln V", xlabel="vocabulary size V",
           ylabel="cross-entropy (nats)")
    ax.legend()


register(Claim(
    id="init.expected-loss",
    statement="With 27 equally likely characters the loss to expect at init is -ln(1/27) = 3.29",
    source=Source("L", "22-23"),
    measure=measure_expected_loss,
    judge=judge_expected_loss,
    plot=plot_expected_loss,
    source_values={"uniform_loss_v27": 3.29},
))
