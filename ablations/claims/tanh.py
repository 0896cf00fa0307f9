"""tanh: saturation and dead neurons in the MLP (L:46-83), ReLU in deep networks (L:200). The MLP
at its first step and at init comes from ablations.experiments.mlp, deep sweeps from .deep."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from ablations import figures
from ablations.checks import Above, Exact, Near, NeedsSteps
from ablations.context import LECTURE_STEPS, Context
from ablations.experiments import mlp
from ablations.experiments.deep import CONTROL_STEPS, SWEEP_STEPS, sweep
from ablations.experiments.runs import Trained, mlp_run
from ablations.measurement import Measurement, Metric
from ablations.registry import Claim, Source, measures, register
from ablations.verdicts import Rules

PLAIN = mlp.first_step("original")  # plain-randn W1, b1 (L:46-51)
SCALED = mlp.first_step("fix-tanh", vary={"w1": (0.1, 0.2)})  # W1 x 0.1 (L:79), x 0.2 (L:81)


# --- tanh.saturation ----------------------------------------------------------------------------


@measures(span="", max_abs_pre="", saturated="", saturated_fixed="")
def measure_saturation(ctx: Context, runs: dict[str, Trained]) -> Measurement:
    """The plain init's first batch (32 x 200) as the lecture reads its histograms (visible span,
    largest |pre|, share of |h| > 0.99). Control: the same seeds with W1 x 0.2, b1 x 0.01."""
    plain = mlp.batch_stats(mlp.first_batch(runs["plain"])).assign(init="randn")
    fixed = mlp.rows_at(mlp.batch_stats(mlp.first_batch(runs["scaled"])), w1=0.2).assign(
        init="W1 x 0.2, b1 x 0.01")
    metrics = {name: Metric.of(plain[name]) for name in ("span", "max_abs_pre", "saturated")}
    metrics["saturated_fixed"] = Metric.of(fixed.saturated)
    return Measurement(pd.concat([plain, fixed], ignore_index=True), metrics)


def figure_saturation(m: Measurement, fig: Figure) -> None:
    ax, bx = fig.subplots(1, 2)
    spans = mlp.long_form(m.table[m.table.init == "randn"], {"span": "central 99%",
                                                              "max_abs_pre": "largest"}, "|pre|")
    mlp.panel(ax, spans, "what", "|pre|", "Pre-activations, first batch", "half-width of the "
              "span", reference=(15.0, "lecture, +-"), ylim=(0, None))
    bx.axhline(0.5, color="C3", linewidth=1, label="half")
    mlp.panel(bx, m.table, "init", "saturated", "Share of |h| > 0.99", "share of entries",
              ylim=(0, 1))
    figures.caption(fig, m.metrics["span"].n)


SATURATED_INIT = (
    Above("saturated", "more than half", why="L:50: 'most of the values' are -1 or 1"),
    Above(("saturated", "saturated_fixed"), 0.0, why="control: the fixed init of the same seeds "
                                                    "saturates less, so the init is the cause"),
)

register(Claim(
    id="tanh.saturation",
    statement="With plain randn W1/b1 the pre-activations span about +-15 and much of h sits at "
              "+-1 (abs > 0.99)",
    source=Source("L", "46-51, 63-64"), measure=measure_saturation, figure=figure_saturation,
    runs={"plain": PLAIN, "scaled": SCALED},
    rules=Rules(
        reproduced=(Near("span", "+-15 read off the histogram"), *SATURATED_INIT),
        partly=SATURATED_INIT,
        partly_means="most of h sits at +-1, but the visible span is +-{span:mean}, not about "
                     "+-15 (largest |pre| {max_abs_pre:mean})"),
    headline="span",
    finding="The first batch's pre-activations span +-{span} (central 99%; largest "
            "{max_abs_pre:mean}); {saturated:pct} of h have |h| > 0.99, against "
            "{saturated_fixed:pct} with W1 x 0.2.",
))

# --- tanh.local-gradient ------------------------------------------------------------------------

LINE, INPUT_STD = (-20.0, 20.0, 8001), 5.0  # through both tails; spread like the plain init


@measures(max_gain="", gain_above_one="ulps", gain_at_zero_error="", flat_gradient="",
          formula_error_ulps="ulps")
def measure_local_gradient(ctx: Context, line: tuple[float, float, int],
                           input_std: float) -> Measurement:
    """Per seed and float dtype: 0, a dense line and ctx.profile.samples * 100 random inputs,
    each with a random upstream gradient, through tanh's backward (mlp.tanh_backward)."""
    rows: list[dict] = []
    for seed in ctx.seeds:
        gen = torch.Generator().manual_seed(seed)
        x = torch.cat([torch.zeros(1), torch.linspace(*line),
                       input_std * torch.randn(ctx.profile.samples * 100, generator=gen)])
        g = torch.randn(x.shape, generator=gen)
        rows += [{"seed": seed, "dtype": str(d)[6:], **mlp.tanh_backward(x.to(d), g.to(d))}
                 for d in (torch.float32, torch.float64)]
    table = pd.DataFrame(rows)
    worst = table.groupby("seed", sort=False).max(numeric_only=True)  # over the two dtypes
    metrics = {name: Metric.of(worst[name], "ulps" if "ulps" in name or "above" in name else "")
               for name in ("max_gain", "gain_above_one", "gain_at_zero_error", "flat_gradient")}
    metrics["formula_error_ulps"] = Metric.of(worst.formula_error_ulps, "ulps", kind="numerics")
    return Measurement(table, metrics, frames={"curve": mlp.tanh_curve(line)})


