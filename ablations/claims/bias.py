"""bias: the notebook on the bias term in deep linear stacks (N, cells 4-8 and its TODO list).

The stacks are the notebook's (ablations/experiments/stacks.py, imported as `nb`): 100 linear
layers 784 -> 50 -> ... -> 50, batch 1, float32, drawn per seed. Most claims are about forward
passes at init; the two about training use the 100-layer stack as a network of the project, on
the names task, at a stated length with a convergence control at twice it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ablations import figures
from ablations.checks import Above, Below, Near, NeedsSteps, Negligible
from ablations.context import Context
from ablations.experiments import stacks as nb
from ablations.experiments.runs import Trained
from ablations.measurement import Measurement, Metric
from ablations.registry import Claim, Source, measures, register
from ablations.tolerances import scale
from ablations.verdicts import Questions, Rules

CELL4, CELL5, CELL6, CELL7, FAN_IN = nb.CELL4, nb.CELL5, nb.CELL6, nb.CELL7, nb.FAN_IN


# --- bias.explosion -----------------------------------------------------------------------------


@measures(layers_to_nonfinite="layers", log10_growth="log10/layer", control_log10_max="log10",
          layers_w10="layers", layers_w200="layers")
def measure_explosion(ctx: Context, widths: tuple[int, ...]) -> Measurement:
    """N(0,1) weights, no bias (cell 4): after how many layers the notebook's check (a.std() inf
    or nan) fires, over widths; the growth per layer of the same draws in float64; the control,
    the correct fan-in, which must stay finite."""
    sweep = nb.stacked(ctx, *(nb.Stack(width=w) for w in widths))
    table = sweep.groupby(["width", "seed"], sort=False).apply(nb.layers_to_nonfinite)
    table = table.reset_index(name="layers_to_nonfinite")
    at = {w: Metric.of(rows.layers_to_nonfinite, "layers") for w, rows in table.groupby("width")}
    metrics = {
        "layers_to_nonfinite": at[nb.WIDTH],
        "log10_growth": nb.over_seeds(ctx, nb.float64(CELL4), nb.log10_growth, "log10/layer"),
        "control_log10_max": nb.over_seeds(ctx, FAN_IN, lambda r: np.log10(r.rms).max(), "log10"),
        "layers_w10": at[10], "layers_w200": at[200],
    }
    return Measurement(table, metrics, {"log10_growth": nb.log10_step(nb.WIDTH, 1.0)},
                       frames={"layers": nb.stacked(ctx, nb.float64(CELL4), CELL4, FAN_IN)})


def figure_explosion(m: Measurement, fig: Figure) -> None:
    left, right = fig.subplots(1, 2)
    nb.per_layer(left, m.frames["layers"], "std", "log10 a.std()")
    nb.printed(left, "cell 4")
    figures.reference(left, nb.LOG10_F32_MAX, "float32 max (log10)")
    left.set(title="Std per layer, width 50")
    figures.points(right, m.table, x="width", y="layers_to_nonfinite")
    figures.reference(right, 44, "notebook, width 50")
    right.set(title="Layers until a.std() is inf/nan", xlabel="width", ylabel="layers")
    nb.finish(fig, [left, right], m.metrics["layers_to_nonfinite"].n)


EXPLODES = (Above("log10_growth", 0.0), Below("control_log10_max", "float32 overflow"))

register(Claim(
    id="bias.explosion",
    statement="N(0,1) weights make the activations explode to inf/nan around layer 44",
    source=Source("N", "19-21, 27-66"),
    measure=measure_explosion,
    grid={"widths": (10, 20, 50, 100, 200)},
    rules=Rules(
        reproduced=(Near("layers_to_nonfinite", "the notebook's 44 layers"), *EXPLODES),
        partly=EXPLODES,
        partly_means="N(0,1) weights do make the activations explode ({log10_growth} per "
                     "layer), but the check fires after {layers_to_nonfinite}, not about 44",
        instead="the std changes by {log10_growth} per layer; the check fires after "
                "{layers_to_nonfinite}; with 1/sqrt(fan_in) the largest log10 rms is "
                "{control_log10_max}",
    ),
    headline="layers_to_nonfinite",
    finding="The std grows {log10_growth:mean} decades per layer and is inf/nan after "
            "{layers_to_nonfinite:mean} layers at width 50 ({layers_w10:mean} at width 10, "
            "{layers_w200:mean} at 200).",
    figure=figure_explosion,
))


# --- bias.bias-no-help --------------------------------------------------------------------------


@measures(log10_std_layer26="log10", layers_with_bias="layers", layers_without="layers",
          log10_growth="log10/layer")
def measure_bias_no_help(ctx: Context) -> Measurement:
    """Cell 5 (N(0,1) weights and bias) against its bias-free twin (cell 4, same input and
    weights): the std printed at layer 26, when the check fires, the growth in float64."""
    metrics = {
        "log10_std_layer26": nb.over_seeds(ctx, CELL5, nb.log10_std_at(26), "log10"),
        "layers_with_bias": nb.over_seeds(ctx, CELL5, nb.layers_to_nonfinite, "layers"),
        "layers_without": nb.over_seeds(ctx, CELL4, nb.layers_to_nonfinite, "layers"),
        "log10_growth": nb.over_seeds(ctx, nb.float64(CELL5), nb.log10_growth, "log10/layer"),
    }
    table = pd.DataFrame({"seed": ctx.seeds, **{k: v.samples for k, v in metrics.items()}})
    return Measurement(table, metrics, frames={"layers": nb.stacked(ctx, CELL5, CELL4)})


def figure_bias_no_help(m: Measurement, fig: Figure) -> None:
    left, right = fig.subplots(1, 2)
    nb.per_layer(left, m.frames["layers"], "std", "log10 a.std()")
    nb.printed(left, "cell 5")
    figures.reference(left, nb.LOG10_F32_MAX, "float32 max (log10)")
    left.set(title="N(0,1) weights with and without a bias")
    pairs = m.table.rename(columns={"layers_with_bias": "with bias", "layers_without": "without"})
    figures.points(right, pairs.melt(id_vars="seed", value_vars=["with bias", "without"],
                                     var_name="stack", value_name="layers"), x="stack", y="layers")
    right.set(title="Layers until a.std() is inf/nan", xlabel="", ylabel="layers")
    nb.finish(fig, [left], m.metrics["layers_with_bias"].n)


NO_HELP = (Negligible(("layers_with_bias", "layers_without"), "one layer"),
           Above("log10_growth", 0.0))

register(Claim(
    id="bias.bias-no-help",
    statement="Adding an N(0,1) bias does not keep the variance stable",
    source=Source("N", "68-109"),
    measure=measure_bias_no_help,
    rules=Rules(
        reproduced=(Near("log10_std_layer26", "the notebook's cell-5 std at layer 26"), *NO_HELP),
        partly=NO_HELP,
        partly_means="the bias changes nothing (inf/nan after {layers_with_bias}, "
                     "{layers_without} without), but the printed std at layer 26 is not where "
                     "our runs fall ({log10_std_layer26})",
        instead="with the bias the std grows {log10_growth} per layer, reaches "
                "{log10_std_layer26} at layer 26 and is inf/nan after {layers_with_bias} "
                "({layers_without} without)",
    ),
    headline="log10_std_layer26",
    finding="With an N(0,1) bias the std still reaches 10^{log10_std_layer26:mean} at layer 26 "
            "(printed: 10^22.35) and is inf/nan after {layers_with_bias:mean} layers, "
            "{layers_without:mean} without.",
    figure=figure_bias_no_help,
))


# --- bias.xavier-with-bias ----------------------------------------------------------------------


@measures(std_mean="", std_last="", std_last_w784="", log10_input_share="log10")
def measure_xavier_with_bias(ctx: Context, widths: tuple[int, ...]) -> Measurement:
    """Cell 6 (every layer / sqrt(784), N(0,1) bias): a.std() over the 100 layers and at layer
    100, by width; the input's share of the layer-100 variance (the bias-free twin's, float64)."""
    stacks = {w: nb.Stack(init="notebook", bias=True, width=w) for w in widths}
    metrics = {
        "std_mean": nb.over_seeds(ctx, CELL6, lambda r: r["std"].mean()),
        "std_last": nb.over_seeds(ctx, CELL6, lambda r: r["std"].iloc[-1]),
        "std_last_w784": nb.over_seeds(ctx, stacks[nb.INPUT], lambda r: r["std"].iloc[-1]),
        "log10_input_share": nb.over_seeds(ctx, nb.float64(CELL6), nb.log10_input_share,
                                           "log10"),
    }
    return Measurement(nb.stacked(ctx, *stacks.values()), metrics,
                       {"std_mean": nb.stationary_std(nb.WIDTH, nb.INPUT)})


def figure_xavier_with_bias(m: Measurement, fig: Figure) -> None:
    left, right = fig.subplots(1, 2)
    nb.per_layer(left, m.table[m.table.width == nb.WIDTH], "std", "a.std()", log=False)
    nb.printed(left, "cell 6", log=False)
    figures.reference(left, 1.0, "notebook: about")
    left.set(title="Every layer / sqrt(784), N(0,1) bias")
    figures.points(right, m.table[m.table.layer == nb.DEPTH], x="width", y="std")
    figures.reference(right, 1.0, "notebook: about")
    right.set(yscale="log", title="a.std() at layer 100 by width", ylabel="a.std()")
    nb.finish(fig, [left, right], m.metrics["std_mean"].n, "784: sqrt(784) is the true fan-in")


ABOUT_1 = "the notebook's std about 1"

register(Claim(
    id="bias.xavier-with-bias",
    statement="Dividing by sqrt(784) with an N(0,1) bias keeps the std about 1 for 100 layers",
    source=Source("N", "113-162"),
    measure=measure_xavier_with_bias,
    grid={"widths": (10, 50, 200, 784)},
    rules=Rules(
        reproduced=(Near("std_mean", ABOUT_1), Near("std_last", ABOUT_1)),
        partly=(Near("std_mean", ABOUT_1),),
        partly_means="the std averages about 1 over the layers ({std_mean}), but not at layer "
                     "100 ({std_last})",
        instead="a.std() averages {std_mean} over the 100 layers and is {std_last} at layer 100",
    ),
    headline="std_mean",
    finding="The std averages {std_mean:mean} over 100 layers ({std_last:mean} at layer 100); "
            "the input's share of that variance is 10^{log10_input_share:mean}; at width 784: "
            "{std_last_w784:mean}.",
    figure=figure_xavier_with_bias,
))


# --- bias.xavier-no-bias ------------------------------------------------------------------------


@measures(log10_std_layer27="log10", log10_growth="log10/layer", zero_layer="layer")
def measure_xavier_no_bias(ctx: Context) -> Measurement:
    """Cell 7 (every layer / sqrt(784), no bias): the std printed at layer 27, the growth in
    float64 (typical factor 0.25 per layer), the layer from which float32 holds only zeros."""
    metrics = {
        "log10_std_layer27": nb.over_seeds(ctx, CELL7, nb.log10_std_at(27), "log10"),
        "log10_growth": nb.over_seeds(ctx, nb.float64(CELL7), nb.log10_growth, "log10/layer"),
        "zero_layer": nb.over_seeds(ctx, CELL7, lambda r: nb.first_layer(r, r.zero_share == 1),
                                    "layer"),
    }
    return Measurement(nb.stacked(ctx, nb.float64(CELL7), CELL7), metrics,
                       {"log10_growth": nb.log10_step(nb.WIDTH, 1 / nb.INPUT)})


def figure_xavier_no_bias(m: Measurement, fig: Figure) -> None:
    ax = fig.add_subplot()
    nb.per_layer(ax, m.table, "std", "log10 a.std() (0 not drawn)")
    nb.printed(ax, "cell 7")
    figures.reference(ax, nb.LOG10_F32_TINY, "float32 smallest normal (log10)")
    ax.set(title="Every layer / sqrt(784), no bias")
    nb.finish(fig, [ax], m.metrics["log10_growth"].n)


register(Claim(
    id="bias.xavier-no-bias",
    statement="The same init (every layer / sqrt(784)) without bias vanishes",
    source=Source("N", "164-205"),
    measure=measure_xavier_no_bias,
    rules=Rules(
        reproduced=(Near("log10_std_layer27", "the notebook's cell-7 std at layer 27"),
                    Below("log10_growth", 0.0)),
        partly=(Below("log10_growth", 0.0),),
        partly_means="the std vanishes ({log10_growth} per layer), but the printed std at "
                     "layer 27 is not where our runs fall ({log10_std_layer27})",
        instead="the std changes by {log10_growth} per layer",
    ),
    headline="log10_std_layer27",
    finding="Without the bias the std falls {log10_growth:mean} decades per layer, to "
            "10^{log10_std_layer27:mean} at layer 27 (printed: 10^-15.59); float32 holds only "
            "zeros from layer {zero_layer:mean}.",
    figure=figure_xavier_no_bias,
))


# --- bias.purpose and bias.cannot-learn: the trained 100-layer stack -----------------------------

TRAINED = nb.trained_arms()


@measures(fan_in_log10_rms_last="log10", notebook_log10_rms_last="log10",
          log10_input_share="log10", val_no_bias="nats", val_bias="nats",
          val_no_bias_2x="nats", val_bias_2x="nats")
def measure_purpose(ctx: Context, runs: dict[str, Trained]) -> Measurement:
    """Forward: the control the notebook lacks, the correct fan-in (1/sqrt(50) after the first
    layer) without a bias, beside its own init with and without one. Training: the correctly
    scaled 100-layer stack with and without a bias, at the stated length and twice it."""
    metrics = {
        "fan_in_log10_rms_last": nb.over_seeds(ctx, FAN_IN, nb.log10_rms_last, "log10"),
        "notebook_log10_rms_last": nb.over_seeds(ctx, nb.float64(CELL7), nb.log10_rms_last,
                                                 "log10"),
        "log10_input_share": nb.over_seeds(ctx, nb.float64(CELL6), nb.log10_input_share,
                                           "log10"),
        **{f"val_{arm}{length}": Metric.of(runs[f"{run}{length}"].val_loss, "nats")
           for arm, run in (("no_bias", "control"), ("bias", "control_bias"))
           for length in ("", "_2x")},
    }
    frame = nb.stacked(ctx, nb.float64(CELL7), nb.float64(CELL6), FAN_IN)
    return Measurement(nb.final_losses(runs), metrics, frames={"layers": frame},
                       steps=min(run.steps for run in runs.values()))


def figure_purpose(m: Measurement, fig: Figure) -> None:
    left, right = fig.subplots(1, 2)
    nb.per_layer(left, m.frames["layers"], "rms", "log10 rms")
    figures.reference(left, nb.LOG10_F32_TINY, "float32 smallest normal (log10)")
    left.set(title="Forward pass at init")
    figures.points(right, m.table, x="arm", y="val_loss", hue="length")
    figures.reference(right, math.log(27), "uniform, ln 27")
    right.set(title="Trained 100-layer stack", xlabel="", ylabel="val loss (nats)")
    nb.finish(fig, [left, right], m.metrics["val_bias"].n, "left: /sqrt(784) without a bias is "
              "also the input's part of the stack with one; right: the names task")


register(Claim(
    id="bias.purpose",
    statement="Just a good init is not enough: the bias exists for numerical stability in the "
              "forward pass; without it deep nets are harder to train",
    source=Source("N", "207"),
    measure=measure_purpose,
    runs={name: run for name, run in TRAINED.items() if name.startswith("control")},
    rules=Rules(
        reproduced=(NeedsSteps(nb.TRAIN_STEPS),
                    Below("fan_in_log10_rms_last", "float32 underflow"),
                    Above(("val_no_bias", "val_bias"), "a loss gain worth the name"),
                    Above(("val_no_bias_2x", "val_bias_2x"), "a loss gain worth the name")),
        instead="with the correct fan-in the bias-free stack keeps its std (log10 rms at layer "
                "100: {fan_in_log10_rms_last}); the vanishing is the notebook's init's, "
                "1/sqrt(784) on 50-wide layers (10^{notebook_log10_rms_last:mean}), whose bias "
                "keeps the std by replacing the input (input's share 10^{log10_input_share:mean}); "
                "trained, the correct stack reaches val {val_no_bias} without a bias, {val_bias} "
                "with one ({val_no_bias_2x:mean}, {val_bias_2x:mean} at twice the length)",
    ),
    headline="fan_in_log10_rms_last",
    finding="With the correct fan-in and no bias the std at layer 100 is "
            "10^{fan_in_log10_rms_last:mean}; trained, the stack reaches val {val_no_bias:mean} "
            "without a bias, {val_bias:mean} with one.",
    figure=figure_purpose,
))


ARMS = ("exploded", "exploded_bias", "control")


@measures(**{f"learned_{arm}{length}": "share of runs" for arm in ARMS for length in ("", "_2x")},
          nonfinite_step0="share of runs", val_control="nats", unigram_val="nats",
          trained_steps="steps")
def measure_cannot_learn(ctx: Context, runs: dict[str, Trained],
                         learned_margin: str) -> Measurement:
    """Each arm trained at the stated length and twice it. A run has learned when its val loss is
    finite and below the uniform ln 27 by more than `learned_margin`; the control, the correctly
    scaled stack, has learned when it has with and without a bias."""
    below = math.log(27) - scale(learned_margin).value

    def learned(*names: str) -> Metric:
        ok = np.all([np.isfinite(runs[n].val_loss) & (runs[n].val_loss < below) for n in names],
                    axis=0)
        return Metric.of(ok.astype(float), "share of runs")

    metrics = {f"learned_{arm}{length}": learned(f"{arm}{length}", *(
        [f"control_bias{length}"] if arm == "control" else []))
        for arm in ARMS for length in ("", "_2x")}
    step0 = np.concatenate([runs[n].losses[0].numpy() for n in ("exploded", "exploded_bias")])
    metrics["nonfinite_step0"] = Metric.of(~np.isfinite(step0), "share of runs")
    metrics["val_control"] = Metric.of(runs["control"].val_loss, "nats")
    metrics["unigram_val"] = Metric.exact(nb.unigram_loss(ctx), "nats")
    metrics["trained_steps"] = Metric.exact(min(run.steps for run in runs.values()), "steps")
    return Measurement(nb.final_losses(runs), metrics, frames={"curves": nb.loss_curves(runs)},
                       steps=int(metrics["trained_steps"].mean))


def figure_cannot_learn(m: Measurement, fig: Figure) -> None:
    ax = fig.add_subplot()
    figures.lines(ax, m.frames["curves"], x="step", y="loss", hue="arm", markers=False)
    ax.axhline(math.log(27), color="0.15", linestyle="--", label="uniform, ln 27")
    ax.axhline(m.metrics["unigram_val"].mean, color="0.4", linestyle=":",
               label="letter frequencies (ignores the input)")
    ax.text(0.02, 0.04, f"N(0,1) arms: loss not finite from step 0 in "
            f"{m.metrics['nonfinite_step0'].mean:.0%} of runs (not drawn)",
            transform=ax.transAxes, fontsize=8)
    ax.set(title="100-layer width-50 linear stack on the names task",
           xlabel="step", ylabel="training loss (nats)")
    figures.steps_axis(ax)
    figures.legend(ax, loc="upper center")
    figures.caption(fig, m.metrics["val_control"].n)


register(Claim(
    id="bias.cannot-learn",
    statement="The exploded stacks (N(0,1) weights, with or without a bias) will not be able to "
              "learn much; the bias does not seem to help in training deeper networks",
    source=Source("N", "68, 111"),
    measure=measure_cannot_learn,
    runs=TRAINED,
    grid={"learned_margin": "a loss gain worth the name"},
    rules=Rules(
        reproduced=(NeedsSteps(nb.TRAIN_STEPS), *(
            check for length in ("", "_2x") for check in (
                Below(f"learned_exploded{length}", "most runs"),
                Below(f"learned_exploded_bias{length}", "most runs"),
                Above(f"learned_control{length}", "most runs")))),
        instead="runs that learned: N(0,1) weights {learned_exploded:pct} without a bias, "
                "{learned_exploded_bias:pct} with one; the correctly scaled stack "
                "{learned_control:pct} (val {val_control})",
    ),
    headline="learned_exploded",
    finding="Trained {trained_steps:mean} steps, the N(0,1) stacks learn in "
            "{learned_exploded:pct} of runs without a bias, {learned_exploded_bias:pct} with "
            "one; the correctly scaled stack in {learned_control:pct} (val {val_control:mean}; "
            "letter frequencies: {unigram_val:mean}).",
    figure=figure_cannot_learn,
))


# --- bias.nan -----------------------------------------------------------------------------------


@measures(nan_std_share="share of runs", subnormal_layer="layer", zero_layer="layer",
          normalised_nan_share="share of runs")
def measure_nan(ctx: Context) -> Measurement:
    """Cell 7 in float32 (the std shrinks 4x per layer): is a.std() ever nan? Where the values
    turn subnormal, then all exactly 0; what normalising by that std gives at layer 100."""
    metrics = {
        "nan_std_share": nb.over_seeds(ctx, CELL7, lambda r: r["std"].isna().any(),
                                       "share of runs"),
        "subnormal_layer": nb.over_seeds(
            ctx, CELL7, lambda r: nb.first_layer(r, r.subnormal_share > 0), "layer"),
        "zero_layer": nb.over_seeds(ctx, CELL7, lambda r: nb.first_layer(r, r.zero_share == 1),
                                    "layer"),
        "normalised_nan_share": nb.over_seeds(ctx, CELL7, lambda r: r.normalised_nan.iloc[-1],
                                              "share of runs"),
    }
    return Measurement(nb.stacked(ctx, nb.float64(CELL7), CELL7), metrics,
                       frames={"shares": nb.entry_shares(nb.layers(ctx, CELL7))})


def figure_nan(m: Measurement, fig: Figure) -> None:
    left, right = fig.subplots(1, 2)
    nb.per_layer(left, m.table, "std", "log10 a.std() (0 not drawn)")
    figures.reference(left, nb.LOG10_F32_TINY, "float32 smallest normal")
    left.set(title="Every layer / sqrt(784), no bias")
    figures.lines(right, m.frames["shares"], x="layer", y="share", hue="entries", markers=False)
    right.set(title="float32 entries at each layer", xlabel="layer", ylabel="share of entries",
              xlim=(40, nb.DEPTH))
    nb.finish(fig, [left, right], m.metrics["zero_layer"].n)


register(Claim(
    id="bias.nan",
    statement="Multiplying by weights close to zero layer after layer makes the std so small "
              "that it clamps to nan",
    source=Source("N", "209-214"),
    measure=measure_nan,
    rules=Rules(
        reproduced=(Above("nan_std_share", 0.0),),
        instead="float32 underflows gradually: entries turn subnormal from layer "
                "{subnormal_layer:mean} and are all exactly 0 from layer {zero_layer:mean}; the "
                "std is then 0.0, not nan; only dividing by it gives nan (0/0, in "
                "{normalised_nan_share:pct} of runs at layer 100)",
    ),
    headline="nan_std_share",
    finding="a.std() is nan in {nan_std_share:pct} of runs: float32 goes subnormal at layer "
            "{subnormal_layer:mean} and all zeros at {zero_layer:mean}, so the std is 0.0; only "
            "dividing by it gives nan.",
    figure=figure_nan,
))


# --- bias.todo ----------------------------------------------------------------------------------


@measures(**nb.TODO_UNITS)
def measure_todo(ctx: Context) -> Measurement:
    """One measurement per open question of the notebook's TODO list (stacks.todo_metrics)."""
    frames = nb.todo_frames(ctx)
    return Measurement(pd.concat(frames.values(), ignore_index=True), nb.todo_metrics(ctx),
                       frames=frames)


