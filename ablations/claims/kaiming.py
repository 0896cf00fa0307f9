"""kaiming: variance propagation and principled initialisation at init (L:90-108, L:210-212,
L:289). Closed forms and the mean-field recursion (experiments/theory.py) predict random stacks;
the checks compare every draw with its sampling spread, or seed means within k standard errors.
The family's claims about trained networks are in kaiming_trained.py."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from ablations import figures
from ablations.checks import Below, Exact, Near, Predicted
from ablations.context import Context
from ablations.experiments import theory
from ablations.experiments.deep import (
    DEEP_STACK_GAINS,
    at_init,
    default_stack,
    gaussian_stack,
    kaiming_normal_draws,
    layer_stats,
    legend_outside,
    linear_default_draws,
    log2_slope,
    matmul_draws,
    mode_stack,
    seed_metric,
    seed_ratio,
    worst_abs,
)
from ablations.experiments.runs import Trained
from ablations.measurement import Measurement, Metric
from ablations.registry import Claim, Source, measures, register
from ablations.verdicts import Rules

K = 4.0  # standard errors a prediction may be off: a false alarm under 1% per check (t, 15 df)
WHY_K = "4 standard errors over seeds: under 1% false alarms per check at 16 seeds"


def predicted(*names: str, floor: str = "") -> tuple[Predicted, ...]:
    return tuple(Predicted(n, k=K, floor=floor, why=WHY_K) for n in names)


# --- kaiming.fan-in -------------------------------------------------------------------------------

FAN_IN = {"batch": 1000, "fan_out": 200, "fan_ins": (10, 30, 100, 1000), "scales": (1.0, 5.0, 0.2)}


@measures(std_w="", std_w5="", std_w02="", std_unit="", worst_z="sd")
def measure_fan_in(ctx: Context, batch: int, fan_out: int, fan_ins: tuple[int, ...],
                   scales: tuple[float, ...]) -> Measurement:
    """std(x @ W * scale), one fresh draw per scale as in the lecture's cell, and W /
    sqrt(fan_in); theory: sqrt(fan_in) x scale (a sum of fan_in independent unit products).
    The law is judged on every draw, by the seed's worst z (in sampling sd)."""
    table = matmul_draws(ctx.seeds, batch, fan_out, fan_ins, scales)
    metrics = {name: seed_metric(table, "std", fan_in=fan_ins[0], scale=label)
               for label, name in (("1", "std_w"), ("5", "std_w5"), ("0.2", "std_w02"),
                                   ("1/sqrt(fan_in)", "std_unit"))}
    return Measurement(table, {**metrics, "worst_z": worst_abs(table, "z")})


def figure_fan_in(m: Measurement, fig: Figure) -> None:
    ax = fig.add_subplot()
    figures.lines(ax, m.table, x="fan_in", y="std", hue="scale")
    for _, rows in m.table.groupby("scale"):
        line = rows.groupby("fan_in").predicted.first()
        ax.plot(line.index, line.values, color="0.5", linestyle=":", linewidth=1)
    ax.scatter([10] * 4, [3, 15, 0.6, 1], marker="x", color="0.1", zorder=4, s=45,
               label="lecture, one draw (3, 15, 0.6, 1)")
    ax.set(xscale="log", yscale="log", title="std of x @ W (dotted: sqrt(fan_in) x scale)",
           xlabel="fan_in", ylabel="std of the output")
    figures.legend(ax, loc="upper left", title="W scale", title_fontsize=7)
    figures.caption(fig, m.metrics["std_w"].n)


LAW = Exact("worst_z", "a draw's std within its sampling spread",
            label="every draw's std is sqrt(fan_in) x scale")

register(Claim(
    id="kaiming.fan-in",
    statement="x (1000x10, N(0,1)) @ W (10x200, N(0,1)) has std about 3; W*5 gives 15, W*0.2 "
              "gives 0.6; W/sqrt(fan_in) gives 1",
    source=Source("L", "90-97"),
    measure=measure_fan_in, grid=FAN_IN,
    rules=Rules(
        reproduced=(Near("std_w", "x @ W std 3"), Near("std_w5", "x @ W*5 std 15"),
                    Near("std_w02", "x @ W*0.2 std 0.6"),
                    Near("std_unit", "x @ W/sqrt(fan_in) std 1"), LAW),
        partly=(LAW,),
        partly_means="std(x @ W) is sqrt(fan_in) x scale and W / sqrt(fan_in) gives 1 at every "
                     "fan-in, but a lecture number is not what one draw gives",
        instead="std(x @ W) at fan-in 10: {std_w}; x5 {std_w5}; x0.2 {std_w02}; W / sqrt(fan_in) "
                "{std_unit}"),
    headline="std_w",
    finding="std(x @ W) is {std_w:mean} at fan-in 10; x5 gives {std_w5:mean}, x0.2 "
            "{std_w02:mean}, W / sqrt(fan_in) {std_unit:mean}; a seed's worst draw is "
            "{worst_z:mean} sd off sqrt(fan_in) x scale.",
    figure=figure_fan_in,
))