def figure_local_gradient(m: Measurement, fig: Figure) -> None:
    ax, bx = fig.subplots(1, 2)
    curve = m.frames["curve"]
    near, tail = curve[curve.x.abs() <= 5], curve[curve.x > 0]
    near.plot(x="x", y=["t", "float32", "exact"], style=["-", "-", ":"], ax=ax,
              label=["t = tanh(x)", "autograd", "1 - t²"])
    ax.set(title="Backward through tanh: times 1 - t²", xlabel="input x", ylabel="value")
    figures.legend(ax)
    tail.clip(lower=1e-40).plot(x="x", y=["exact", "float64", "float32"], ax=bx)
    bx.set(yscale="log", ylim=(1e-20, 2), title="The tail: exactly 0 once t rounds to 1",
           xlabel="input x", ylabel="local gradient (0 drawn at 1e-40)")
    figures.legend(bx, loc="lower left")
    figures.caption(fig, m.metrics["max_gain"].n, "curves: one line of inputs")


register(Claim(
    id="tanh.local-gradient",
    statement="The backward pass through tanh multiplies by 1 - t^2: the gradient only shrinks, "
              "vanishes at +-1, passes whole at 0",
    source=Source("L", "54-60"), measure=measure_local_gradient, figure=figure_local_gradient,
    grid={"line": LINE, "input_std": INPUT_STD},
    rules=Rules(reproduced=(
        Exact("formula_error_ulps", "rounding of a few operations",
              why="autograd computes g * (1 - t^2): one rounding each"),
        Exact("gain_above_one", "exactly zero", why="1 - t^2 <= 1: the gradient only shrinks"),
        Exact("flat_gradient", "exactly zero", why="at t = +-1 the gradient is killed"),
        Exact("gain_at_zero_error", "exactly zero", why="at t = 0 it passes whole"))),
    headline="max_gain",
    finding="Autograd multiplies by 1 - t^2 (within {formula_error_ulps:mean} ulps): the gain "
            "never exceeds {max_gain:mean}, is 1 at 0 (off by {gain_at_zero_error:mean}) and "
            "{flat_gradient:mean} where t = +-1.",
))

# --- tanh.dead-neuron ---------------------------------------------------------------------------

