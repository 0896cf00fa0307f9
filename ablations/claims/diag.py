"""diag: gradient:data and update:data ratios of the lecture's deep network (L:309-346).

The network is the stack family's: no BatchNorm, gain 5/3, the last weight x 0.1, lr 0.1. The
lecture reads grad:data after one step (L:309) and again after 1,000 (L:322-324); it plots the
update:data ratio, log10(std(lr grad) / std(data)), over 1,000 steps (L:333). A ratio read "at" a
step is the mean over the READ_WINDOW steps ending there (one step is one batch of 32). Controls:
the same network with its last weight left unscaled, with lower learning rates, with fan-in
normalisation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ablations import figures
from ablations.checks import Above, Below, Near
from ablations.context import LECTURE_DIAG_STEPS, Context
from ablations.experiments.deep import (
    READ_WINDOW,
    after_diag,
    at_init,
    grad_data,
    layer_stats,
    legend_outside,
    log_ratio_spread,
    ratio_curves,
    ratios_read,
    role,
    seed_metric,
    seed_values,
    with_update_ratios,
)
from ablations.experiments.runs import Trained
from ablations.measurement import Measurement, Metric
from ablations.registry import Claim, Source, measures, register
from ablations.verdicts import Rules

LEARNING_RATES = (0.1, 0.01, 0.001)  # the lecture's, and 10x and 100x lower
RATIOS = with_update_ratios(vary={"lr": LEARNING_RATES})
FLOOR, CEILING = ("update ratio: floor of the decent range",
                  "update ratio: ceiling of the decent range")


def geometric_mean(frame: pd.DataFrame, column: str, which: str) -> pd.Series:
    """Per seed, the geometric mean of `column` over the parameters of one role."""
    rows = frame[role(frame.parameter) == which]
    return np.exp(np.log(rows[column]).groupby(rows.seed, sort=True).mean())


def last_over_hidden(frame: pd.DataFrame, column: str) -> pd.Series:
    return geometric_mean(frame, column, "output") / geometric_mean(frame, column, "hidden")


def read_at_diag(trained: Trained, **where: float) -> pd.DataFrame:
    """The update ratios read at the lecture's step 1,000, of the members matching `where`."""
    frame = ratios_read(trained, LECTURE_DIAG_STEPS)
    for name, value in where.items():
        frame = frame[np.isclose(frame[name], value)]
    return frame


def ratio_figure(m: Measurement, fig: Figure, hue: str, title: str, metric: str) -> None:
    """Update-ratio curves over the lecture's 1,000 steps, the guide and the decent range."""
    ax = fig.add_subplot()
    figures.lines(ax, m.table, x="step", y="ratio", hue=hue, markers=False)
    ax.axhspan(-3.5, -2.0, color="0.85", zorder=0, label="decent range (-3.5 to -2)")
    figures.reference(ax, -3.0, "lecture's guide")
    figures.steps_axis(ax)
    ax.set(xlabel="training step", ylabel="log10(std(lr x grad) / std(weight))", title=title)
    legend_outside(ax)
    figures.caption(fig, m.metrics[metric].n, f"curves: {READ_WINDOW // 10}-step means")


# --- diag.grad-data ------------------------------------------------------------------------------


@measures(grad_data_hidden="", grad_std_hidden="", grad_std_last="", last_over_hidden="",
          last_over_hidden_unscaled="", last_over_hidden_trained="")