# --- kaiming.relu-gain ----------------------------------------------------------------------------

RELU = {"width": 256, "depth": 20, "batch": 256}
RELU_ARMS = {"slope_relu_sqrt2": ("relu", math.sqrt(2)), "slope_relu_1": ("relu", 1.0),
             "slope_linear_1": ("linear", 1.0), "slope_linear_sqrt2": ("linear", math.sqrt(2))}


@measures(**dict.fromkeys(RELU_ARMS, "bits/layer"))
def measure_relu_gain(ctx: Context, width: int, depth: int, batch: int) -> Measurement:
    """Stacks of `depth` Linear -> phi (the first layer 1/sqrt(fan_in) on the Gaussian input,
    then gain/sqrt(fan_in)): the slope of log2(variance) over the layers. Mean field:
    log2(gain^2 E[phi(z)^2] / E[z^2]) = log2(gain^2 / 2) for ReLU, log2(gain^2) without it
    (the control); the log of a finite layer's ratio drifts below it (the check's floor)."""
    frames, metrics, predictions = [], {}, {}
    scale = 1 / math.sqrt(width)
    for name, (phi, gain) in RELU_ARMS.items():
        rows = gaussian_stack(ctx.seeds, [width] * (depth + 1),
                              [scale] + [gain * scale] * (depth - 1), phi, batch)
        frames.append(rows.assign(nonlinearity=phi, gain="sqrt 2" if gain > 1 else "1"))
        metrics[name] = Metric.of(log2_slope(rows, "pre_std"), "bits/layer")
        keep = 0.5 if phi == "relu" else 1.0
        predictions[name] = math.log2(gain**2 * keep)
    return Measurement(pd.concat(frames, ignore_index=True), metrics, predictions)


def figure_relu_gain(m: Measurement, fig: Figure) -> None:
    ax = fig.add_subplot()
    figures.lines(ax, m.table, x="layer", y="pre_std", hue="nonlinearity", style="gain",
                  markers=False)
    figures.reference(ax, 1.0, "unit std (kept)")
    ax.set(yscale="log", title="std per layer: ReLU needs gain sqrt 2, a linear stack gain 1",
           xlabel="layer (1 = next to the input)", ylabel="pre-activation std")
    legend_outside(ax)
    figures.caption(fig, m.metrics["slope_relu_sqrt2"].n)


register(Claim(
    id="kaiming.relu-gain",
    statement="ReLU throws away half the distribution, so it needs std sqrt(2/fan_in)",
    source=Source("L", "100-103"),
    measure=measure_relu_gain, grid=RELU,
    rules=Rules(reproduced=predicted(*RELU_ARMS, floor="finite-width drift of log2 variance"),
                instead="log2 variance per layer: ReLU gain sqrt 2 {slope_relu_sqrt2}, gain 1 "
                        "{slope_relu_1}; linear gain 1 {slope_linear_1}"),
    headline="slope_relu_sqrt2",
    finding="ReLU with gain sqrt 2 keeps the variance ({slope_relu_sqrt2:mean} bits/layer); "
            "gain 1 halves it ({slope_relu_1:mean}); without ReLU gain 1 keeps it "
            "({slope_linear_1:mean}).",
    figure=figure_relu_gain,
))


# --- kaiming.mode ---------------------------------------------------------------------------------

MODE = {"batch": 128, "input_width": 256, "widths": (512, 128), "depths": (4, 16),
        "fan_out_seed_offset": 10_000}


@measures(forward_gap_4="bits", forward_gap_16="bits", gradient_gap_4="bits",
          gradient_gap_16="bits")