DEAD_STEPS = 10_000  # a stated length for a network the lecture never trained; control: 2x
DEAD_BIAS = 20.0  # b1 = randn x 20: some units sit in a flat tail on every training example
DEAD_BIASED = {steps: mlp_run("original", steps, b1=DEAD_BIAS, decay=None)
               for steps in (DEAD_STEPS, 2 * DEAD_STEPS)}
DEAD_FIRST = mlp.first_step("original", b1=DEAD_BIAS)  # the same init's first iteration


@measures(dead_units="units", dead_on_batch="units", dead_gradient="", dead_learned="",
          dead_learned_long="", live_learned="", nearly_dead_learned="")
def measure_dead_neuron(ctx: Context, runs: dict[str, Trained]) -> Measurement:
    """Dead = |h| > 0.99 on every training example (L:65-67), at the plain init. With b1 x 20:
    the step-0 gradient of units at +-1 everywhere (L:67), and the units changed by training,
    by their state at init (+-1 everywhere; above 0.99; live)."""
    plain = mlp.on_split(ctx, mlp.at_init(ctx, PLAIN)).hidden.abs() > mlp.SATURATED
    batch = mlp.first_batch(runs["plain"]).hidden.abs() > mlp.SATURATED
    model = mlp.at_init(ctx, DEAD_BIASED[DEAD_STEPS])
    init, h = mlp.parameters(model), mlp.on_split(ctx, model).hidden.abs()
    complete, white = (h == 1).all(1), (h > mlp.SATURATED).all(1)

    def learned(run: str, units: torch.Tensor) -> np.ndarray:
        moved = mlp.changed_units(init, mlp.parameters(runs[run].model))
        return ((moved & units).sum(1) / units.sum(1)).numpy()

    grads = mlp.first_batch(runs["biased_first"]).grads
    gradient = torch.maximum(grads["W1"].abs().amax(1), grads["b1"].abs()) * complete
    table = runs["plain"].members.assign(
        dead_units=plain.all(1).sum(1).numpy(), dead_on_batch=batch.all(1).sum(1).numpy(),
        dead_gradient=gradient.amax(1).numpy(),
        completely_dead=complete.sum(1).numpy(), nearly_dead=(white & ~complete).sum(1).numpy(),
        dead_learned=learned("biased", complete), live_learned=learned("biased", ~white),
        dead_learned_long=learned("biased_long", complete),
        nearly_dead_learned=learned("biased", white & ~complete))
    metrics = {name: Metric.finite(table[name]) for name in (
        "dead_learned", "dead_learned_long", "live_learned", "nearly_dead_learned")}
    metrics.update(dead_units=Metric.of(table.dead_units, "units"),
                   dead_on_batch=Metric.of(table.dead_on_batch, "units"),
                   dead_gradient=Metric.of(table.dead_gradient))
    return Measurement(table, metrics, steps=runs["biased"].steps)


def figure_dead_neuron(m: Measurement, fig: Figure) -> None:
    ax, bx = fig.subplots(1, 2)
    dead = mlp.long_form(m.table, {"dead_on_batch": "first batch (32)",
                                   "dead_units": "training split"}, "units")
    mlp.panel(ax, dead, "what", "units", "Plain init: dead units (|h| > 0.99\non every example)",
              "units of 200", reference=(0.0, "lecture"), ylim=(-0.5, 3))
    learned = mlp.long_form(m.table, {"dead_learned": "+-1\neverywhere", "live_learned": "live",
                                      "nearly_dead_learned": "above 0.99\neverywhere"}, "share")
    mlp.panel(bx, learned, "what", "share", f"b1 x {DEAD_BIAS:g}: units that changed\nin "
              "training, by their state at init", "share of those units", ylim=(-0.05, 1.05))
    figures.caption(fig, m.metrics["dead_units"].n)


NO_GRADIENT = (
    NeedsSteps(DEAD_STEPS), Near("dead_units", "no dead unit at the lecture's init"),
    Exact("dead_gradient", "exactly zero", why="a unit at +-1 on every example gets no gradient"),
    Above("live_learned", "more than half", why="control: training does move the live units"),
)

