"""kaiming: variance propagation and principled initialisation (L:90-122, L:210-212)."""

from __future__ import annotations

import math

import pandas as pd
from matplotlib.figure import Figure

from ablations import figures
from ablations.checks import NeedsSteps, Near, Negligible
from ablations.context import LECTURE_STEPS, Context
from ablations.experiments.runs import Trained, mlp_run
from ablations.measurement import Measurement, Metric
from ablations.registry import Claim, Source, measures, register
from ablations.verdicts import Rules

# --- kaiming.mlp --------------------------------------------------------------------------------


@measures(val_kaiming="nats", val_hand="nats", w1_std="")
def measure_mlp(ctx: Context, runs: dict[str, Trained]) -> Measurement:
    """Both inits trained as in the lecture (200,000 steps), over the same seeds."""
    kaiming, hand = runs["kaiming"], runs["hand"]
    table = pd.concat([kaiming.losses_frame().assign(init="(5/3)/sqrt(30) = 0.304"),
                       hand.losses_frame().assign(init="hand-tuned 0.2")])
    metrics = {"val_kaiming": Metric.of(kaiming.val_loss, "nats"),
               "val_hand": Metric.of(hand.val_loss, "nats"),
               "w1_std": Metric.exact((5 / 3) / math.sqrt(30))}
    return Measurement(table, metrics, steps=min(kaiming.steps, hand.steps))


def figure_mlp(m: Measurement, fig: Figure) -> None:
    ax = fig.add_subplot()
    figures.points(ax, m.table, x="init", y="val_loss")
    figures.reference(ax, 2.10, "lecture (one run)")
    ax.set(title="Val loss after 200,000 steps", xlabel="W1 init", ylabel="val loss (nats)")
    figures.legend(ax)
    figures.caption(fig, m.metrics["val_kaiming"].n)


register(Claim(
    id="kaiming.mlp",
    statement="(5/3)/sqrt(30) ~ 0.3 instead of the hand-tuned 0.2 reaches the same val loss "
              "(2.10) with no magic number",
    source=Source("L", "115-121"),
    runs={"kaiming": mlp_run("kaiming"), "hand": mlp_run("fix-tanh")},
    measure=measure_mlp,
    rules=Rules(
        reproduced=(NeedsSteps(LECTURE_STEPS), Near("w1_std", "kaiming std 0.3"),
                    Near("val_kaiming", "the lecture's val loss 2.10"),
                    Negligible(("val_kaiming", "val_hand"), "practically identical loss")),
        partly=(NeedsSteps(LECTURE_STEPS), Near("val_kaiming", "the lecture's val loss 2.10")),
        partly_means="Kaiming init reaches the lecture's 2.10, but not the same loss as the "
                     "hand-tuned 0.2 (paired difference beyond what two decimals hide)",
    ),
    headline="val_kaiming",
    finding="Kaiming init (W1 std 0.304) gives val loss {val_kaiming}; the hand-tuned 0.2 "
            "gives {val_hand}.",
    figure=figure_mlp,
))