def measure_mode(ctx: Context, batch: int, input_width: int, widths: tuple[int, int],
                 depths: tuple[int, ...], fan_out_seed_offset: int) -> Measurement:
    """ReLU stacks alternating between two widths, gain sqrt 2 over fan_in or over fan_out
    (independent draws). The forward std of the last layer (fan_out over fan_in) and the
    gradient std of the first (fan_in over fan_out), in bits. Mean field: the mismatch is the
    width ratio of the ends, 0.5 log2(n_0 / n_L) forward and 0.5 log2(n_L / n_1) backward,
    whatever the depth (each layer's factor telescopes)."""
    frames, metrics, predictions = [], {}, {}
    for depth in depths:
        sizes = [input_width] + [widths[i % 2] for i in range(depth)]
        nets = {mode: mode_stack([s + offset for s in ctx.seeds], sizes, mode, batch).assign(
            depth=depth, seed=lambda f, offset=offset: f.seed - offset)
            for mode, offset in (("fan_in", 0), ("fan_out", fan_out_seed_offset))}
        frames += nets.values()
        ends = {mode: (net[net.layer == depth].set_index("seed").pre_std,
                       net[net.layer == 1].set_index("seed").grad_std)
                for mode, net in nets.items()}
        metrics[f"forward_gap_{depth}"] = Metric.of(
            np.log2(ends["fan_out"][0] / ends["fan_in"][0]), "bits")
        metrics[f"gradient_gap_{depth}"] = Metric.of(
            np.log2(ends["fan_in"][1] / ends["fan_out"][1]), "bits")
        predictions[f"forward_gap_{depth}"] = 0.5 * math.log2(sizes[0] / sizes[-1])
        predictions[f"gradient_gap_{depth}"] = 0.5 * math.log2(sizes[-1] / sizes[1])
    return Measurement(pd.concat(frames, ignore_index=True), metrics, predictions)


def figure_mode(m: Measurement, fig: Figure) -> None:
    left, right = fig.subplots(1, 2)
    deep = m.table[m.table.depth == m.table.depth.max()]
    for ax, column, what in ((left, "pre_std", "forward"), (right, "grad_std", "gradient")):
        figures.lines(ax, deep, x="layer", y=column, hue="mode")
        ax.set(yscale="log", title=f"{what} std, {deep.depth.max()} ReLU layers",
               xlabel="layer (widths alternate 512 / 128)", ylabel=f"{what} std")
    figures.legend(left, loc="lower left")
    right.get_legend().remove()
    figures.caption(fig, m.metrics["forward_gap_16"].n)


register(Claim(
    id="kaiming.mode",
    statement="Normalising the forward (fan_in) or the backward (fan_out) pass \"doesn't matter "
              "too much\"",
    source=Source("L", "104-105"),
    measure=measure_mode, grid=MODE,
    rules=Rules(reproduced=predicted("forward_gap_4", "forward_gap_16", "gradient_gap_4",
                                     "gradient_gap_16"),
                instead="the off pass's mismatch: forward {forward_gap_4} (4 layers) vs "
                        "{forward_gap_16} (16); backward {gradient_gap_4} vs {gradient_gap_16}"),
    headline="gradient_gap_16",
    finding="The mode only moves the other pass by the end widths' ratio, at any depth: backward "
            "{gradient_gap_4:mean} bits at 4 layers, {gradient_gap_16:mean} at 16 (theory -1).",
    figure=figure_mode,
))


# --- kaiming.gains --------------------------------------------------------------------------------

GAINS = {"fan_ins": (10, 30, 100, 1000), "elements": 400_000}


@measures(gain_linear="", gain_tanh="", gain_relu="", std_gain_tanh="", worst_z="sd")
def measure_gains(ctx: Context, fan_ins: tuple[int, ...], elements: int) -> Measurement:
    """torch.nn.init.calculate_gain, and kaiming_normal_'s std x sqrt(fan_in) per nonlinearity
    and fan-in, judged on every draw by the seed's worst z (in sampling sd)."""
    table = kaiming_normal_draws(ctx.seeds, fan_ins, elements)
    metrics = {f"gain_{n}": Metric.exact(torch.nn.init.calculate_gain(n))
               for n in ("linear", "tanh", "relu")}
    metrics["std_gain_tanh"] = seed_metric(table, "std_x_sqrt_fan_in", nonlinearity="tanh",
                                           fan_in=fan_ins[1])
    return Measurement(table, {**metrics, "worst_z": worst_abs(table, "z")})


def figure_gains(m: Measurement, fig: Figure) -> None:
    ax = fig.add_subplot()
    figures.points(ax, m.table.assign(fan_in=m.table.fan_in.astype(str)), x="nonlinearity",
                   y="std_x_sqrt_fan_in", hue="fan_in")
    for value, label in ((1.0, "lecture: linear 1"), (5 / 3, "lecture: tanh 5/3"),
                         (math.sqrt(2), "lecture: ReLU sqrt 2")):
        figures.reference(ax, value, label)
    ax.set(title="kaiming_normal_: std x sqrt(fan_in) is the gain ('default' = leaky_relu, a=0)",
           xlabel="nonlinearity argument", ylabel="std x sqrt(fan_in)")
    legend_outside(ax, "fan_in")
    figures.caption(fig, m.metrics["std_gain_tanh"].n)