def measure_grad_data(ctx: Context, runs: dict[str, Trained]) -> Measurement:
    """grad:data and the gradients' std of every weight after the first step, with the last
    weight x 0.1 and unscaled (the control), and after the lecture's 1,000 steps. 'Hidden' is
    the geometric mean over W1..W5, 'last' the output weight."""
    frames = {k: grad_data(runs[k]).assign(when=label) for k, label in (
        ("init", "step 1"), ("unscaled", "step 1, last weight unscaled"),
        ("trained", "after 1,000 steps"))}
    init = frames["init"]
    metrics = {
        "grad_data_hidden": Metric.of(geometric_mean(init, "grad_data", "hidden")),
        "grad_std_hidden": Metric.of(geometric_mean(init, "grad_std", "hidden")),
        "grad_std_last": Metric.of(geometric_mean(init, "grad_std", "output")),
        "last_over_hidden": Metric.of(last_over_hidden(init, "grad_std")),
        "last_over_hidden_unscaled": Metric.of(last_over_hidden(frames["unscaled"], "grad_std")),
        "last_over_hidden_trained": Metric.of(last_over_hidden(frames["trained"], "grad_std")),
    }
    return Measurement(pd.concat(frames.values(), ignore_index=True), metrics,
                       steps=runs["trained"].steps)


def figure_grad_data(m: Measurement, fig: Figure) -> None:
    left, right = fig.subplots(1, 2, sharey=True)
    for ax, column, what in ((left, "grad_data", "grad:data"), (right, "grad_std", "grad std")):
        figures.points(ax, m.table, x="parameter", y=column, hue="when")
        figures.reference(ax, 1e-3, "lecture: 1e-3")
        ax.set(yscale="log", xlabel="weight", ylabel="ratio or std", title=what)
        ax.tick_params(axis="x", labelrotation=45)
    figures.legend(left, loc="upper left")
    if right.get_legend():
        right.get_legend().remove()
    figures.caption(fig, m.metrics["grad_data_hidden"].n, "hidden = W1..W5, last = W6 (out)")


GRADIENTS_AS_STATED = (
    Near("grad_std_hidden", "gradient std roughly 1e-3"),
    Near("grad_std_last", "last layer's gradient std roughly 1e-2"),
    Near("last_over_hidden", "last layer's gradients 10x the others'"),
    Above(("last_over_hidden", "last_over_hidden_unscaled"), 0.0,
          label="the 0.1 scaling makes the outlier"),
    Below(("last_over_hidden_trained", "last_over_hidden"), 0.0,
          label="the outlier fades in 1,000 steps"))

register(Claim(
    id="diag.grad-data",
    statement="Weight gradients are about 1000x smaller than the weights, except the last "
              "layer's, about 10x larger than the others' because it was scaled by 0.1; this "
              "fades with training",
    source=Source("L", "317-325"),
    runs={"init": at_init(), "unscaled": at_init(last_scale=1.0), "trained": after_diag()},
    measure=measure_grad_data,
    rules=Rules(
        reproduced=(Near("grad_data_hidden", "gradients 1000x smaller than the data"),
                    *GRADIENTS_AS_STATED),
        partly=GRADIENTS_AS_STATED,
        partly_means="the gradients' std is about 1e-3 (the last layer's 1e-2, from the 0.1 "
                     "scaling, fading with training), but grad:data is {grad_data_hidden}: the "
                     "gradients are not 1000x smaller than the weights",
        instead="after one step: hidden grad:data {grad_data_hidden}, grad std "
                "{grad_std_hidden}; last layer over hidden {last_over_hidden} (unscaled "
                "{last_over_hidden_unscaled}, after 1,000 steps {last_over_hidden_trained})"),
    headline="grad_data_hidden",
    finding="After one step the hidden weights' grad:data is {grad_data_hidden:mean}, their "
            "gradient std {grad_std_hidden:mean}; the last layer's is {last_over_hidden:mean}x "
            "larger, {last_over_hidden_trained:mean}x after 1,000 steps.",
    figure=figure_grad_data,
))


# --- diag.update-ratio ---------------------------------------------------------------------------


@measures(ratio_fastest="log10", ratio_slowest="log10", excess_first="decades",
          excess_diag="decades", ratio_last="log10", ratio_last_unscaled="log10")
