"""init: the output layer and the loss at initialisation (L:20-44, L:83)."""

from __future__ import annotations

import math

import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from ablations import figures
from ablations.checks import Exact, Near
from ablations.context import Context
from ablations.measurement import Measurement, Metric
from ablations.registry import Claim, Source, measures, register
from ablations.verdicts import Rules

# --- init.expected-loss -------------------------------------------------------------------------

VOCAB_SIZES = (2, 4, 10, 27, 100, 1000)


@measures(uniform_loss_v27="nats", worst_error_ulps="ulps")
def measure_expected_loss(ctx: Context, vocab_sizes: tuple[int, ...]) -> Measurement:
    """Cross-entropy of all-zero logits for every vocabulary size and every label, in float64,
    against the closed form ln V."""
    rows = []
    for vocab in vocab_sizes:
        losses = F.cross_entropy(torch.zeros(vocab, vocab, dtype=torch.float64),
                                 torch.arange(vocab), reduction="none")
        ulp = math.ulp(math.log(vocab))
        rows.append({"vocab_size": vocab, "loss": losses.max().item(), "ln_v": math.log(vocab),
                     "error_ulps": (losses - math.log(vocab)).abs().max().item() / ulp})
    table = pd.DataFrame(rows)
    return Measurement(table, {
        "uniform_loss_v27": Metric.exact(table.loss[table.vocab_size == 27].iloc[0], "nats"),
        "worst_error_ulps": Metric.exact(table.error_ulps.max(), "ulps", kind="numerics"),
    })


def figure_expected_loss(m: Measurement, fig: Figure) -> None:
    ax = fig.add_subplot()
    t = m.table
    ax.plot(t.vocab_size, t.ln_v, color="0.5", label="ln V")
    ax.scatter(t.vocab_size, t.loss, zorder=3, label="measured, uniform logits")
    figures.reference(ax, 3.29, "lecture (V = 27)")
    ax.set(xscale="log", title="The loss of uniform predictions is ln V",
           xlabel="vocabulary size V", ylabel="cross-entropy (nats)")
    figures.legend(ax)
    figures.caption(fig, 1, "closed form, no seeds")


register(Claim(
    id="init.expected-loss",
    statement="With 27 equally likely characters the loss to expect at init is -ln(1/27) = 3.29",
    source=Source("L", "22-23"),
    measure=measure_expected_loss,
    grid={"vocab_sizes": VOCAB_SIZES},
    rules=Rules(reproduced=(Near("uniform_loss_v27", "ln 27 as 3.29"),
                            Exact("worst_error_ulps", "rounding of a few operations"))),
    headline="uniform_loss_v27",
    finding="Uniform logits cost ln V for every V and label: {uniform_loss_v27} at V = 27, "
            "within {worst_error_ulps:mean} ulps of ln V.",
    figure=figure_expected_loss,
))