register(Claim(
    id="tanh.dead-neuron",
    statement="A unit is dead when it is saturated for every input of the data set: it gets no "
              "gradient and never learns. At the lecture's init no unit is dead",
    source=Source("L", "62-67"), measure=measure_dead_neuron, figure=figure_dead_neuron,
    runs={"plain": PLAIN, "biased_first": DEAD_FIRST, "biased": DEAD_BIASED[DEAD_STEPS],
          "biased_long": DEAD_BIASED[2 * DEAD_STEPS]},
    rules=Rules(
        reproduced=(*NO_GRADIENT, Exact("dead_learned", "exactly zero", why="never learns"),
                    Exact("dead_learned_long", "exactly zero", why="nor by 2x the length")),
        partly=NO_GRADIENT,
        partly_means="a unit at +-1 everywhere gets no gradient, but not for ever: "
                     "{dead_learned:pct} come back as the embedding moves their inputs and then "
                     "learn ({dead_learned_long:pct} by 2x)"),
    headline="dead_units",
    finding="The plain init has {dead_units:mean} dead units on the split ({dead_on_batch:mean} on "
            "the first batch); units at +-1 everywhere get gradient {dead_gradient:mean} yet "
            "{dead_learned:pct} revive; {nearly_dead_learned:pct} of those above 0.99 learn.",
))

# --- tanh.other-nonlinearities ------------------------------------------------------------------

NONLINEARITIES = ("tanh", "sigmoid", "relu", "leaky_relu", "elu")


@measures(tanh_blocked="", sigmoid_blocked="", elu_blocked="", tanh_blocked_fixed="",
          relu_mismatch="", leaky_zero="")
def measure_other_nonlinearities(ctx: Context, nonlinearities: tuple[str, ...]) -> Measurement:
    """The plain init's pre-activations over the training split through each nonlinearity
    (mlp.gradient_shares). Reference: tanh at W1 x 0.2, b1 x 0.01."""
    split = mlp.on_split(ctx, mlp.at_init(ctx, PLAIN))
    table = pd.concat([pd.DataFrame({"seed": ctx.seeds, "nonlinearity": name,
                                     **mlp.gradient_shares(split, name)})
                       for name in nonlinearities], ignore_index=True)
    fixed = mlp.gradient_shares(mlp.on_split(ctx, mlp.at_init(ctx, SCALED)), "tanh")["blocked"]
    fixed_blocked = fixed[np.isclose(SCALED.members(ctx).w1, 0.2)]
    at = {name: table[table.nonlinearity == name] for name in nonlinearities}
    metrics = {f"{name}_blocked": Metric.of(at[name].blocked) for name in ("tanh", "sigmoid",
                                                                             "elu")}
    return Measurement(table, {**metrics, "tanh_blocked_fixed": Metric.of(fixed_blocked),
                               "relu_mismatch": Metric.of(at["relu"].mismatch),
                               "leaky_zero": Metric.of(at["leaky_relu"].zero)})


def figure_other_nonlinearities(m: Measurement, fig: Figure) -> None:
    ax = fig.add_subplot()
    ax.axhline(m.metrics["tanh_blocked_fixed"].mean, color="0.3", linestyle=":",
               label="tanh at W1 x 0.2: below 0.0199")
    long = mlp.long_form(m.table, {"blocked": "local gradient below 0.0199 x its peak", "zero":
                                   "local gradient exactly 0"}, "share", ("seed", "nonlinearity"))
    mlp.panel(ax, long, "nonlinearity", "share", "Local gradients at the plain init's "
              "pre-activations (training split)", "share of entries", hue="what", ylim=(-0.02, 1))
    figures.caption(fig, m.metrics["tanh_blocked"].n)


EXACT_ZEROS = (
    Exact("relu_mismatch", "exactly zero", why="ReLU's gradient is 0 exactly where x <= 0"),
    Exact("leaky_zero", "exactly zero", why="leaky ReLU always passes a gradient"),
)