def measure_update_ratio(ctx: Context, runs: dict[str, Trained]) -> Measurement:
    """log10 update:data at lr 0.1, read at step 1,000: the fastest and the slowest of the
    weights but the shrunk last one (C, W1..W5). The last layer's excess over the hidden
    weights' mean, minus the same excess of the unscaled control (seed by seed), at the first
    step and at step 1,000."""
    shrunk = read_at_diag(runs["ratios"], lr=0.1)
    unscaled = ratios_read(runs["unscaled"], LECTURE_DIAG_STEPS)
    first = {k: ratios_read(r, 1) for k, r in (("shrunk", runs["ratios"]),
                                             ("unscaled", runs["unscaled"]))}
    first["shrunk"] = first["shrunk"][np.isclose(first["shrunk"].lr, 0.1)]

    def excess(frame: pd.DataFrame) -> pd.Series:
        by = role(frame.parameter)
        return (frame[by == "output"].groupby("seed", sort=True).ratio.mean()
                - frame[by == "hidden"].groupby("seed", sort=True).ratio.mean())

    others = shrunk[role(shrunk.parameter) != "output"].groupby("seed", sort=True).ratio
    metrics = {
        "ratio_fastest": Metric.of(others.max(), "log10"),
        "ratio_slowest": Metric.of(others.min(), "log10"),
        "excess_first": Metric.of(excess(first["shrunk"]) - excess(first["unscaled"]), "decades"),
        "excess_diag": Metric.of(excess(shrunk) - excess(unscaled), "decades"),
        "ratio_last": seed_metric(shrunk, "ratio", "log10", parameter="W6 (out)"),
        "ratio_last_unscaled": seed_metric(unscaled, "ratio", "log10", parameter="W6 (out)"),
    }
    curves = pd.concat([ratio_curves(runs["ratios"]).query("lr == 0.1"),
                        ratio_curves(runs["unscaled"]).query("parameter == 'W6 (out)'").assign(
                            parameter="W6 (out), unscaled")], ignore_index=True)
    return Measurement(curves, metrics, steps=runs["ratios"].steps)


def figure_update_ratio(m: Measurement, fig: Figure) -> None:
    ratio_figure(m, fig, "parameter", "Update:data per weight, lr 0.1, last weight x 0.1",
                 "ratio_fastest")


register(Claim(
    id="diag.update-ratio",
    statement="log10(std(lr·grad)/std(data)) should sit near -3; the shrunk last layer is a "
              "temporary outlier",
    source=Source("L", "326-339, 344"),
    runs={"ratios": RATIOS, "unscaled": with_update_ratios(last_scale=1.0)},
    measure=measure_update_ratio,
    rules=Rules(
        reproduced=(Below("ratio_fastest", CEILING), Above("ratio_slowest", FLOOR),
                    Above("excess_first", 0.0, label="the shrunk layer starts as an outlier"),
                    Below(("excess_diag", "excess_first"), 0.0, label="and the outlier fades")),
        partly=(Above("excess_first", 0.0, label="the shrunk layer starts as an outlier"),
                Below(("excess_diag", "excess_first"), 0.0, label="and the outlier fades")),
        partly_means="the shrunk last layer is a temporary outlier, but the other weights' "
                     "ratios span {ratio_slowest} to {ratio_fastest}, beyond the decent range",
        instead="at step 1,000 the other weights span {ratio_slowest} to {ratio_fastest}; the "
                "shrunk layer's excess {excess_first} -> {excess_diag}"),
    headline="ratio_fastest",
    finding="By step 1,000 the weights span {ratio_slowest:mean} to {ratio_fastest:mean}; the "
            "shrink's excess fell from {excess_first:mean} to {excess_diag:mean} decades, but "
            "the last layer sits at {ratio_last:mean} (unscaled {ratio_last_unscaled:mean}).",
    figure=figure_update_ratio,
))


# --- diag.low-lr ---------------------------------------------------------------------------------