register(Claim(
    id="kaiming.gains",
    statement="PyTorch's gains: linear 1, ReLU sqrt 2, tanh 5/3; kaiming_normal_ has std "
              "gain/sqrt(fan_in)",
    source=Source("L", "105-107, 115"),
    measure=measure_gains, grid=GAINS,
    rules=Rules(
        reproduced=(Near("gain_linear", "torch gain linear 1"),
                    Near("gain_relu", "torch gain relu sqrt 2"),
                    Near("gain_tanh", "torch gain tanh 5/3"),
                    Exact("worst_z", "a draw's std within its sampling spread",
                          label="kaiming_normal_ draws std gain / sqrt(fan_in)")),
        instead="calculate_gain: linear {gain_linear}, tanh {gain_tanh}, ReLU {gain_relu}; "
                "kaiming_normal_'s worst draw {worst_z} sd off gain / sqrt(fan_in)"),
    headline="gain_tanh",
    finding="calculate_gain: linear {gain_linear:mean}, ReLU {gain_relu:mean}, tanh "
            "{gain_tanh:mean}; kaiming_normal_ for tanh draws std x sqrt(fan_in) = "
            "{std_gain_tanh:mean}; no nonlinearity means ReLU's gain.",
    figure=figure_gains,
))


# --- kaiming.tanh-gain ----------------------------------------------------------------------------

TANH_GAIN = {"depth": 20}


@measures(drift_gain_1="std ratio", drift_5_3="std ratio", std_deep_5_3="",
          unit_variance_gain="")
def measure_tanh_gain(ctx: Context, runs: dict[str, Trained], depth: int) -> Measurement:
    """The lecture's deep network with `depth` tanh layers at init over gains: the std of the
    last layer over the middle one (drift), the std of the deeper half at 5/3, beside the
    mean-field recursion from the embedding's unit second moment (q1 = gain^2)."""
    stats = layer_stats(runs["stack"])
    half, deeper = depth // 2, tuple(range(depth // 2 + 1, depth + 1))
    metrics = {
        "drift_gain_1": seed_ratio(stats, "std", {"gain": 1.0, "layer": depth},
                                   {"gain": 1.0, "layer": half}, "std ratio"),
        "drift_5_3": seed_ratio(stats, "std", {"gain": 5 / 3, "layer": depth},
                                {"gain": 5 / 3, "layer": half}, "std ratio"),
        "std_deep_5_3": seed_metric(stats, "std", gain=5 / 3, layer=deeper),
        "unit_variance_gain": Metric.exact(theory.unit_variance_gain()),
    }
    one, tanh = (theory.variance_recursion(g, depth, g**2).std for g in (1.0, 5 / 3))
    predictions = {"drift_gain_1": one[-1] / one[half - 1], "drift_5_3": tanh[-1] / tanh[half - 1],
                   "std_deep_5_3": float(tanh[half:].mean())}
    curves = pd.concat([theory.variance_recursion(g, depth, g**2).frame()
                        for g in DEEP_STACK_GAINS])
    return Measurement(stats, metrics, predictions, frames={"theory": curves})


def figure_tanh_gain(m: Measurement, fig: Figure) -> None:
    ax = fig.add_subplot()
    figures.lines(ax, m.table.assign(gain=m.table.gain.map(lambda g: f"{g:.3g}")), x="layer",
                  y="std", hue="gain")
    for _, curve in m.frames["theory"].groupby("gain"):
        ax.plot(curve.layer, curve["std"], color="0.4", linestyle=":", linewidth=1)
    figures.reference(ax, theory.fixed_point(5 / 3).std, "mean-field fixed point at 5/3")
    ax.set(title="tanh contracts: the std shrinks without a gain (dotted: mean field)",
           xlabel="tanh layer (1 = next to the input)", ylabel="std of the tanh output")
    legend_outside(ax, "gain")
    figures.caption(fig, m.metrics["drift_gain_1"].n, "at init, batch of 32")