register(Claim(
    id="tanh.other-nonlinearities",
    statement="Sigmoid shares the problem; ReLU zeroes the gradient exactly below 0; leaky ReLU "
              "mostly avoids it; ELU has a flat part",
    source=Source("L", "68-70, 75"), measure=measure_other_nonlinearities,
    figure=figure_other_nonlinearities, grid={"nonlinearities": NONLINEARITIES},
    rules=Rules(
        reproduced=(*EXACT_ZEROS,
                    Above(("sigmoid_blocked", "tanh_blocked_fixed"), 0.0, why="sigmoid squashes "
                          "too: far more blocked than the lecture's fixed tanh layer"),
                    Above(("elu_blocked", "tanh_blocked_fixed"), 0.0,
                          why="ELU's flat negative part blocks too")),
        partly=EXACT_ZEROS,
        partly_means="ReLU and leaky ReLU behave as said, but sigmoid ({sigmoid_blocked:pct}) or "
                     "ELU ({elu_blocked:pct}) is not more blocked than the fixed tanh layer "
                     "({tanh_blocked_fixed:pct})"),
    headline="sigmoid_blocked",
    finding="At the plain init tanh blocks {tanh_blocked:pct} of local gradients, sigmoid "
            "{sigmoid_blocked:pct}, ELU {elu_blocked:pct} (fixed tanh: {tanh_blocked_fixed:pct}); "
            "ReLU zeros off x <= 0: {relu_mismatch:pct}; leaky ReLU zeros: {leaky_zero:pct}.",
))

# --- tanh.dead-relu-lr --------------------------------------------------------------------------

RELU_LRS = (0.1, 0.3, 1.0, 1.5)  # from the lecture's 0.1 up to just below divergence (about 2)
KNOCK_STEPS = 1_000  # a stated length at the high lr; then as long at lr / 10; control: 2x


# The Kaiming-initialised MLP, one member per lr and seed: a phase at the lr, then (recover,
# decay 0.5) as many steps at lr / 10, as the lecture's schedule drops it.
RELU_RUNS = {name: mlp_run("kaiming", phases * steps, nonlinearity=nonlinearity, decay=decay,
                           vary={"lr": RELU_LRS})
             for name, nonlinearity, steps, phases, decay in (
                 ("knock", "relu", KNOCK_STEPS, 1, None), ("recover", "relu", KNOCK_STEPS, 2, 0.5),
                 ("knock_long", "relu", 2 * KNOCK_STEPS, 1, None),
                 ("recover_long", "relu", 2 * KNOCK_STEPS, 2, 0.5),
                 ("leaky", "leaky_relu", KNOCK_STEPS, 1, None))}


@measures(dead_top="", dead_base="", excess_dead="", excess_dead_long="", revived="",
          revived_long="", leaky_negative_top="", relu_minus_leaky="", diverged_top="")
def measure_dead_relu_lr(ctx: Context, runs: dict[str, Trained]) -> Measurement:
    """ReLU units never firing on the training split (L:74) after each lr, firing again at lr / 10
    (mlp.knocked_off); control: leaky ReLU. Diverged members are counted, not judged."""
    short = mlp.knocked_off(ctx, runs["knock"], runs["recover"]).assign(length="stated")
    long = mlp.knocked_off(ctx, runs["knock_long"], runs["recover_long"]).assign(length="2x")
    leaky = mlp.never_positive(runs["leaky"].model, mlp.split_counts(ctx)[0])
    short["leaky_negative"] = np.where(runs["leaky"].losses.isfinite().all(0).numpy(),
                                       leaky.double().mean(1).numpy(), np.nan)
    s, w = (frame.pivot(index="seed", columns="lr") for frame in (short, long))  # seed x lr
    top, base = max(RELU_LRS), min(RELU_LRS)
    metrics = {"dead_top": s.dead[top], "dead_base": s.dead[base], "revived": s.revived[top],
               "excess_dead": s.dead[top] - s.dead[base], "revived_long": w.revived[top],
               "excess_dead_long": w.dead[top] - w.dead[base],
               "leaky_negative_top": s.leaky_negative[top],
               "relu_minus_leaky": s.dead[top] - s.leaky_negative[top]}
    return Measurement(pd.concat([short, long], ignore_index=True), {
        **{name: Metric.finite(values) for name, values in metrics.items()},
        "diverged_top": Metric.of(s.diverged[top].astype(float))}, steps=runs["knock"].steps)