LOW_LR_METRICS = {"ratio_lr_0_1": 0.1, "ratio_lr_0_01": 0.01, "ratio_lr_0_001": 0.001}


@measures(**dict.fromkeys(LOW_LR_METRICS, "log10"))
def measure_low_lr(ctx: Context, runs: dict[str, Trained]) -> Measurement:
    """The hidden weights' log10 update:data (mean over W1..W5) read at step 1,000, for the
    lecture's lr 0.1 (the control) and 10x and 100x lower."""
    read = ratios_read(runs["ratios"], LECTURE_DIAG_STEPS)
    hidden = read[role(read.parameter) == "hidden"]
    metrics = {name: Metric.of(seed_values(hidden, "ratio", lr=lr), "log10")
               for name, lr in LOW_LR_METRICS.items()}
    curves = ratio_curves(runs["ratios"])
    curves = curves[role(curves.parameter) == "hidden"].groupby(
        ["lr", "seed", "step"], as_index=False).ratio.mean()
    return Measurement(curves.assign(lr=curves.lr.map(lambda v: f"{v:g}")), metrics,
                       steps=runs["ratios"].steps)


def figure_low_lr(m: Measurement, fig: Figure) -> None:
    ratio_figure(m, fig, "lr", "Update:data of the hidden weights (mean of W1..W5) vs lr",
                 "ratio_lr_0_1")


register(Claim(
    id="diag.low-lr",
    statement="A too-low learning rate shows as updates far below -3",
    source=Source("L", "339-344"),
    runs={"ratios": RATIOS},
    measure=measure_low_lr,
    rules=Rules(
        reproduced=(Below("ratio_lr_0_001", FLOOR, label="lr 0.001: far below -3"),
                    Above("ratio_lr_0_1", FLOOR, label="lr 0.1 (the control): not")),
        instead="the hidden weights' update:data at step 1,000: lr 0.1 {ratio_lr_0_1}, 0.01 "
                "{ratio_lr_0_01}, 0.001 {ratio_lr_0_001}"),
    headline="ratio_lr_0_001",
    finding="At step 1,000 the hidden weights' update:data is {ratio_lr_0_1:mean} at lr 0.1, "
            "{ratio_lr_0_01:mean} at 0.01 and {ratio_lr_0_001:mean} at 0.001.",
    figure=figure_low_lr,
))


# --- diag.no-fan-in ------------------------------------------------------------------------------


@measures(saturation_no_fan_in="%", saturation_fan_in="%", gradient_spread_no_fan_in="decades",
          gradient_spread_fan_in="decades", rate_spread_no_fan_in="decades",
          rate_spread_fan_in="decades", fastest_no_fan_in="log10")
def measure_no_fan_in(ctx: Context, runs: dict[str, Trained]) -> Measurement:
    """Plain randn weights (x 5/3) against fan-in normalised ones, same seeds: the tanh layers'
    saturation (mean over the 5 layers) and the spread of their gradients' std (log10 of
    largest over smallest) at init; at step 1,000 the spread of the weights' update:data and
    the fastest one. The last layer, x 0.1 in both nets, is left out of the rates: it is the
    lecture's known outlier for that reason (L:338)."""
    metrics, stats, rates = {}, [], []
    for key, init, ratios in (("no_fan_in", runs["init"], runs["ratios"]),
                              ("fan_in", runs["init_control"], runs["ratios_control"])):
        network = key.replace("_", " ")
        layers = layer_stats(init).assign(network=network)
        read = ratios_read(ratios, LECTURE_DIAG_STEPS).assign(network=network)
        read = read[np.isclose(read.lr, 0.1)] if "lr" in read else read
        metrics[f"saturation_{key}"] = Metric.of(100 * seed_values(layers, "saturated"), "%")
        metrics[f"gradient_spread_{key}"] = log_ratio_spread(layers, "grad_std")
        per_seed = read[role(read.parameter) != "output"].groupby("seed", sort=True).ratio
        metrics[f"rate_spread_{key}"] = Metric.of(per_seed.max() - per_seed.min(), "decades")
        if key == "no_fan_in":
            metrics["fastest_no_fan_in"] = Metric.of(per_seed.max(), "log10")
        stats.append(layers)
        rates.append(read)
    table = pd.concat(stats, ignore_index=True)
    return Measurement(table.assign(saturated=100 * table.saturated), metrics,
                       frames={"rates": pd.concat(rates, ignore_index=True)},
                       steps=runs["ratios"].steps)


