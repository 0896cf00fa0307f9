"""stack: deep tanh and linear sandwiches, the lecture's 5-hidden-layer network (L:10, L:273-307).

The network is the lecture's deep one without BatchNorm: Linear -> tanh five times (100 units),
then the output Linear (its weight x 0.1), the other Linear weights x gain. "At init" is its first
forward and backward pass (the lecture's loop breaks after one step, L:275), on a batch of 32;
"if we had more layers" (L:281) is the same network with 20 tanh layers. Beside the measurements
sits the mean-field recursion of ablations/experiments/theory.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ablations import figures
from ablations.checks import Above, Below, Exact, Monotone, Near, NeedsSteps, Negligible
from ablations.context import Context
from ablations.experiments import theory
from ablations.experiments.deep import (
    CONTROL_STEPS,
    DEEP_STACK_GAINS,
    STACK_GAINS,
    SWEEP_STEPS,
    after_diag,
    at_init,
    collapse_error,
    layer_stats,
    legend_outside,
    seed_metric,
    seed_ratio,
    seed_values,
    sweep,
)
from ablations.experiments.runs import Trained
from ablations.measurement import Measurement, Metric
from ablations.registry import Claim, Source, measures, register
from ablations.verdicts import Rules
from makemore.models import DeepConfig, count_parameters, deep, mlp
from makemore.modules import Streams

DEPTH, DEEPER = 5, 20
INIT_5 = at_init(vary={"gain": STACK_GAINS})
INIT_20 = at_init(depth=DEEPER, vary={"gain": DEEP_STACK_GAINS})
LAYERS = tuple(range(1, DEPTH + 1))


def gain_label(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(gain=frame.gain.map(lambda g: f"{g:.3g}"))


def percent(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(saturated=100 * frame.saturated)


def layer_figure(ax, stats: pd.DataFrame, column: str, gains: tuple[float, ...]) -> None:
    """A per-layer statistic with its CI over seeds, one line per gain (legend: outside)."""
    shown = stats[np.isin(stats.gain.round(6), np.round(gains, 6))]
    figures.lines(ax, gain_label(shown), x="layer", y=column, hue="gain")
    ax.set_xlabel("tanh layer (1 = next to the input)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))



# --- stack.tanh-5-3 -------------------------------------------------------------------------------


@measures(std_settled="", saturation_settled="%", first_minus_later="%",
          std_later_trained="", saturation_later_trained="%")
def measure_tanh_5_3(ctx: Context, runs: dict[str, Trained]) -> Measurement:
    """Gain 5/3: the deeper half of the 20-layer stack at init (where the layers have settled),
    the first layer's saturation over the next four's in the lecture's 5 layers, and those four
    after the lecture's 1,000 steps at lr 0.1 (context, not judged)."""
    deeper = percent(layer_stats(runs["deeper"]))
    lecture = percent(layer_stats(runs["init"]))
    trained = percent(layer_stats(runs["trained"]))
    settled = {"gain": 5 / 3, "layer": tuple(range(DEEPER // 2 + 1, DEEPER + 1))}
    later = {"gain": 5 / 3, "layer": LAYERS[1:]}
    metrics = {
        "std_settled": seed_metric(deeper, "std", **settled),
        "saturation_settled": seed_metric(deeper, "saturated", "%", **settled),
        "first_minus_later": Metric.of(
            seed_values(lecture, "saturated", gain=5 / 3, layer=1)
            - seed_values(lecture, "saturated", **later), "%"),
        "std_later_trained": seed_metric(trained, "std", layer=LAYERS[1:]),
        "saturation_later_trained": seed_metric(trained, "saturated", "%", layer=LAYERS[1:]),
    }
    table = pd.concat([deeper.assign(network="20 layers, init"),
                       lecture.assign(network="5 layers, init"),
                       trained.assign(network="5 layers, after 1,000 steps", gain=5 / 3)])
    return Measurement(table[np.isclose(table.gain, 5 / 3)], metrics)


def figure_tanh_5_3(m: Measurement, fig: Figure) -> None:
    left, right = fig.subplots(1, 2)
    star = theory.fixed_point(5 / 3)
    for ax, column, reference, what in ((left, "std", 0.65, "std"),
                                        (right, "saturated", 5.0, "saturated (%)")):
        figures.lines(ax, m.table, x="layer", y=column, hue="network")
        figures.reference(ax, reference, "lecture")
        ax.axhline(star.std if column == "std" else 100 * star.saturated, color="0.5",
                   linestyle=":", label="mean-field fixed point")
        ax.set(xlabel="tanh layer (1 = next to the input)", ylabel=what,
               title=f"gain 5/3: {what}")
    left.get_legend().remove()
    legend_outside(right)
    figures.caption(fig, m.metrics["std_settled"].n, "batch of 32, |t| > 0.97 is saturated")


register(Claim(
    id="stack.tanh-5-3",
    statement="With gain 5/3 the tanh layers settle at std about 0.65 and about 5% saturation "
              "(abs > 0.97); the first layer is more saturated",
    source=Source("L", "279-281, 288-290"),
    runs={"deeper": INIT_20, "init": INIT_5, "trained": after_diag()},
    measure=measure_tanh_5_3,
    rules=Rules(
        reproduced=(Near("std_settled", "tanh std about 0.65"),
                    Near("saturation_settled", "saturation roughly 5%"),
                    Above("first_minus_later", 0.0, label="the first layer is more saturated")),
        partly=(Near("std_settled", "tanh std about 0.65"),
                Above("first_minus_later", 0.0, label="the first layer is more saturated")),
        partly_means="the layers settle at std {std_settled} with the first layer more "
                     "saturated, but at {saturation_settled} saturation",
        instead="settled tanh layers at init: std {std_settled}, saturation {saturation_settled}; "
                "layer 1 minus layers 2-5: {first_minus_later}"),
    headline="std_settled",
    finding="At gain 5/3 deep tanh layers settle at std {std_settled:mean}, "
            "{saturation_settled:mean}% saturated; layer 1 is {first_minus_later:mean} points "
            "more saturated than layers 2-5.",
    figure=figure_tanh_5_3,
))


# --- stack.tanh-gain-1 ----------------------------------------------------------------------------

STD_GAIN_1 = tuple(f"std_layer_{n}" for n in LAYERS)


@measures(**dict.fromkeys(STD_GAIN_1, ""), saturation_last="%", std_20_over_5="std ratio")
def measure_tanh_gain_1(ctx: Context, runs: dict[str, Trained]) -> Measurement:
    """Gain 1 at init: the std of each of the lecture's 5 tanh layers, the last one's
    saturation, and in the 20-layer stack the std of layer 20 over layer 5."""
    stats = percent(layer_stats(runs["init"]))
    deeper = layer_stats(runs["deeper"])
    metrics = {name: seed_metric(stats, "std", gain=1.0, layer=n)
               for name, n in zip(STD_GAIN_1, LAYERS, strict=True)}
    metrics["saturation_last"] = seed_metric(stats, "saturated", "%", gain=1.0, layer=DEPTH)
    metrics["std_20_over_5"] = seed_ratio(deeper, "std", {"gain": 1.0, "layer": DEEPER},
                                          {"gain": 1.0, "layer": DEPTH}, "std ratio")
    return Measurement(stats, metrics)


def figure_tanh_gain_1(m: Measurement, fig: Figure) -> None:
    left, right = fig.subplots(1, 2)
    for ax, column, what in ((left, "std", "std of the tanh output"),
                             (right, "saturated", "saturated (%)")):
        layer_figure(ax, m.table, column, (1.0, 1.25, 5 / 3))
        ax.set(ylabel=what, title=f"at init: {what.split(' (')[0].split(' of')[0]}")
    figures.reference(right, 0.0, "lecture, gain 1")
    left.get_legend().remove()
    legend_outside(right, "gain")
    figures.caption(fig, m.metrics["saturation_last"].n)


register(Claim(
    id="stack.tanh-gain-1",
    statement="With gain 1 the std and the saturation shrink toward zero with depth",
    source=Source("L", "284-285, 293"),
    runs={"init": INIT_5, "deeper": INIT_20},
    measure=measure_tanh_gain_1,
    rules=Rules(
        reproduced=(Monotone(STD_GAIN_1, increasing=False),
                    Near("saturation_last", "saturation comes to zero"),
                    Below("std_20_over_5", 1.0, label="still shrinking from layer 5 to 20")),
        instead="gain 1: std layer 1 {std_layer_1}, layer 5 {std_layer_5}; layer 20 / layer 5 "
                "{std_20_over_5}; saturation of layer 5 {saturation_last}"),
    headline="saturation_last",
    finding="With gain 1 the tanh std falls from {std_layer_1:mean} (layer 1) to "
            "{std_layer_5:mean} (layer 5), x{std_20_over_5:mean} more by layer 20; layer 5 is "
            "{saturation_last:mean}% saturated.",
    figure=figure_tanh_gain_1,
))


# --- stack.tanh-gain-3 ----------------------------------------------------------------------------

HIGH = {"saturation_5_3": 5 / 3, "saturation_2": 2.0, "saturation_2_5": 2.5, "saturation_3": 3.0}


@measures(**dict.fromkeys(HIGH, "%"))
def measure_tanh_gain_3(ctx: Context, runs: dict[str, Trained]) -> Measurement:
    """Saturation of tanh layers 2-5 at init (layer 1 sees the embedding, not a tanh) from gain
    5/3 (the lecture's good setting, the control) up to 3."""
    stats = percent(layer_stats(runs["init"]))
    metrics = {name: seed_metric(stats, "saturated", "%", gain=gain, layer=LAYERS[1:])
               for name, gain in HIGH.items()}
    return Measurement(stats, metrics)


def figure_tanh_gain_3(m: Measurement, fig: Figure) -> None:
    ax = fig.add_subplot()
    layer_figure(ax, m.table, "saturated", tuple(HIGH.values()))
    figures.reference(ax, 5.0, "lecture's good level (5/3)")
    legend_outside(ax, "gain")
    ax.set(ylabel="saturated (%), |t| > 0.97", title="5 tanh layers at init: saturation")
    figures.caption(fig, m.metrics["saturation_3"].n)


register(Claim(
    id="stack.tanh-gain-3",
    statement="Gain 2 or 3 over-saturates the layers",
    source=Source("L", "287, 294"),
    runs={"init": INIT_5},
    measure=measure_tanh_gain_3,
    rules=Rules(reproduced=(Monotone(tuple(HIGH)),),
                instead="saturation of layers 2-5: 5/3 {saturation_5_3}, 2 {saturation_2}, 3 "
                        "{saturation_3}"),
    headline="saturation_3",
    finding="Tanh layers 2-5 at init: {saturation_5_3:mean}% saturated at gain 5/3, "
            "{saturation_2:mean}% at 2, {saturation_3:mean}% at 3.",
    figure=figure_tanh_gain_3,
))


# --- stack.gradients ------------------------------------------------------------------------------


@measures(gradient_tilt_5_3="bits", gradient_tilt_1="bits", gradient_tilt_3="bits",
          gradient_tilt_5_3_deeper="bits")
def measure_gradients(ctx: Context, runs: dict[str, Trained]) -> Measurement:
    """At init, log2 of the tanh outputs' gradient std at layer 1 over the last layer: 0 when
    the layers have the same gradient; in the lecture's 5 layers for gains 1, 5/3, 3, and in
    the 20-layer stack at 5/3. Mean field: each layer multiplies the gradient variance by
    gain^2 E[tanh'^2], 1.21 at the 5/3 fixed point."""
    stats, deeper = layer_stats(runs["init"]), layer_stats(runs["deeper"])

    def tilt(frame: pd.DataFrame, gain: float, last: int) -> Metric:
        ratio = seed_ratio(frame, "grad_std", {"gain": gain, "layer": 1},
                           {"gain": gain, "layer": last})
        return Metric.of(np.log2(ratio.samples), "bits")

    metrics = {"gradient_tilt_5_3": tilt(stats, 5 / 3, DEPTH),
               "gradient_tilt_1": tilt(stats, 1.0, DEPTH),
               "gradient_tilt_3": tilt(stats, 3.0, DEPTH),
               "gradient_tilt_5_3_deeper": tilt(deeper, 5 / 3, DEEPER)}
    table = pd.concat([stats.assign(depth=DEPTH), deeper.assign(depth=DEEPER)])
    return Measurement(table, metrics)


def figure_gradients(m: Measurement, fig: Figure) -> None:
    left, right = fig.subplots(1, 2)
    for ax, depth, gains in ((left, DEPTH, (1.0, 5 / 3, 3.0)), (right, DEEPER, (1.0, 5 / 3))):
        layer_figure(ax, m.table[m.table.depth == depth], "grad_std", gains)
        ax.set(yscale="log", ylabel="std of the tanh output's gradient",
               title=f"{depth} tanh layers at init")
        legend_outside(ax, "gain")
    figures.caption(fig, m.metrics["gradient_tilt_5_3"].n)


EQUAL = "gradients about equal across layers"

register(Claim(
    id="stack.gradients",
    statement="At 5/3 the activation gradients are about equal across layers; other gains make "
              "them expand or shrink with depth",
    source=Source("L", "291-294"),
    runs={"init": INIT_5, "deeper": INIT_20},
    measure=measure_gradients,
    rules=Rules(
        reproduced=(Negligible("gradient_tilt_5_3", EQUAL),
                    Negligible("gradient_tilt_1", EQUAL, negate=True),
                    Negligible("gradient_tilt_3", EQUAL, negate=True),
                    Negligible("gradient_tilt_5_3_deeper", EQUAL)),
        partly=(Negligible("gradient_tilt_5_3", EQUAL),
                Negligible("gradient_tilt_1", EQUAL, negate=True),
                Negligible("gradient_tilt_3", EQUAL, negate=True)),
        partly_means="about equal over the lecture's 5 layers, not over 20: at 5/3 layer 1's "
                     "gradient std is {gradient_tilt_5_3_deeper} above layer 20's (log2)",
        instead="log2 gradient std, layer 1 over the last: 5/3 {gradient_tilt_5_3}, 1 "
                "{gradient_tilt_1}, 3 {gradient_tilt_3}; 20 layers at 5/3 "
                "{gradient_tilt_5_3_deeper}"),
    headline="gradient_tilt_5_3",
    finding="Layer 1's gradient std over layer 5's, log2: {gradient_tilt_5_3:mean} at 5/3, "
            "{gradient_tilt_1:mean} at 1, {gradient_tilt_3:mean} at 3; over 20 layers at 5/3 "
            "{gradient_tilt_5_3_deeper:mean}.",
    figure=figure_gradients,
))


# --- stack.linear-gain ----------------------------------------------------------------------------

LINEAR_GAINS = (0.5, 1.0, 5 / 3, 3.0)
ACTIVATION_5_3 = tuple(f"std_layer_{n}" for n in LAYERS)
GRADIENT_5_3 = tuple(f"grad_layer_{n}" for n in LAYERS)


@measures(preserving_gain="", **dict.fromkeys(ACTIVATION_5_3 + GRADIENT_5_3, ""))
def measure_linear_gain(ctx: Context, runs: dict[str, Trained]) -> Measurement:
    """The lecture's network with its tanh layers removed, at init: per layer the std of the
    activations and of their gradients. The std-preserving gain is read off the gain-1 stack:
    (std of layer 5 / layer 1)^(-1/4) per seed."""
    stats = layer_stats(runs["init"])
    drift = seed_ratio(stats, "std", {"gain": 1.0, "layer": DEPTH}, {"gain": 1.0, "layer": 1})
    metrics = {"preserving_gain": Metric.of(np.asarray(drift.samples) ** (-1 / (DEPTH - 1)))}
    for n in LAYERS:
        metrics[f"std_layer_{n}"] = seed_metric(stats, "std", gain=5 / 3, layer=n)
        metrics[f"grad_layer_{n}"] = seed_metric(stats, "grad_std", gain=5 / 3, layer=n)
    return Measurement(stats, metrics)


def figure_linear_gain(m: Measurement, fig: Figure) -> None:
    left, right = fig.subplots(1, 2)
    for ax, column, what in ((left, "std", "activations"), (right, "grad_std", "gradients")):
        layer_figure(ax, m.table, column, LINEAR_GAINS)
        ax.set(yscale="log", title=f"linear stack: {what}", ylabel=f"std of the {what}",
               xlabel="linear layer (1 = next to the input)")
    left.get_legend().remove()
    legend_outside(right, "gain")
    figures.caption(fig, m.metrics["preserving_gain"].n, "at init")


register(Claim(
    id="stack.linear-gain",
    statement="Without tanh the std-preserving gain is 1; at 5/3 the activations grow with depth "
              "and the activation gradients \"diminish as you go down deeper in the layers\" "
              "(layer 1 is nearest the input; deeper is further from it)",
    source=Source("L", "296-301"),
    runs={"init": at_init(nonlinearity="linear", vary={"gain": LINEAR_GAINS})},
    measure=measure_linear_gain,
    rules=Rules(
        reproduced=(Near("preserving_gain", "linear stack gain 1"),
                    Monotone(ACTIVATION_5_3, increasing=True),
                    Monotone(GRADIENT_5_3, increasing=False)),
        instead="std-preserving gain {preserving_gain}; at 5/3 activations {std_layer_1} -> "
                "{std_layer_5}, gradients {grad_layer_1} -> {grad_layer_5}"),
    headline="preserving_gain",
    finding="Without tanh the std-preserving gain is {preserving_gain:mean}; at 5/3 activations "
            "grow from {std_layer_1:mean} to {std_layer_5:mean} and gradients fall from "
            "{grad_layer_1:mean} to {grad_layer_5:mean}.",
    figure=figure_linear_gain,
))


# --- stack.linear-collapse ------------------------------------------------------------------------

COLLAPSE = {"dev_examples": 4096}
COLLAPSE_RUNS = {"stack": sweep(DEPTH, "linear"), "shallow": sweep(1, "linear"),
                 "stack_x2": sweep(DEPTH, "linear", steps=CONTROL_STEPS),
                 "shallow_x2": sweep(1, "linear", steps=CONTROL_STEPS)}
WORTH = "a loss gain worth the name"


@measures(collapse_error="rounding bounds", loss_gap="nats", loss_gap_x2="nats")
def measure_linear_collapse(ctx: Context, runs: dict[str, Trained],
                            dev_examples: int) -> Measurement:
    """The lecture's network without tanh (5 hidden linear layers, gain 1) and the shallowest
    linear one the runs build (1 hidden layer: two maps, the same functions: any 30 x 27 map),
    trained alike, same seeds; after training, the 5-layer stack's map against the one map
    collapsed from its weights, on dev contexts; the final val loss gap, at the stated length
    and twice it."""
    stack = runs["stack"].model
    embedded = stack.layers[1](stack.layers[0](
        ctx.splits().dev[0][:dev_examples].unsqueeze(0).expand(len(ctx.seeds), -1, -1)))
    gap = {k: runs[f"stack{k}"].val_loss - runs[f"shallow{k}"].val_loss for k in ("", "_x2")}
    table = pd.concat([runs[k].losses_frame().assign(network=f"{DEPTH if 'stack' in k else 1} "
                                                     "hidden linear layers",
                                                     steps=runs[k].steps)
                       for k in COLLAPSE_RUNS], ignore_index=True)
    metrics = {"collapse_error": Metric.of(collapse_error(stack, embedded), "rounding bounds"),
               "loss_gap": Metric.of(gap[""], "nats"), "loss_gap_x2": Metric.of(gap["_x2"], "nats")}
    return Measurement(table, metrics, steps=min(r.steps for r in runs.values()))


def figure_linear_collapse(m: Measurement, fig: Figure) -> None:
    ax = fig.add_subplot()
    t = m.table.assign(length=m.table.steps.map(lambda s: f"{s:,} steps"))
    figures.points(ax, t, x="length", y="val_loss", hue="network")
    ax.set(title="Linear stacks: one linear map each, trained alike", xlabel="training length",
           ylabel="final val loss (nats)")
    figures.legend(ax, loc="upper right")
    figures.caption(fig, m.metrics["loss_gap"].n)


register(Claim(
    id="stack.linear-collapse",
    statement="A stack of linear layers computes one linear map, yet trains differently from one "
              "layer",
    source=Source("L", "304-307"),
    runs=COLLAPSE_RUNS, measure=measure_linear_collapse, grid=COLLAPSE,
    rules=Rules(
        reproduced=(NeedsSteps(SWEEP_STEPS), Exact("collapse_error", "collapse within rounding"),
                    Negligible("loss_gap", WORTH, negate=True),
                    Negligible("loss_gap_x2", WORTH, negate=True)),
        partly=(NeedsSteps(SWEEP_STEPS), Exact("collapse_error", "collapse within rounding")),
        partly_means="the stack is one linear map, but it trains to the same loss as the "
                     "shallow one ({loss_gap} nats apart)",
        instead="the stack's map is {collapse_error} rounding bounds from its collapsed product; "
                "val loss gap {loss_gap}"),
    headline="loss_gap",
    finding="The trained 5-layer linear stack equals its collapsed map to {collapse_error:mean} "
            "rounding bounds, yet ends {loss_gap:mean} nats from the 1-hidden-layer one "
            "({loss_gap_x2:mean} at 2x length).",
    figure=figure_linear_collapse,
))


# --- stack.param-count ----------------------------------------------------------------------------

NETWORKS = {"count_deep": "about 46,000 parameters", "count_mlp": "about 11,000 parameters",
            "count_mlp_bn": "the notebook's 12,097 parameters",
            "count_deep_bn": "the notebook's 47,024 parameters"}


def build_for_count(name: str) -> object:
    streams = Streams([0])
    return {"count_deep": lambda: deep(streams, DeepConfig()),
            "count_deep_bn": lambda: deep(streams, batchnorm="before", batchnorm_last=True),
            "count_mlp": lambda: mlp(streams, "kaiming"),
            "count_mlp_bn": lambda: mlp(streams, "batchnorm")}[name]()


@measures(**dict.fromkeys(NETWORKS, "parameters"))
def measure_param_count(ctx: Context) -> Measurement:
    """count_parameters of the lecture's four networks (one member)."""
    counts = {name: count_parameters(build_for_count(name)) for name in NETWORKS}
    table = pd.DataFrame({"network": list(counts), "count": list(counts.values())})
    return Measurement(table, {k: Metric.exact(v, "parameters") for k, v in counts.items()})


def figure_param_count(m: Measurement, fig: Figure) -> None:
    ax = fig.add_subplot()
    t = m.table.assign(source=[float(Near(n, NETWORKS[n]).source().value) for n in m.table.network])
    x = np.arange(len(t))
    colours = figures.palette(2)
    ax.bar(x - 0.2, t["count"], width=0.4, color=colours[0], label="counted")
    ax.bar(x + 0.2, t.source, width=0.4, color=colours[1], label="lecture / notebook")
    ax.set_xticks(x, [f"{n.removeprefix('count_')}\n{c:,}" for n, c in zip(t.network, t["count"],
                                                                               strict=True)])
    ax.set(title="Parameter counts", xlabel="network (counted)", ylabel="parameters",
           ylim=(0, 60_000))
    figures.legend(ax, loc="upper center", ncols=2)
    figures.caption(fig, 1, "counts are exact, no seeds")


register(Claim(
    id="stack.param-count",
    statement="The deep network has about 46,000 parameters; the MLP about 11,000 (12,097 with "
              "BatchNorm)",
    source=Source("L", "10, 273"),
    measure=measure_param_count,
    rules=Rules(reproduced=tuple(Near(n, r) for n, r in NETWORKS.items()),
                instead="counted: deep {count_deep}, deep with BN {count_deep_bn}, MLP "
                        "{count_mlp}, MLP with BN {count_mlp_bn}"),
    headline="count_deep",
    finding="The deep network has {count_deep:mean} parameters ({count_deep_bn:mean} with "
            "BatchNorm); the MLP {count_mlp:mean} ({count_mlp_bn:mean} with BatchNorm).",
    figure=figure_param_count,
))