def figure_dead_relu_lr(m: Measurement, fig: Figure) -> None:
    ax = fig.add_subplot()
    names = {"dead": "ReLU: never fires", "leaky_negative": "leaky ReLU: never positive"}
    long = mlp.long_form(m.table[m.table.length == "stated"], names, "share", ("seed", "lr"))
    figures.lines(ax, long.dropna(), x="lr", y="share", hue="what")
    figures.reference(ax, 0.1, "lecture's lr", axis="x")
    mlp.plain_log_axis(ax, "x")
    ax.set(title=f"Units off the data after {KNOCK_STEPS:,} steps (diverged runs left out)",
           xlabel="learning rate", ylabel="share of the 200 hidden units")
    figures.legend(ax, loc="upper left")
    figures.caption(fig, m.metrics["dead_base"].n)


KNOCKED_OFF = (
    NeedsSteps(KNOCK_STEPS),
    Above("excess_dead", 0.0, why="more ReLU units die at the top lr than at the lecture's"),
    Above("excess_dead_long", 0.0, why="convergence control: the same at 2x the length"),
)

register(Claim(
    id="tanh.dead-relu-lr",
    statement="A very high learning rate knocks ReLU units off the data manifold for good",
    source=Source("L", "72-74"), measure=measure_dead_relu_lr, figure=figure_dead_relu_lr,
    runs=RELU_RUNS,
    rules=Rules(
        reproduced=(*KNOCKED_OFF,
                    Exact("revived", "exactly zero", why="for good: none fires again"),
                    Exact("revived_long", "exactly zero", why="nor at 2x the length"),
                    Above("relu_minus_leaky", 0.0, why="L:75: leaky ReLU units get stuck less")),
        partly=KNOCKED_OFF,
        partly_means="a high lr knocks ReLU units off ({dead_top:pct} at the top lr), but "
                     "{revived:pct} of them fire again at lr / 10 ({revived_long:pct} at 2x); "
                     "ReLU minus leaky ReLU stuck: {relu_minus_leaky}"),
    headline="dead_top",
    finding=f"After lr {max(RELU_LRS):g}, " "{dead_top:pct} of ReLU units never fire (lr "
            f"{min(RELU_LRS):g}: " "{dead_base:pct}; leaky ReLU: {leaky_negative_top:pct}); "
            "{revived:pct} of them fire again at lr / 10; {diverged_top:pct} of runs diverge.",
))

# --- tanh.fix -----------------------------------------------------------------------------------


@measures(span_tenth="", units_saturated_tenth="units", span_fifth="", val_fix="nats",
          improvement="nats")
def measure_fix(ctx: Context, runs: dict[str, Trained]) -> Measurement:
    """First batch at W1 x 0.1, 0.2: span, units above 0.99; val loss vs the output fix alone."""
    first = mlp.batch_stats(mlp.first_batch(runs["scaled"]))
    tenth, fifth = mlp.rows_at(first, w1=0.1), mlp.rows_at(first, w1=0.2)
    fixed, softmax = runs["fix_tanh"], runs["fix_softmax"]
    trained = pd.concat([softmax.losses_frame().assign(init="fix softmax"),
                         fixed.losses_frame().assign(init="fix softmax + tanh")])
    return Measurement(first, {
        "span_tenth": Metric.of(tenth.span), "span_fifth": Metric.of(fifth.span),
        "units_saturated_tenth": Metric.of(tenth.units_saturated, "units"),
        "val_fix": Metric.of(fixed.val_loss, "nats"),
        "improvement": Metric.of(softmax.val_loss - fixed.val_loss, "nats")},
        frames={"trained": trained}, steps=min(fixed.steps, softmax.steps))