def figure_no_fan_in(m: Measurement, fig: Figure) -> None:
    fig.set_size_inches(11, 4.2)
    saturation, gradients, rates = fig.subplots(1, 3)
    figures.lines(saturation, m.table, x="layer", y="saturated", hue="network")
    figures.reference(saturation, 5.0, "lecture's good level")
    saturation.set(title="saturation at init", xlabel="tanh layer", ylabel="saturated (%)")
    figures.legend(saturation, loc="center right")
    figures.lines(gradients, m.table, x="layer", y="grad_std", hue="network")
    gradients.set(yscale="log", title="activation gradients at init", xlabel="tanh layer",
                  ylabel="std of the tanh output's gradient")
    gradients.get_legend().remove()
    figures.points(rates, m.frames["rates"], x="parameter", y="ratio", hue="network")
    rates.axhspan(-1.5, -1.0, color="0.85", zorder=0, label="lecture: -1 to -1.5")
    figures.reference(rates, -3.0, "lecture's guide")
    rates.set(title="update:data at step 1,000", xlabel="weight", ylabel="log10 ratio")
    rates.tick_params(axis="x", labelrotation=45)
    figures.legend(rates, loc="lower left")
    figures.caption(fig, m.metrics["saturation_no_fan_in"].n, "both nets: gain 5/3, lr 0.1")


def worse(name: str, what: str) -> Above:
    return Above((f"{name}_no_fan_in", f"{name}_fan_in"), 0.0, label=f"{what} without fan-in")


NO_FAN_IN_SHOWS = (worse("saturation", "more saturated"),
                   worse("gradient_spread", "gradients more uneven across layers"),
                   worse("rate_spread", "update ratios more uneven across C, W1..W5"),
                   Above("fastest_no_fan_in", CEILING, label="a weight learns too fast"))

register(Claim(
    id="diag.no-fan-in",
    statement="Forgetting fan-in normalisation shows at once: saturated activations, messed-up "
              "gradients, layers learning at very different rates (-1 to -1.5)",
    source=Source("L", "345-346"),
    runs={"init": at_init(fan_in_norm=False), "init_control": at_init(),
          "ratios": with_update_ratios(fan_in_norm=False), "ratios_control": RATIOS},
    measure=measure_no_fan_in,
    rules=Rules(
        reproduced=(Near("fastest_no_fan_in", "too-fast layers at -1 to -1.5"), *NO_FAN_IN_SHOWS),
        partly=NO_FAN_IN_SHOWS,
        partly_means="all three diagnostics show the mistake and a weight learns too fast by "
                     "the lecture's own ranges, but at {fastest_no_fan_in}, not -1 to -1.5",
        instead="without fan-in vs with: saturation {saturation_no_fan_in} vs "
                "{saturation_fan_in}; gradient spread {gradient_spread_no_fan_in} vs "
                "{gradient_spread_fan_in}; update-ratio spread {rate_spread_no_fan_in} vs "
                "{rate_spread_fan_in}"),
    headline="fastest_no_fan_in",
    finding="Without fan-in: {saturation_no_fan_in:mean}% saturated (vs "
            "{saturation_fan_in:mean}%), update ratios {rate_spread_no_fan_in:mean} decades "
            "apart (vs {rate_spread_fan_in:mean}), the fastest at {fastest_no_fan_in:mean}.",
    figure=figure_no_fan_in,
))