register(Claim(
    id="kaiming.tanh-gain",
    statement="tanh is contractive, so a gain is needed; 5/3 is good, and nobody knows where 5/3 "
              "comes from",
    source=Source("L", "108, 289"),
    runs={"stack": at_init(depth=20, vary={"gain": DEEP_STACK_GAINS})},
    measure=measure_tanh_gain, grid=TANH_GAIN,
    rules=Rules(
        reproduced=(Below("drift_gain_1", 1.0, why="contractive: the std keeps shrinking"),
                    *predicted("drift_gain_1", "drift_5_3", "std_deep_5_3",
                               floor="mean field at width 100")),
        partly=(Below("drift_gain_1", 1.0, why="contractive: the std keeps shrinking"),),
        partly_means="tanh contracts without a gain, but the layers do not follow the "
                     "mean-field fixed point that explains 5/3",
        instead="from layer 10 to 20 the std changes {drift_gain_1} at gain 1"),
    headline="drift_gain_1",
    finding="Without a gain the tanh std shrinks ({drift_gain_1:mean}x from layer 10 to 20); at "
            "5/3 it holds at {std_deep_5_3:mean}. 5/3 rounds 1/std(tanh(z)) = "
            "{unit_variance_gain:mean}.",
    figure=figure_tanh_gain,
))


# --- kaiming.linear-default -----------------------------------------------------------------------

LINEAR_DEFAULT = {"fan_ins": (10, 30, 100, 1000), "elements": 200_000, "stack": (256, 12, 512)}


@measures(gain_default="", bound_default="", worst_z_uniform="sd")
def measure_linear_default(ctx: Context, fan_ins: tuple[int, ...], elements: int,
                           stack: tuple[int, int, int]) -> Measurement:
    """torch.nn.Linear's default weights: std x sqrt(fan_in) (the gain) and max |w| x
    sqrt(fan_in) (the bound) at fan-in 30, the uniform law judged on every draw; and a stack
    of default layers (width, depth, batch) fed N(0, 1) against the lecture's init."""
    table = linear_default_draws(ctx.seeds, fan_ins, elements)
    metrics = {"gain_default": seed_metric(table, "std x sqrt(fan_in)", fan_in=30),
               "bound_default": seed_metric(table, "max |w| x sqrt(fan_in)", fan_in=30),
               "worst_z_uniform": worst_abs(table, "z")}
    return Measurement(table, metrics, frames={"stack": default_stack(ctx.seeds, *stack)})


def figure_linear_default(m: Measurement, fig: Figure) -> None:
    left, right = fig.subplots(1, 2)
    long = m.table.drop(columns="z").melt(id_vars=["fan_in", "seed"], var_name="statistic",
                                          value_name="value")
    figures.points(left, long.assign(fan_in=long.fan_in.astype(str)), x="fan_in", y="value",
                   hue="statistic")
    figures.reference(left, 1.0, "lecture: gain 1")
    left.axhline(1 / math.sqrt(3), color="0.5", linestyle=":", label="1/sqrt(3)")
    left.set(ylim=(0, 1.15), title="default weights x sqrt(fan_in)", xlabel="fan_in",
             ylabel="std or max |w|, x sqrt(fan_in)")
    figures.legend(left, loc="lower right")
    figures.lines(right, m.frames["stack"], x="layer", y="std_across_examples", hue="init")
    right.set(yscale="log", title="a stack fed N(0, 1)", xlabel="layer",
              ylabel="std across examples")
    figures.legend(right, loc="lower left")
    figures.caption(fig, m.metrics["gain_default"].n)


register(Claim(
    id="kaiming.linear-default",
    statement="nn.Linear draws U(-1/sqrt(fan_in), 1/sqrt(fan_in)): \"exactly 1/sqrt(fan_in)\", "
              "gain 1, Gaussian in, Gaussian out",
    source=Source("L", "210-212"),
    measure=measure_linear_default, grid=LINEAR_DEFAULT,
    rules=Rules(
        reproduced=(Near("bound_default", "nn.Linear bound 1/sqrt(fan_in)"),
                    Near("gain_default", "nn.Linear gain 1")),
        partly=(Near("bound_default", "nn.Linear bound 1/sqrt(fan_in)"),
                Exact("worst_z_uniform", "a draw's std within its sampling spread",
                      label="the std is that of U(-b, b): b / sqrt(3)")),
        partly_means="nn.Linear draws U(-1/sqrt(fan_in), 1/sqrt(fan_in)) as stated, but that "
                     "is the bound: the std is 1/sqrt(3 fan_in), gain {gain_default:mean}, so "
                     "each layer shrinks a unit Gaussian input's std by sqrt 3",
        instead="default weights: std x sqrt(fan_in) {gain_default}, max |w| x sqrt(fan_in) "
                "{bound_default}"),
    headline="gain_default",
    finding="nn.Linear's weights reach {bound_default:mean}/sqrt(fan_in) (the bound) but have "
            "std {gain_default:mean}/sqrt(fan_in): gain 1/sqrt 3, not 1.",
    figure=figure_linear_default,
))