def figure_fix(m: Measurement, fig: Figure) -> None:
    ax, bx = fig.subplots(1, 2)
    mlp.panel(ax, m.table.assign(W1=[f"x {w:g}" for w in m.table.w1]), "W1", "span",
              "First batch: visible span of\nthe pre-activations (central 99%)", "half-width",
              reference=(1.5, "lecture at x 0.1, +-"), xlabel="W1 (b1 x 0.01)", ylim=(0, None))
    bx.axhline(2.13, color="0.6", linestyle="--", label="lecture, fix softmax: 2.13")
    mlp.panel(bx, m.frames["trained"], "init", "val_loss", f"Val loss after {m.steps:,} steps",
              "val loss (nats)", reference=(2.10, "lecture, both fixes"))
    figures.caption(fig, m.metrics["val_fix"].n)


TRAINS_BETTER = (
    NeedsSteps(LECTURE_STEPS),
    Near("val_fix", "the lecture's val loss 2.10"),
    Above("improvement", "a loss gain worth the name", why="L:83: 2.13 -> 2.10"),
)

register(Claim(
    id="tanh.fix",
    statement="W1 x 0.1 (b1 x 0.01) brings the pre-activations to about +-1.5 with no unit above "
              "0.99 (L:79); from W1 x 0.2 (L:81) training reaches val loss 2.10 (L:83)",
    source=Source("L", "77-83"), measure=measure_fix, figure=figure_fix,
    runs={"scaled": SCALED, "fix_tanh": mlp_run("fix-tanh"), "fix_softmax": mlp_run("fix-softmax")},
    rules=Rules(
        reproduced=(Near("span_tenth", "+-1.5 read off the histogram"),
                    Near("units_saturated_tenth", "no unit above 0.99 at W1 x 0.1"),
                    *TRAINS_BETTER),
        partly=TRAINS_BETTER,
        partly_means="training from W1 x 0.2 reaches {val_fix}, but at W1 x 0.1 the first batch "
                     "spans +-{span_tenth:mean} with {units_saturated_tenth:mean} units above "
                     "0.99"),
    headline="val_fix",
    finding="W1 x 0.1 spans +-{span_tenth} with {units_saturated_tenth:mean} units above 0.99; "
            "W1 x 0.2 spans +-{span_fifth:mean} and trains to {val_fix}, {improvement:mean} "
            "below the output fix alone.",
))

# --- tanh.small-bias ----------------------------------------------------------------------------


@measures(val_small_bias="nats", val_zero_bias="nats", help="nats")
def measure_small_bias(ctx: Context, runs: dict[str, Trained]) -> Measurement:
    """The fix-tanh MLP trained 200,000 steps, b1 x 0.01 against b1 = 0 (same draws), paired."""
    small, zero = runs["small_bias"], runs["zero_bias"]
    table = pd.concat([small.losses_frame().assign(b1="randn x 0.01"), zero.losses_frame()
                       .assign(b1="0", help=zero.val_loss - small.val_loss)], ignore_index=True)
    return Measurement(table, {"val_small_bias": Metric.of(small.val_loss, "nats"),
                               "val_zero_bias": Metric.of(zero.val_loss, "nats"),
                               "help": Metric.of(zero.val_loss - small.val_loss, "nats")},
                       steps=min(small.steps, zero.steps))


def figure_small_bias(m: Measurement, fig: Figure) -> None:
    ax = fig.add_subplot()
    for edge in (-0.005, 0.005):
        ax.axhline(edge, color="0.4", linestyle=":")
    mlp.panel(ax, m.table.dropna(subset="help").assign(pair="b1 = 0 minus b1 x 0.01"), "pair",
              "help", f"Val loss after {m.steps:,} steps: the small bias's help, seed by seed",
              "val loss difference (nats)", reference=(0.0, "no help"))
    figures.caption(fig, m.metrics["help"].n, "dotted: +-0.005, what two decimals can show")