def figure_todo(m: Measurement, fig: Figure) -> None:
    left, right = fig.subplots(1, 2)
    nb.per_layer(left, m.frames["forward"], "rms", "log10 rms (float64)")
    left.set(title="Activations per layer")
    nb.per_layer(right, m.frames["variants"], "rms", "log10 rms")
    figures.reference(right, nb.LOG10_F32_MAX, "float32 max")
    right.set(title="BN (batch 32), ReLU, 3x3 conv")
    nb.finish(fig, [left, right], m.metrics["bn_std_last"].n)


register(Claim(
    id="bias.todo",
    statement="The notebook's open questions: does Xavier init assume anything about the bias; "
              "activations per layer; the backward pass; BatchNorm; ReLU; conv layers",
    source=Source("N", "216-223"),
    measure=measure_todo,
    questions=Questions({
        "Does Xavier init make any assumption about the bias term?":
            "Yes, that the bias adds no variance: with 1/sqrt(fan_in) and an N(0,1) bias the "
            "mean square grows by 1 per layer, to {xavier_bias_ms:mean} at layer 100 (mean-field: "
            "101), against {xavier_ms:mean} without a bias (mean-field: 1).",
        "Plot activations for each layer":
            "See the figure. The log10 rms changes per layer by {growth_cell4:mean} (cell 4), "
            "{growth_cell5:mean} (cell 5), {growth_cell6:mean} (cell 6) and {growth_cell7:mean} "
            "(cell 7).",
        "Backward pass":
            "It mirrors the forward pass: the gradient reaching layer 1 is 10^{grad_notebook:mean} "
            "under the notebook's init and 10^{grad_fan_in:mean} with the correct fan-in; the "
            "bias changes it by {grad_bias_change:mean} decades (a linear stack's backward pass "
            "never sees the bias).",
        "BatchNorm":
            "After every layer (batch 32) it holds an N(0,1)-weight stack with a bias at std "
            "{bn_std_last:mean} through layer 100, and removes the bias (what is left of it: "
            "10^{bn_log10_bias_part:mean} of the rms, float32 rounding).",
        "ReLu":
            "Under 1/sqrt(fan_in) the log10 rms changes by {relu_fan_in_growth:mean} per layer "
            "(ReLU drops half the variance: -0.15 mean-field); Kaiming's sqrt(2/fan_in) keeps "
            "it nearly level ({relu_kaiming_growth:mean} per layer, a finite-width drift).",
        "Conv layer":
            "The same rule with fan_in = channels x 9: N(0,1) 3x3 kernels (8 channels) give "
            "inf/nan after {conv_layers:mean} layers; 1/sqrt(fan_in) keeps the rms at "
            "10^{conv_log10_rms_last:mean} after 100 layers.",
    }),
    headline="xavier_bias_ms",
    finding="Xavier assumes a negligible bias: with an N(0,1) bias the mean square reaches "
            "{xavier_bias_ms:mean} at layer 100; BN holds std {bn_std_last:mean}; "
            "Kaiming keeps ReLU stacks ({relu_kaiming_growth:mean}/layer).",
    figure=figure_todo,
))
