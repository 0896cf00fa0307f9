"""init: the output layer and the loss at initialisation (L:20-44, L:83). The MLP at its first
step and at init, the training split, the Gaussian-logit theory and the loss helpers come from
ablations.experiments.mlp; the loss-log runs are the shared 200,000-step runs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from ablations import figures
from ablations.checks import Above, Below, Exact, Monotone, Near, NeedsSteps, Negligible, Predicted
from ablations.context import LECTURE_STEPS, Context
from ablations.experiments import mlp
from ablations.experiments.runs import Trained, mlp_run
from ablations.measurement import Measurement, Metric
from ablations.registry import Claim, Source, measures, register
from ablations.verdicts import Rules

LN_27 = math.log(27)
PLAIN = mlp.first_step("original")  # the lecture's plain-randn init at its first iteration


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
    source=Source("L", "22-23"), measure=measure_expected_loss, figure=figure_expected_loss,
    grid={"vocab_sizes": VOCAB_SIZES},
    rules=Rules(reproduced=(Near("uniform_loss_v27", "ln 27 as 3.29"),
                            Exact("worst_error_ulps", "rounding of a few operations"))),
    headline="uniform_loss_v27",
    finding="Uniform logits cost ln V for every V and label: {uniform_loss_v27} at V = 27, "
            "within {worst_error_ulps:mean} ulps of ln V.",
))

# --- init.naive-loss ----------------------------------------------------------------------------


@measures(step0_loss="nats", init_loss="nats", confidence="", p_label="")
def measure_naive_loss(ctx: Context, runs: dict[str, Trained]) -> Measurement:
    """Plain-randn MLP: the first iteration's batch loss (the lecture's reading); at init over
    the training split the loss, the top class's and the label's probability, and the theory's
    loss of Gaussian logits of the same scale (a random ranking)."""
    split = mlp.on_split(ctx, mlp.at_init(ctx, PLAIN))
    probs = split.logits.double().softmax(-1)
    table = runs["plain"].members.assign(
        step0_loss=mlp.first_batch(runs["plain"]).loss, init_loss=split.loss(),
        predicted_loss=mlp.predicted_loss(split, 1.0, 1.0),
        confidence=(probs.max(-1).values * split.weights).sum(1) / split.weights.sum(),
        p_label=(probs * split.counts).sum((1, 2)) / split.weights.sum())
    metrics = {name: Metric.of(table[name], "nats" if "loss" in name else "")
               for name in ("step0_loss", "init_loss", "confidence", "p_label")}
    return Measurement(table, metrics, {"init_loss": float(table.predicted_loss.mean())})


def figure_naive_loss(m: Measurement, fig: Figure) -> None:
    ax = fig.add_subplot()
    names = {"step0_loss": "step 0 (batch of 32)", "init_loss": "at init (training split)",
             "predicted_loss": "random logits, same scale"}
    figures.points(ax, mlp.long_form(m.table, names, "loss"), x="what", y="loss")
    figures.reference(ax, 27.0, "lecture, step 0")
    mlp.uniform_line(ax)
    ax.set(title="Plain-randn MLP: loss at init", xlabel="", ylabel="cross-entropy (nats)",
           ylim=(0, None))
    figures.legend(ax, loc="center right")
    figures.caption(fig, m.metrics["step0_loss"].n)


EXTREME_LOGITS = (
    Predicted("init_loss", k=3.0, why="the loss is what logits of that scale give with a random "
                                      "ranking: the scale, not the ranking, makes it high"),
    Above("confidence", "more than half", why="confident: the top class gets most probability"),
)

register(Claim(
    id="init.naive-loss",
    statement="The plain-randn MLP records a step-0 loss near 27, far above 3.29, because its "
              "logits are extreme ('confidently wrong')",
    source=Source("L", "20, 24, 34"), measure=measure_naive_loss, figure=figure_naive_loss,
    runs={"plain": PLAIN},
    rules=Rules(
        reproduced=(Near("step0_loss", "the lecture's step-0 loss 27"), *EXTREME_LOGITS),
        partly=EXTREME_LOGITS,
        partly_means="the loss at init is high because the logits are extreme ({init_loss}), "
                     "but the first iteration's loss is {step0_loss}, not about 27"),
    headline="step0_loss",
    finding="Step-0 loss {step0_loss}; at init the training split costs {init_loss:mean} nats; "
            "the top class gets {confidence:pct} of the probability, the label {p_label:pct}.",
))

# --- init.equal-logits --------------------------------------------------------------------------

EQUAL_CONSTANTS = (-3.4e38, -1e30, -100.0, -1.0, 0.0, 0.5, 1.0, 5.0, 100.0, 1e30, 3.4e38)
EQUAL_VOCABS = (2, 4, 27, 100)


@measures(loss_v4="nats", worst_error_ulps="ulps", unequal_label_range="nats")
def measure_equal_logits(ctx: Context, constants: tuple[float, ...],
                         vocabs: tuple[int, ...]) -> Measurement:
    """Every label of V equal logits c (float32's finite range), both dtypes and ways of computing
    the loss, against ln V. Control: four logits N(0, 0.5^2), one draw per seed."""
    table = mlp.equal_logit_losses(constants, vocabs)
    control = [mlp.label_range(0.5 * mlp.random_logits(seed, 1, 4)[0][0]) for seed in ctx.seeds]
    at_v4 = table.query("vocab_size == 4 and constant == 0 and dtype == 'float32'")
    return Measurement(table, {
        "loss_v4": Metric.exact(at_v4.loss.iloc[0], "nats"),
        "worst_error_ulps": Metric.exact(table.error_ulps.max(), "ulps", kind="numerics"),
        "unequal_label_range": Metric.of(control, "nats")})


def figure_equal_logits(m: Measurement, fig: Figure) -> None:
    ax = fig.add_subplot()
    t = m.table[m.table.dtype == "float32"].assign(c=lambda t: [f"{c:.3g}" for c in t.constant])
    for colour, (vocab, rows) in zip(figures.palette(t.vocab_size.nunique()),
                                     t.groupby("vocab_size"), strict=True):
        ax.plot(rows.c, rows.loss, "o", color=colour, label=f"V = {vocab}")
        ax.axhline(math.log(vocab), color=colour, linewidth=0.8, alpha=0.6)
    figures.reference(ax, 1.38, "lecture (V = 4)")
    ax.set(title="Equal logits cost ln V whatever the constant and the label (float32)",
           xlabel="the constant c of every logit", ylabel="worst loss over the labels (nats)")
    ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    figures.legend(ax, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figures.caption(fig, 1, "every constant, label and route; lines: ln V")


register(Claim(
    id="init.equal-logits",
    statement="Equal logits (any constant, not only zero) give the uniform loss whatever the "
              "label: 4 classes give 1.386",
    source=Source("L", "25-26, 31-32"), measure=measure_equal_logits, figure=figure_equal_logits,
    grid={"constants": EQUAL_CONSTANTS, "vocabs": EQUAL_VOCABS},
    rules=Rules(reproduced=(
        Near("loss_v4", "ln 4 as 1.38"),
                    Exact("worst_error_ulps", "rounding of a few operations",
                          why="the softmax subtracts the largest logit, so equal logits become "
                              "exactly 0 whatever the constant"),
                    Negligible("unequal_label_range", "practically identical loss", negate=True,
                               why="control: unequal logits must make the label matter")),
    ),
    headline="loss_v4",
    finding="Equal logits are within {worst_error_ulps:mean} ulps of ln V for every finite "
            "float32 constant, V and label; V = 4 gives {loss_v4}; unequal ones vary by "
            "{unequal_label_range:mean} nats with the label.",
))

# --- init.logit-scale ---------------------------------------------------------------------------

LOGIT_SCALES = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0)
SCALE_LOSSES = tuple(mlp.metric_name("loss_s", s) for s in LOGIT_SCALES)


@measures(**dict.fromkeys(SCALE_LOSSES, "nats"), inf_share="", library_inf_share="",
          inf_point="log10 std")
def measure_logit_scale(ctx: Context, scales: tuple[float, ...]) -> Measurement:
    """Float32 logits s * z, z ~ N(0, 1)^27 with random labels (one draw per seed for every s):
    the mean loss by s; the share of inf losses computed as the lecture does (-log softmax,
    L:30-31) and as training does; the s where half the lecture's are inf, against float32."""
    sweeps = [mlp.logit_scale_sweep(seed, ctx.profile.samples, scales) for seed in ctx.seeds]
    table = pd.concat([rows for rows, _ in sweeps], ignore_index=True)
    point = pd.DataFrame([inf for _, inf in sweeps])
    top = table[table.scale == max(scales)]
    metrics = {name: Metric.of(table[table.scale == s].loss, "nats")
               for name, s in zip(SCALE_LOSSES, scales, strict=True)}
    metrics.update(inf_share=Metric.of(top.inf_share), inf_point=Metric.of(point.inf_point,
                   "log10 std"), library_inf_share=Metric.of(top.library_inf_share))
    theory = dict(zip(SCALE_LOSSES, mlp.gaussian_logit_loss(np.array(scales)), strict=True))
    return Measurement(table, metrics, {**theory, "inf_point": point.predicted.mean()})


def figure_logit_scale(m: Measurement, fig: Figure) -> None:
    ax, bx = fig.subplots(1, 2)
    figures.lines(ax, m.table, x="scale", y="loss")
    ax.plot(LOGIT_SCALES, [m.predictions[n] for n in SCALE_LOSSES], color="0.3", linestyle=":",
            label="theory: iid Gaussian logits")
    mlp.uniform_line(ax)
    mlp.plain_log_axis(ax, "x")
    mlp.plain_log_axis(ax, "y")
    ax.set(title="Expected loss vs logit scale", xlabel="logit std s",
           ylabel="mean cross-entropy (nats)")
    figures.legend(ax)
    figures.lines(bx, mlp.long_form(m.table, {"inf_share": "-log softmax (lecture)",
                                              "library_inf_share": "F.cross_entropy"}, "share",
                                    ("seed", "scale")), x="scale", y="share", hue="what")
    bx.axvline(10 ** m.predictions["inf_point"], color="0.3", linestyle=":",
               label="float32 theory: half inf")
    mlp.plain_log_axis(bx, "x")
    bx.set(title="Losses that are inf (float32)", xlabel="logit std s", ylabel="share of draws",
           ylim=(-0.02, 1.02))
    figures.legend(bx, loc="upper left")
    figures.caption(fig, m.metrics["inf_share"].n)


RISES = Monotone(SCALE_LOSSES)

register(Claim(
    id="init.logit-scale",
    statement="Larger random logits give higher expected loss at init; extreme ones can give inf",
    source=Source("L", "28-31"), measure=measure_logit_scale, figure=figure_logit_scale,
    grid={"scales": LOGIT_SCALES},
    rules=Rules(
        reproduced=(RISES, Above("inf_share", 0.0, why="computed as the lecture does, some "
                                                       "losses at logit std 100 are inf")),
        partly=(RISES,),
        partly_means="the loss rises with the scale, but no loss is inf up to logit std 100 "
                     "(lecture's way {inf_share:pct}, F.cross_entropy {library_inf_share:pct})"),
    headline="loss_s10",
    finding="The mean loss is {loss_s1:mean} at logit std 1, {loss_s10:mean} at 10, "
            "{loss_s100:mean} at 100; computed as the lecture does, half the losses are inf from "
            "std 10^{inf_point:mean}; F.cross_entropy: {library_inf_share:pct} at 100.",
))

# --- init.output-fix ----------------------------------------------------------------------------

W2_SCALES = (1.0, 0.1, 0.01)  # L:37 tries 0.1 ("much closer"), L:40-41 settles on 0.01
W2_LOSSES = tuple(mlp.metric_name("init_loss_w2_", s) for s in W2_SCALES)
OUTPUT_SCALED = mlp.first_step("original", b2=0.0, vary={"w2": W2_SCALES})


@measures(step0_loss="nats", **dict.fromkeys(W2_LOSSES, "nats"))
def measure_output_fix(ctx: Context, runs: dict[str, Trained]) -> Measurement:
    """Plain-randn MLP, b2 = 0, W2 = randn * w2: the first iteration's loss at W2 x 0.01 (the
    lecture's reading); for each w2 the training-split loss at init and its Gaussian theory."""
    run = runs["scaled"]
    split = mlp.on_split(ctx, mlp.at_init(ctx, OUTPUT_SCALED))
    table = run.members.assign(step0_loss=mlp.first_batch(run).loss, init_loss=split.loss(),
                               predicted_loss=mlp.predicted_loss(split, run.members.w2, 0.0))
    rows = {n: table[np.isclose(table.w2, s)] for n, s in zip(W2_LOSSES, W2_SCALES, strict=True)}
    metrics = {name: Metric.of(r.init_loss, "nats") for name, r in rows.items()}
    metrics["step0_loss"] = Metric.of(rows[W2_LOSSES[-1]].step0_loss, "nats")  # W2 x 0.01
    return Measurement(table, metrics, {n: r.predicted_loss.mean() for n, r in rows.items()})


def figure_output_fix(m: Measurement, fig: Figure) -> None:
    ax = fig.add_subplot()
    t = m.table.assign(W2=[f"randn x {w:g}" for w in m.table.w2])
    figures.points(ax, mlp.long_form(t, {"step0_loss": "step 0 (batch of 32)", "init_loss":
                                         "training split at init"}, "loss", ("seed", "W2")),
                   x="W2", y="loss", hue="what")
    theory = t.drop_duplicates("w2")
    ax.plot(theory.W2, theory.predicted_loss, "_", color="0.2", markersize=18,
            label="theory: Gaussian logits")
    figures.reference(ax, 3.29, "lecture, about")
    mlp.plain_log_axis(ax)
    ax.set(title="Loss at init vs the output layer's scale (b2 = 0)", xlabel="W2 init",
           ylabel="cross-entropy (nats, log)")
    figures.legend(ax)
    figures.caption(fig, m.metrics["step0_loss"].n)


FALLS = Monotone(W2_LOSSES, increasing=False)

register(Claim(
    id="init.output-fix",
    statement="b2=0 and W2 scaled by 0.01 bring the step-0 loss to about 3.29",
    source=Source("L", "36-37, 41"), measure=measure_output_fix, figure=figure_output_fix,
    runs={"scaled": OUTPUT_SCALED},
    rules=Rules(
        reproduced=(Near("step0_loss", "about ln 27 at step 0"), FALLS),
        partly=(FALLS,),
        partly_means="shrinking W2 brings the loss at init down toward ln 27 "
                     "({init_loss_w2_0_01} at 0.01), but the step-0 loss is {step0_loss}"),
    headline="step0_loss",
    finding="With b2 = 0 and W2 x 0.01 the step-0 loss is {step0_loss}; over the training split "
            "the loss at init is {init_loss_w2_1:mean} at W2 x 1, {init_loss_w2_0_1:mean} at 0.1, "
            "{init_loss_w2_0_01:mean} at 0.01.",
))

# --- init.zero-weights --------------------------------------------------------------------------

SYMMETRY_STEPS = 1_000  # every gradient of the all-zero net is exactly 0: any length shows it
ZERO_HIDDEN = mlp_run("fix-softmax", SYMMETRY_STEPS, w1=0.0, b1=0.0, vary={"w2": (0.0, 0.01)},
                      decay=None)


@measures(step0_loss="nats", step0_error_ulps="ulps", val_zero_minus_small="nats",
          symmetric_change="", distinct_units_zero="units", distinct_units_small="units")
def measure_zero_weights(ctx: Context, runs: dict[str, Trained]) -> Measurement:
    """W2 = 0, b2 = 0: the first iteration's loss vs ln 27; the val loss after 200,000 steps vs
    W2 x 0.01, seed by seed. Symmetry control, W1 = b1 = 0 too: with W2 = 0 nothing but b2 ever
    changes; W2 x 0.01 makes the hidden units differ."""
    zero, small, hidden = runs["zero"], runs["small"], runs["zero_hidden"]
    step0 = mlp.first_batch(runs["first"]).loss.astype(np.float64)
    after = mlp.parameters(hidden.model)
    change = mlp.largest_change(mlp.parameters(mlp.at_init(ctx, ZERO_HIDDEN)), after,
                                ("C", "W1", "b1", "W2"))  # all but b2, which does learn
    units, is_zero = mlp.distinct_units(after["W1"]), hidden.members.w2.to_numpy() == 0.0
    table = pd.concat([zero.losses_frame().assign(hidden="randn", w2=0.0),
                       small.losses_frame().assign(hidden="randn", w2=0.01),
                       hidden.losses_frame().assign(hidden="zero", change=change,
                                                    distinct_units=units)], ignore_index=True)
    error = np.abs(step0 - LN_27).max() / mlp.unit_in_last_place(LN_27, torch.float32)
    metrics = {
        "step0_loss": Metric.of(step0, "nats"),
        "step0_error_ulps": Metric.exact(error, "ulps", "numerics"),
        "val_zero_minus_small": Metric.of(zero.val_loss - small.val_loss, "nats"),
        "symmetric_change": Metric.of(change[is_zero]),
        "distinct_units_zero": Metric.of(units[is_zero], "units"),
        "distinct_units_small": Metric.of(units[~is_zero], "units")}
    return Measurement(table, metrics, steps=min(zero.steps, small.steps))


def figure_zero_weights(m: Measurement, fig: Figure) -> None:
    ax, bx = fig.subplots(1, 2)
    t = m.table.assign(W2=[f"x {w:g}" for w in m.table.w2])
    figures.points(ax, t[t.hidden == "randn"], x="W2", y="val_loss")
    ax.set(title=f"Random hidden layer: val loss\nafter {m.steps:,} steps", xlabel="W2 init",
           ylabel="val loss (nats)")
    figures.points(bx, t[t.hidden == "zero"], x="W2", y="distinct_units")
    bx.set(title="Zero hidden layer (W1 = b1 = 0):\ndistinct hidden units after training",
           xlabel="W2 init", ylabel="distinct W1 columns (of 200)", ylim=(0, 210))
    figures.caption(fig, m.metrics["step0_loss"].n, f"W2 = 0 at step 0: "
                    f"{m.metrics['step0_loss'].mean:.6f} nats; ln 27 = {LN_27:.6f}")


SYMMETRY = (
    NeedsSteps(LECTURE_STEPS),
    Near("step0_loss", "ln 27 as 3.29"),
    Exact("step0_error_ulps", "rounding of a few operations", why="zero logits give ln 27"),
    Exact("symmetric_change", "exactly zero", why="with W1 = b1 = W2 = 0 nothing but b2 learns"),
    Above(("distinct_units_small", "distinct_units_zero"), 0.0, why="W2 x 0.01 breaks symmetry"),
)

register(Claim(
    id="init.zero-weights",
    statement="W2 exactly 0 gives exactly ln 27 but is advised against; small non-zero weights "
              "break symmetry",
    source=Source("L", "38, 40-41"), measure=measure_zero_weights, figure=figure_zero_weights,
    runs={"first": mlp.first_step("fix-softmax", w2=0.0), "zero": mlp_run("fix-softmax", w2=0.0),
          "small": mlp_run("fix-softmax"), "zero_hidden": ZERO_HIDDEN},
    rules=Rules(
        reproduced=(*SYMMETRY, Negligible("val_zero_minus_small", "practically identical loss",
                                          why="L:40: for the output layer zero 'might be fine'")),
        partly=SYMMETRY,
        partly_means="W2 = 0 gives ln 27 and all-zero weights never break symmetry, but for the "
                     "output layer W2 = 0 is not harmless: it ends {val_zero_minus_small} from "
                     "W2 x 0.01"),
    headline="step0_loss",
    finding="W2 = 0 gives {step0_loss:mean} nats at step 0 and ends {val_zero_minus_small} from "
            "W2 x 0.01; with W1 = b1 = 0 too, C, W1, b1, W2 move by {symmetric_change:mean}; "
            "W2 x 0.01 gives {distinct_units_small:mean} distinct units.",
))

# --- init.confident-right -----------------------------------------------------------------------

LARGE_LOGITS = (0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)  # L:28: "like five for instance"
TOY_VOCABS = (4, 27)  # the lecture's four-class example (L:25-29) and its 27 characters


@measures(loss_right="nats", loss_wrong="nats", uniform_loss="nats", top_share="",
          loss_top="nats")
def measure_confident_right(ctx: Context, large_logits: tuple[float, ...],
                            vocabs: tuple[int, ...]) -> Measurement:
    """The lecture's example, a logit of 5 on the label of 4 classes, and (control) on a wrong
    one; the curve over the logit and for 27 classes. At the plain-randn init over the training
    split: how often the label holds the top logit by chance, and its loss then."""
    table = pd.DataFrame([{"vocab_size": v, "logit": a, "on": on,
                           "loss": mlp.one_large_logit(v, a, on == "the label")}
                          for v in vocabs for a in large_logits
                          for on in ("the label", "a wrong class")])
    top_share, loss_top = mlp.label_on_top(mlp.on_split(ctx, mlp.at_init(ctx, PLAIN)))
    return Measurement(table, {
        "loss_right": Metric.exact(mlp.one_large_logit(4, 5.0, True), "nats"),
        "loss_wrong": Metric.exact(mlp.one_large_logit(4, 5.0, False), "nats"),
        "uniform_loss": Metric.exact(math.log(4), "nats"), "top_share": Metric.of(top_share),
        "loss_top": Metric.of(loss_top, "nats")})


def figure_confident_right(m: Measurement, fig: Figure) -> None:
    ax = fig.add_subplot()
    groups = m.table.groupby(["vocab_size", "on"], sort=False)
    for colour, ((vocab, on), rows) in zip(figures.palette(groups.ngroups), groups, strict=True):
        ax.plot(rows.logit, rows.loss, "o-", color=colour, label=f"V = {vocab}, on {on}")
    ax.axvline(5.0, color="0.15", linestyle="--", linewidth=1.1, label="lecture's example: 5")
    mlp.uniform_line(ax, 4)
    mlp.plain_log_axis(ax)
    ax.set(title="One large logit, all others 0", xlabel="the large logit",
           ylabel="cross-entropy (nats, log)")
    figures.legend(ax, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figures.caption(fig, 1, "closed form, no seeds")


register(Claim(
    id="init.confident-right",
    statement="A logit that happens to be large (say 5) on the correct label gives a very low "
              "loss at init: being confidently right by chance",
    source=Source("L", "28"), measure=measure_confident_right, figure=figure_confident_right,
    grid={"large_logits": LARGE_LOGITS, "vocabs": TOY_VOCABS},
    rules=Rules(
        reproduced=(Below("loss_right", "a confident guess"),
                    Above(("loss_wrong", "uniform_loss"), 0.0, why="control: the same logit on "
                          "a wrong class costs more than knowing nothing (L:29)"))),
    headline="loss_right",
    finding="Logit 5 on the label of 4 classes costs {loss_right}, on a wrong one {loss_wrong}; "
            "at the plain init the label tops the logits for {top_share:pct} of examples, at "
            "{loss_top:mean} nats.",
))

# --- init.hockey-stick --------------------------------------------------------------------------


@measures(blade_original="", blade_fix="", blade_steps="steps", val_original="nats",
          val_fix="nats", improvement="nats")
def measure_hockey_stick(ctx: Context, runs: dict[str, Trained]) -> Measurement:
    """The lecture's original and fix-softmax runs over seeds: the share of each run's loss drop
    above ln 27 (the blade), how long the original's lasts, and the final val losses."""
    original, fixed = runs["original"], runs["fix_softmax"]
    (share_o, steps_o), (share_f, _) = mlp.blade(original.losses), mlp.blade(fixed.losses)
    table = pd.concat([original.losses_frame().assign(init="original", blade=share_o),
                       fixed.losses_frame().assign(init="fix-softmax", blade=share_f)])
    metrics = {"blade_original": Metric.of(share_o), "blade_fix": Metric.of(share_f),
               "blade_steps": Metric.of(steps_o, "steps"), "val_fix": Metric.of(fixed.val_loss,
               "nats"), "val_original": Metric.of(original.val_loss, "nats"),
               "improvement": Metric.of(original.val_loss - fixed.val_loss, "nats")}
    curves = pd.concat([mlp.curve(original, init="original"), mlp.curve(fixed, init="fix-softmax")])
    return Measurement(table, metrics, frames={"curves": curves},
                       steps=min(original.steps, fixed.steps))


def figure_hockey_stick(m: Measurement, fig: Figure) -> None:
    ax, bx = fig.subplots(1, 2, width_ratios=(3, 2))
    figures.lines(ax, m.frames["curves"], x="step", y="loss", hue="init", markers=False)
    mlp.uniform_line(ax)
    mlp.plain_log_axis(ax)
    ax.set(title="Training loss (block means)", xlabel="step", ylabel="batch loss (nats, log)")
    figures.steps_axis(ax)
    figures.legend(ax)
    figures.points(bx, m.table, x="init", y="val_loss")
    figures.reference(bx, 2.17, "lecture, original")
    bx.axhline(2.13, color="0.6", linestyle="--", label="lecture, fix: 2.13")
    bx.set(title="Final val loss", xlabel="init", ylabel="val loss (nats)")
    figures.legend(bx)
    figures.caption(fig, m.metrics["val_fix"].n)


HOCKEY_SHAPE = (
    NeedsSteps(LECTURE_STEPS),
    Above("blade_original", "more than half",
          why="a hockey stick: most of the loss the run ever sheds is the free part above ln 27"),
    Below("blade_fix", "more than half", why="the fix removes the blade"),
    Above("improvement", "a loss gain worth the name", why="the fix lowers the final val loss"),
)

register(Claim(
    id="init.hockey-stick",
    statement="The bad init gives a hockey-stick loss curve whose first steps only squash logits; "
              "the fix removes it and improves the final val loss (2.17 -> 2.13)",
    source=Source("L", "42-44, 83"), measure=measure_hockey_stick, figure=figure_hockey_stick,
    runs={"original": mlp_run("original"), "fix_softmax": mlp_run("fix-softmax")},
    rules=Rules(
        reproduced=(*HOCKEY_SHAPE, Near("blade_steps", "several thousand iterations"),
                    Near("val_original", "the lecture's val loss 2.17"),
                    Near("val_fix", "the lecture's val loss 2.13")),
        partly=HOCKEY_SHAPE,
        partly_means="the hockey stick and the improvement ({improvement}) hold, but the blade "
                     "lasts {blade_steps:mean} steps and the val losses are {val_original:mean} "
                     "-> {val_fix:mean}"),
    headline="val_fix",
    finding="{blade_original:pct} of the original run's loss drop is the free part above ln 27, "
            "gone in {blade_steps:mean} steps ({blade_fix:pct} with the fix); val "
            "{val_original:mean} -> {val_fix}.",
))