register(Claim(
    id="tanh.small-bias",
    statement="A small non-zero b1 (x 0.01 rather than exactly 0) adds 'a little bit of "
              "entropy' and 'can help optimization a little bit'",
    source=Source("L", "78"), measure=measure_small_bias, figure=figure_small_bias,
    runs={"small_bias": mlp_run("fix-tanh"), "zero_bias": mlp_run("fix-tanh", b1=0.0)},
    rules=Rules(
        reproduced=(NeedsSteps(LECTURE_STEPS),
                    Above("help", "a loss gain worth the name", why="falsified by a negligible "
                          "difference (within two decimals) or by b1 = 0 ending lower")),
        instead="b1 = 0 ends {help} above b1 x 0.01: no help worth the name"),
    headline="help",
    finding="b1 = 0 ends at {val_zero_bias:mean} nats, b1 x 0.01 at {val_small_bias:mean}: the "
            "small bias helps by {help}.",
))

# --- tanh.relu-deep -----------------------------------------------------------------------------

DEPTH = 20  # well past the lecture's 5 layers; shared with the kaiming and bn sweeps
ARMS = {f"{nl}{'_bn' if bn else ''}{'_long' if steps == CONTROL_STEPS else ''}":
        sweep(DEPTH, nl, bn, steps) for nl in ("tanh", "relu") for bn in (False, True)
        for steps in (SWEEP_STEPS, CONTROL_STEPS)}
GAINS = {"gain_plain": "", "gain_bn": "_bn", "gain_plain_long": "_long", "gain_bn_long": "_bn_long"}


@measures(**dict.fromkeys(GAINS, "nats"))
def measure_relu_deep(ctx: Context, runs: dict[str, Trained]) -> Measurement:
    """Depth 20, tanh and ReLU (own Kaiming gains), without and with BN, 1x and 2x the steps."""
    table = pd.concat([run.losses_frame().assign(arm=name, nonlinearity=name.split("_")[0],
                                                 bn="_bn" in name, steps=run.steps)
                       for name, run in runs.items()], ignore_index=True)
    metrics = {gain: Metric.finite(runs[f"tanh{arm}"].val_loss - runs[f"relu{arm}"].val_loss,
                                   "nats") for gain, arm in GAINS.items()}
    return Measurement(table, metrics, steps=min(run.steps for run in runs.values()))


def figure_relu_deep(m: Measurement, fig: Figure) -> None:
    t = m.table.assign(BN=np.where(m.table.bn, "BN before each\nnonlinearity", "no BN"))
    for ax, (steps, rows) in zip(fig.subplots(1, 2, sharey=True), t.groupby("steps"),
                                 strict=True):
        mlp.panel(ax, rows, "BN", "val_loss", f"{DEPTH} layers, {steps:,} steps",
                  "val loss (nats)", hue="nonlinearity")
    figures.caption(fig, m.metrics["gain_bn"].n, "each nonlinearity with its Kaiming gain")


register(Claim(
    id="tanh.relu-deep",
    statement="'For very deep networks, ReLU typically works a bit better' than tanh",
    source=Source("L", "200"), measure=measure_relu_deep, figure=figure_relu_deep, runs=ARMS,
    rules=Rules(
        reproduced=(NeedsSteps(SWEEP_STEPS),
                    *(Above(gain, "a loss gain worth the name") for gain in GAINS)),
        partly=(NeedsSteps(SWEEP_STEPS), Above("gain_bn", "a loss gain worth the name"),
                Above("gain_bn_long", "a loss gain worth the name")),
        partly_means="ReLU is better with BN, the lecture's motif (L:199-201), by {gain_bn}, "
                     "but not without BN ({gain_plain})"),
    headline="gain_bn",
    # a difference, not "below": the sign is the finding (negative: ReLU ends above tanh)
    finding=f"At {DEPTH} layers " "tanh's val loss minus ReLU's is {gain_bn} with BN and "
            "{gain_plain} without ({gain_bn_long:mean} and {gain_plain_long:mean} at twice the "
            "steps).",
))
