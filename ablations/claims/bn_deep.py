"""bn, the deep network: BatchNorm in the lecture's 5-layer tanh network (L:123, L:241,
L:349-361, L:373). Diagnostics are read where the lecture reads them, after 1,000 steps; final
losses at the lecture's 200,000 steps; deeper stacks, which the lecture never trained, at the
deep sweeps' stated length with their convergence control."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ablations import figures
from ablations.checks import Above, Below, Exact, Monotone, Near, NeedsSteps, Negligible
from ablations.context import LECTURE_DIAG_STEPS, LECTURE_STEPS, Context
from ablations.experiments import deep
from ablations.experiments.batchnorm import final_losses
from ablations.experiments.normalised import (
    LECTURE_BN,
    NETWORKS,
    final_losses_figure,
    log_axis,
    per_member,
    ratio_band,
    ratio_points,
    seedwise,
    settled_ratios,
    shortest,
    step0_losses,
    sweep_runs,
    sweep_table,
    tanh_stats,
    unigram_entropy,
)
from ablations.experiments.runs import Trained, deep_run
from ablations.measurement import Measurement, Metric
from ablations.registry import Claim, Source, measures, register
from ablations.verdicts import Rules

FLOOR, CEILING = ("update ratio: floor of the decent range",
                  "update ratio: ceiling of the decent range")
UNAFFECTED, STD_065 = "a tanh std unaffected by the gain", "the BN net's tanh std 0.65"
SAME_LOSS, LOSS_GAIN = "practically identical loss", "a loss gain worth the name"


# --- bn.gain-robust ----------------------------------------------------------------------------

GAINS = (0.2, 0.5, 1.0, 5 / 3, 3.0)
GAIN_NETS = {"bn": "BN, after 1,000 steps", "bn_init": "BN, at init",
             "plain_init": "no BN, at init"}


def ratio_name(gain: float) -> str:
    return f"ratio_g{round(100 * gain):03d}"


RATIOS_FALL = Monotone(tuple(ratio_name(g) for g in GAINS), increasing=False)
LOW_GAIN_TOO_FAST = Above(ratio_name(0.2), CEILING)


@measures(std_shift="", std_shift_init="", **{ratio_name(g): "log10" for g in GAINS})
def measure_gain_robust(ctx: Context, runs: dict[str, Trained], gains: tuple[float, ...],
                        low: float, usual: float) -> Measurement:
    """Tanh std (mean of the 5 layers) and settled update ratios of the Linear weights against
    the gain of every Linear, with BN before each tanh; without BN at init for scale."""
    stds = pd.concat([tanh_stats(runs[k]).assign(network=v) for k, v in GAIN_NETS.items()])
    stds = per_member(stds, "std")
    ratios = settled_ratios(runs["bn_updates"])
    ratios = per_member(ratios[ratios.linear], "ratio").assign(network=GAIN_NETS["bn"])

    def shift(key: str) -> Metric:
        rows = stds[stds.network == GAIN_NETS[key]]
        return Metric.of(seedwise(rows, "std", gain=low) - seedwise(rows, "std", gain=usual))

    metrics = {"std_shift": shift("bn"), "std_shift_init": shift("bn_init"),
               **{ratio_name(g): Metric.of(seedwise(ratios, "ratio", gain=g), "log10")
                  for g in gains}}
    table = stds.merge(ratios, how="left", on=["member", "seed", "gain", "network"])
    return Measurement(table.drop(columns=["member"]), metrics, steps=runs["bn"].steps)


def figure_gain_robust(m: Measurement, fig: Figure) -> None:
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    figures.lines(left, m.table, x="gain", y="std", hue="network")
    figures.reference(left, 0.65, "lecture's BN net (L:354)")
    left.set(title="Tanh std (mean of 5 layers)", ylabel="std of tanh output")
    figures.lines(right, m.table.dropna(subset=["ratio"]), x="gain", y="ratio")
    ratio_band(right)
    right.set(title="Update ratios with BN", ylabel="log10 update:data, steps 500-1,000")
    for ax, corner in ((left, "lower right"), (right, "lower left")):
        log_axis(ax, GAINS)
        ax.set_xlabel("gain of every Linear")
        figures.legend(ax, loc=corner)
    figures.caption(fig, m.metrics["std_shift"].n)


register(Claim(
    id="bn.gain-robust",
    statement="With BN before every tanh the forward pass does not depend on the linear gain "
              "(e.g. 0.2) but the update ratios do, so the learning rate must be retuned",
    source=Source("L", "353-359"), measure=measure_gain_robust,
    runs={"bn": deep.after_diag(**LECTURE_BN, vary={"gain": GAINS}),
          "bn_updates": deep.with_update_ratios("diag", **LECTURE_BN, vary={"gain": GAINS}),
          "bn_init": deep.at_init(**LECTURE_BN, vary={"gain": GAINS}),
          "plain_init": deep.at_init(vary={"gain": GAINS})},
    grid={"gains": GAINS, "low": 0.2, "usual": 5 / 3},
    rules=Rules(
        reproduced=(NeedsSteps(LECTURE_DIAG_STEPS), Near("std_shift", UNAFFECTED),
                    Near("std_shift_init", UNAFFECTED), RATIOS_FALL, LOW_GAIN_TOO_FAST),
        partly=(NeedsSteps(LECTURE_DIAG_STEPS), Near("std_shift_init", UNAFFECTED),
                RATIOS_FALL, LOW_GAIN_TOO_FAST),
        partly_means="the forward pass is gain-free at init, but after 1,000 steps at lr 0.1 "
                     "gain 0.2 shifts the tanh std by {std_shift}: its larger updates take "
                     "the weights elsewhere",
        instead="gain 0.2 vs 5/3 shifts the tanh std by {std_shift_init} at init and "
                "{std_shift} after 1,000 steps; update ratios {ratio_g020} at 0.2, {ratio_g167} "
                "at 5/3"),
    headline="std_shift",
    finding="Gain 0.2 instead of 5/3 shifts the BN net's tanh std by {std_shift:mean} after "
            "1,000 steps ({std_shift_init:mean} at init); its update ratio is {ratio_g020:mean}, "
            "vs {ratio_g167:mean}.",
    figure=figure_gain_robust,
))


# --- bn.no-fan-in ------------------------------------------------------------------------------

LRS = (0.1, 1.0)
WEIGHTS = {"randn": "plain randn", "fan_in": "fan-in normalised"}
CASES = {"randn": "plain randn, lr 0.1", "randn_10x": "plain randn, lr 1",
         "fan_in": "fan-in normalised, lr 0.1"}
TRAINS_AS_WELL = Below(("val_randn_10x", "val_fan_in"), SAME_LOSS)


@measures(ratio_randn="log10", ratio_randn_10x="log10", ratio_fan_in="log10", val_randn="nats",
          val_randn_10x="nats", val_fan_in="nats", fastest_randn="log10",
          fastest_randn_10x="log10", slowest_randn_10x="log10")
def measure_no_fan_in(ctx: Context, runs: dict[str, Trained]) -> Measurement:
    """Settled update ratios of the Linear weights (mean, fastest, slowest) and the val loss
    after the lecture's 1,000 steps: plain randn weights (gain 1, no 1/sqrt(fan_in)) at lr 0.1
    and 1.0, and the fan-in-normalised net at lr 0.1 for reference."""
    def by_case(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
        frame = pd.concat([f.assign(weights=WEIGHTS[k]) for k, f in frames.items()])
        return frame.assign(case=frame.weights + ", lr " + frame.lr.map("{:g}".format))

    ratios = by_case({k: settled_ratios(r) for k, r in runs.items()})
    losses = by_case({k: r.losses_frame() for k, r in runs.items()})
    linear = ratios[ratios.linear]
    table = per_member(linear, "ratio").merge(losses[["member", "seed", "case", "val_loss"]])
    metrics = {}
    for key, case in CASES.items():
        metrics[f"ratio_{key}"] = Metric.of(seedwise(table, "ratio", case=case), "log10")
        metrics[f"val_{key}"] = Metric.of(seedwise(table, "val_loss", case=case), "nats")
    for name, how, key in (("fastest_randn", "max", "randn"),
                           ("fastest_randn_10x", "max", "randn_10x"),
                           ("slowest_randn_10x", "min", "randn_10x")):
        metrics[name] = Metric.of(seedwise(linear, "ratio", how, case=CASES[key]), "log10")
    return Measurement(table.drop(columns=["member"]), metrics, frames={"ratios": ratios},
                       steps=shortest(runs))


def figure_no_fan_in(m: Measurement, fig: Figure) -> None:
    ax = fig.add_subplot()
    ratio_points(ax, m.frames["ratios"], "case", "BN, no fan-in normalisation: update ratios, "
                 "steps 500-1,000")
    figures.legend(ax, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figures.caption(fig, m.metrics["ratio_randn"].n)


register(Claim(
    id="bn.no-fan-in",
    statement="With BN and no fan-in normalisation training still works but updates fall below "
              "-3; 10x the learning rate restores about -3",
    source=Source("L", "359-361"), measure=measure_no_fan_in,
    runs={"randn": deep.with_update_ratios("diag", **LECTURE_BN, fan_in_norm=False, gain=1.0,
                                           vary={"lr": LRS}),
          "fan_in": deep.with_update_ratios("diag", **LECTURE_BN, gain=1.0, vary={"lr": LRS[:1]})},
    rules=Rules(
        reproduced=(NeedsSteps(LECTURE_DIAG_STEPS), Below("fastest_randn", FLOOR),
                    Above("slowest_randn_10x", FLOOR), Below("fastest_randn_10x", CEILING),
                    TRAINS_AS_WELL),
        partly=(NeedsSteps(LECTURE_DIAG_STEPS), Below("fastest_randn", FLOOR), TRAINS_AS_WELL),
        partly_means="without fan-in normalisation the updates fall below -3 and 10x the lr "
                     "trains as well as the normalised net, but leaves the Linear weights at "
                     "{slowest_randn_10x:mean} to {fastest_randn_10x:mean}, not all in the "
                     "decent range",
        instead="plain randn weights give update ratios {ratio_randn} at lr 0.1 and "
                "{ratio_randn_10x} at lr 1.0 (normalised: {ratio_fan_in}); val loss "
                "{val_randn_10x} at lr 1.0 vs {val_fan_in} normalised"),
    headline="ratio_randn_10x",
    finding="Without 1/sqrt(fan_in) the Linear updates settle at {ratio_randn:mean} (lr 0.1) "
            "and {ratio_randn_10x:mean} (lr 1.0); val loss {val_randn_10x:mean} vs "
            "{val_fan_in:mean} normalised.",
    figure=figure_no_fan_in,
))


# --- bn.deep-homogeneous -----------------------------------------------------------------------

EVERY_LAYER_065 = tuple(Near(f"std_{how}", STD_065) for how in ("mean", "min", "max"))


@measures(std_mean="", std_min="", std_max="", spread_bn="", spread_plain="",
          ratio_mean="log10", ratio_min="log10", ratio_max="log10")
def measure_deep_homogeneous(ctx: Context, runs: dict[str, Trained]) -> Measurement:
    """Per-layer tanh std and per-parameter settled update ratios after the lecture's 1,000
    steps (gain 5/3), with BN and without."""
    stds = pd.concat([tanh_stats(runs[k]).assign(network=v) for k, v in NETWORKS.items()])
    ratios = pd.concat([settled_ratios(runs[f"{k}_updates"]).assign(network=v)
                        for k, v in NETWORKS.items()])
    bn = NETWORKS["bn"]
    metrics = {f"std_{how}": Metric.of(seedwise(stds, "std", how, network=bn))
               for how in ("mean", "min", "max")}
    metrics |= {f"ratio_{how}": Metric.of(seedwise(ratios, "ratio", how, network=bn), "log10")
                for how in ("mean", "min", "max")}
    metrics |= {f"spread_{k}": Metric.of(seedwise(stds, "std", "max", network=v)
                                         - seedwise(stds, "std", "min", network=v))
                for k, v in NETWORKS.items()}
    return Measurement(stds.drop(columns=["member"]), metrics, frames={"ratios": ratios},
                       steps=shortest(runs))


def figure_deep_homogeneous(m: Measurement, fig: Figure) -> None:
    ax = fig.add_subplot(1, 2, 1)
    figures.lines(ax, m.table, x="layer", y="std", hue="network")
    figures.reference(ax, 0.65, "lecture (L:354)")
    ax.set(title="Tanh std per layer", xlabel="tanh layer (1: nearest the input)",
           ylabel="std of tanh output", xticks=sorted(m.table.layer.unique()))
    figures.legend(ax, loc="upper right")
    ax = fig.add_subplot(1, 2, 2)
    ratio_points(ax, m.frames["ratios"], "network", "Update ratios, steps 500-1,000")
    figures.legend(ax, loc="upper left")
    figures.caption(fig, m.metrics["std_mean"].n, "gain 5/3, after the lecture's 1,000 steps")


register(Claim(
    id="bn.deep-homogeneous",
    statement="With BN before every tanh, every tanh layer sits at std about 0.65, the update "
              "ratios a little above -3, and all parameters train at roughly the same rate",
    source=Source("L", "354-355"), measure=measure_deep_homogeneous,
    runs={"bn": deep.after_diag(**LECTURE_BN), "plain": deep.after_diag(),
          "bn_updates": deep.with_update_ratios("diag", **LECTURE_BN),
          "plain_updates": deep.with_update_ratios("diag")},
    rules=Rules(
        reproduced=(NeedsSteps(LECTURE_DIAG_STEPS), *EVERY_LAYER_065,
                    Above("ratio_mean", "the update-ratio guide -3"),
                    Below("ratio_max", CEILING), Above("ratio_min", FLOOR),
                    Below(("spread_bn", "spread_plain"), 0.0)),
        partly=(NeedsSteps(LECTURE_DIAG_STEPS), *EVERY_LAYER_065),
        partly_means="every tanh layer sits at about 0.65 ({std_min:mean} to {std_max:mean}), "
                     "but the update ratios (mean {ratio_mean}, {ratio_min:mean} to "
                     "{ratio_max:mean}) or the comparison without BN do not match the lecture",
        instead="with BN the tanh layers' std runs from {std_min} to {std_max} (spread "
                "{spread_bn} vs {spread_plain} without BN); update ratios from {ratio_min} to "
                "{ratio_max}"),
    headline="std_mean",
    finding="With BN the tanh layers sit at std {std_mean:mean} ({std_min:mean}-{std_max:mean}); "
            "update ratios {ratio_min:mean} to {ratio_max:mean} (mean {ratio_mean:mean}).",
    figure=figure_deep_homogeneous,
))


# --- bn.last-layer-gamma -----------------------------------------------------------------------

SCALES = (1.0, 0.1, 0.01)
ARMS = {"BN last: scale W": (True, "weight_scale"), "BN last: scale gamma": (True, "gamma_scale"),
        "no BN last: scale W": (False, "weight_scale")}
GAMMA_SETS_SCALE = (Above(("loss_bn", "loss_gamma"), LOSS_GAIN),
                    Negligible(("loss_bn_shrunk", "loss_bn"), SAME_LOSS),
                    Above(("loss_plain", "loss_plain_shrunk"), LOSS_GAIN))


@measures(loss_gamma="nats", loss_bn="nats", loss_bn_shrunk="nats", loss_plain="nats",
          loss_plain_shrunk="nats")
def measure_last_layer_gamma(ctx: Context, scales: tuple[float, ...], shrink: float,
                             gain: float) -> Measurement:
    """Step-0 loss of the deep network (BN before every tanh, the notebook's gain 1.0) on each
    seed's first batch, with the last Linear's weight or the last BN's gamma scaled; the same
    network without a last BN for control. Same parameters and batch in every arm."""
    data = ctx.splits().train
    table = pd.concat([pd.DataFrame({"arm": arm, "scale": s, "seed": ctx.seeds,
                                     "step0_loss": step0_losses(ctx.seeds, data, last_bn,
                                                                gain=gain, **{what: s})})
                       for arm, (last_bn, what) in ARMS.items() for s in scales])

    def loss(arm: str, scale: float) -> Metric:
        return Metric.of(seedwise(table, "step0_loss", arm=arm, scale=scale), "nats")

    bn, gamma, plain = ARMS
    return Measurement(table, {"loss_gamma": loss(gamma, shrink), "loss_bn": loss(bn, 1.0),
                               "loss_bn_shrunk": loss(bn, shrink),
                               "loss_plain": loss(plain, 1.0),
                               "loss_plain_shrunk": loss(plain, shrink)})


def figure_last_layer_gamma(m: Measurement, fig: Figure) -> None:
    ax = fig.add_subplot()
    figures.lines(ax, m.table, x="scale", y="step0_loss", hue="arm")
    figures.reference(ax, 3.2870, "notebook, gamma x 0.1")
    ax.axhline(math.log(27), color="0.5", linestyle=":", linewidth=1, label="ln 27 (uniform)")
    log_axis(ax, SCALES)
    ax.set(title="Step-0 loss with the last layer scaled", xlabel="scale factor",
           ylabel="step-0 loss (nats)")
    figures.legend(ax)
    figures.caption(fig, m.metrics["loss_gamma"].n, "one batch of 32 per seed, as at step 0")


register(Claim(
    id="bn.last-layer-gamma",
    statement="With BN after the last layer, shrinking the last Linear's weight no longer makes "
              "the softmax less confident: the output scale is BN's gamma's",
    source=Source("L", "350"), measure=measure_last_layer_gamma,
    grid={"scales": SCALES, "shrink": 0.1, "gain": 1.0},
    rules=Rules(
        reproduced=(Near("loss_gamma", "the notebook's step-0 loss 3.2870"), *GAMMA_SETS_SCALE),
        partly=GAMMA_SETS_SCALE,
        partly_means="with a last BN only gamma sets the output scale, but gamma x 0.1 gives a "
                     "step-0 loss of {loss_gamma}, not the notebook's 3.2870",
        instead="with a last BN, W x 0.1 gives {loss_bn_shrunk} vs {loss_bn}, gamma x 0.1 "
                "{loss_gamma}; without it W x 0.1 gives {loss_plain_shrunk} vs {loss_plain}"),
    headline="loss_gamma",
    finding="With a last BN, W x 0.1 leaves the step-0 loss at {loss_bn_shrunk:mean} (vs "
            "{loss_bn:mean}); gamma x 0.1 brings it to {loss_gamma:mean}; without it W x 0.1 "
            "gives {loss_plain_shrunk:mean}.",
    figure=figure_last_layer_gamma,
))


# --- bn.placement and bn.context-bottleneck: the lecture's length -------------------------------

STANDARD = deep_run("lecture", **LECTURE_BN)  # gain 5/3, lr 0.1 then 0.01 from 150,000
PLACEMENTS = {"before": "before tanh\n+ last BN\n(standard)", "after": "after tanh\n+ last BN",
              "no_last": "before tanh,\nno last BN"}


@measures(val_before="nats", after_cost="nats", last_cost="nats")
def measure_placement(ctx: Context, runs: dict[str, Trained]) -> Measurement:
    """Val loss of the deep network with BN in each place, trained as in the lecture."""
    losses = final_losses(runs, **PLACEMENTS)
    val = {k: np.asarray(losses.metrics[f"val_{k}"].samples) for k in PLACEMENTS}
    losses.metrics = {"val_before": Metric.of(val["before"], "nats"),
                      "after_cost": Metric.of(val["after"] - val["before"], "nats"),
                      "last_cost": Metric.of(val["before"] - val["no_last"], "nats")}
    return losses


def figure_placement(m: Measurement, fig: Figure) -> None:
    right = final_losses_figure(fig, m, "run", {"after tanh\n- before": "after_cost",
                                                "last BN\n- none": "last_cost"})
    figures.reference(right, 0.0, "lecture: very similar, fine")
    figures.legend(right)


register(Claim(
    id="bn.placement",
    statement="BN right after the linear layer is standard; after the nonlinearity gives very "
              "similar results; after the last layer is fine too",
    source=Source("L", "349-350"), measure=measure_placement,
    runs={"before": STANDARD,
          "after": deep_run("lecture", batchnorm="after", batchnorm_last=True),
          "no_last": deep_run("lecture", batchnorm="before", batchnorm_last=False)},
    rules=Rules(
        reproduced=(NeedsSteps(LECTURE_STEPS), Negligible("after_cost", SAME_LOSS),
                    Below("last_cost", SAME_LOSS)),
        partly=(NeedsSteps(LECTURE_STEPS), Negligible("after_cost", SAME_LOSS)),
        partly_means="BN after the tanh gives practically the same val loss ({after_cost}), but "
                     "a BN after the last layer costs {last_cost}",
        instead="BN after the tanh changes the val loss by {after_cost} and a last BN by "
                "{last_cost} (standard placement: {val_before})"),
    headline="after_cost",
    finding="BN after the tanh changes the val loss by {after_cost:mean} nats, a BN after the "
            "last layer by {last_cost:mean} (standard: {val_before:mean}).",
    figure=figure_placement,
))


CONDITIONS = {"block3": "3 characters", "block6": "6 characters",
              "longer": "3 characters,\ntwice the steps"}


@measures(val_block3="nats", context_gain="nats", optimisation_gain="nats",
          context_over_training="nats")
def measure_context_bottleneck(ctx: Context, runs: dict[str, Trained]) -> Measurement:
    """Val loss of the BN deep network at the lecture's context and length, with twice the
    context, and with twice the training (the same schedule, stretched): what each gains, and
    how much more the context gains than the training."""
    losses = final_losses(runs, **CONDITIONS)
    val = {k: np.asarray(losses.metrics[f"val_{k}"].samples) for k in CONDITIONS}
    losses.metrics = {"val_block3": Metric.of(val["block3"], "nats"),
                      "context_gain": Metric.of(val["block3"] - val["block6"], "nats"),
                      "optimisation_gain": Metric.of(val["block3"] - val["longer"], "nats"),
                      "context_over_training": Metric.of(val["longer"] - val["block6"], "nats")}
    return losses


def figure_context_bottleneck(m: Measurement, fig: Figure) -> None:
    right = final_losses_figure(fig, m, "run", {"twice the\ncontext": "context_gain",
                                                "twice the\ntraining": "optimisation_gain"})
    right.set_ylabel("val loss gained (nats)")
    figures.legend(right)


register(Claim(
    id="bn.context-bottleneck",
    statement="The network is now limited by its context (3 characters), not by optimisation",
    source=Source("L", "373"), measure=measure_context_bottleneck,
    runs={"block3": STANDARD, "block6": deep_run("lecture", **LECTURE_BN, block_size=6),
          "longer": deep_run(2 * LECTURE_STEPS, **LECTURE_BN)},
    rules=Rules(
        reproduced=(NeedsSteps(LECTURE_STEPS), Above("context_gain", LOSS_GAIN),
                    Below("optimisation_gain", LOSS_GAIN)),
        partly=(NeedsSteps(LECTURE_STEPS), Above("context_gain", LOSS_GAIN),
                Above("context_over_training", 0.0)),
        partly_means="twice the context gains more ({context_gain}) than twice the training, "
                     "but twice the training still gains {optimisation_gain}: optimisation is "
                     "not exhausted either",
        instead="twice the context gains {context_gain}, twice the training "
                "{optimisation_gain} (val loss at the lecture's setting {val_block3})"),
    headline="context_gain",
    finding="Twice the context (6 characters) lowers the val loss by {context_gain:mean} nats; "
            "twice the training by {optimisation_gain:mean} (from {val_block3:mean}).",
    figure=figure_context_bottleneck,
))


# --- bn.deeper-nets ----------------------------------------------------------------------------

DEPTHS = (5, 20, 50)
LENGTHS = {"sweep": deep.SWEEP_STEPS, "control": deep.CONTROL_STEPS}
ADVANTAGE_AT_DEPTH = (NeedsSteps(deep.SWEEP_STEPS), Exact("failures_bn", "no failed run"),
                      Above("advantage_50", LOSS_GAIN), Above("advantage_50_long", LOSS_GAIN))


@measures(advantage_5="nats", advantage_50="nats", advantage_5_long="nats",
          advantage_50_long="nats", failures_bn="runs", failed_plain_50="", loss_bn_50="nats",
          unigram="nats")
def measure_deeper_nets(ctx: Context, runs: dict[str, Trained],
                        depths: tuple[int, ...]) -> Measurement:
    """Final train loss (whole split) of the stacks. A run that did not train (loss not finite
    or no better than the unigram entropy) counts at the unigram entropy: it is worth no more
    than that model. advantage = loss without BN - loss with BN, paired by seed."""
    floor = unigram_entropy(ctx.splits().train[1])
    table = sweep_table(runs, floor)

    def loss(arm: str, depth: int, run: str = "sweep") -> np.ndarray:
        return seedwise(table, "loss", arm=arm, depth=depth, run=run)

    def advantage(depth: int, run: str) -> Metric:
        return Metric.of(loss("plain", depth, run) - loss("bn", depth, run), "nats")

    high = max(depths)
    metrics = {f"advantage_{depth}{tag}": advantage(depth, run) for depth in (min(depths), high)
               for run, tag in (("sweep", ""), ("control", "_long"))}
    metrics |= {"failures_bn": Metric.exact(table[table.arm == "bn"].failed.sum(), "runs"),
                "failed_plain_50": Metric.of(seedwise(table, "failed", arm="plain", depth=high,
                                                      run="sweep")),
                "loss_bn_50": Metric.of(loss("bn", high), "nats"),
                "unigram": Metric.exact(floor, "nats")}
    return Measurement(table.drop(columns=["member", "arm", "run"]), metrics, steps=shortest(runs))


def figure_deeper_nets(m: Measurement, fig: Figure) -> None:
    t = m.table.assign(failed=m.table.failed.astype(float))
    panels = (("loss", "Final train loss", "nats (a failed run: the unigram entropy)"),
              ("failed", "Runs that did not train", "fraction of seeds"))
    for i, (value, title, ylabel) in enumerate(panels):
        ax = fig.add_subplot(1, 2, i + 1)
        figures.lines(ax, t, x="depth", y=value, hue="network", style="length", markers=False)
        log_axis(ax, DEPTHS)
        ax.set(title=title, xlabel="hidden layers (gain 5/3, lr 0.1)", ylabel=ylabel)
    left, right = fig.axes
    figures.reference(left, m.metrics["unigram"].mean, "unigram entropy")
    left.legend(handles=left.lines[-1:], fontsize=7)
    figures.legend(right, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figures.caption(fig, m.metrics["advantage_50"].n)


register(Claim(
    id="bn.deeper-nets",
    statement="BN made it possible to train much deeper networks reliably",
    source=Source("L", "123, 241"), measure=measure_deeper_nets,
    runs=sweep_runs(DEPTHS, LENGTHS),
    grid={"depths": DEPTHS},
    rules=Rules(
        reproduced=(*ADVANTAGE_AT_DEPTH, Above(("advantage_50", "advantage_5"), 0.0),
                    Above(("advantage_50_long", "advantage_5_long"), 0.0)),
        partly=ADVANTAGE_AT_DEPTH,
        partly_means="BN trains the 50-layer net reliably and better than without it "
                     "({advantage_50}), but no more so than at depth 5 ({advantage_5}): it helps "
                     "at every depth rather than making depth possible",
        instead="at 50 layers BN lowers the train loss by {advantage_50} ({advantage_50_long} "
                "at twice the steps; {advantage_5} at 5 layers); {failures_bn:mean} BN runs and "
                "{failed_plain_50:pct} of 50-layer runs without BN did not train"),
    headline="advantage_50",
    finding="At 50 layers BN lowers the train loss by {advantage_50:mean} nats (5 layers: "
            "{advantage_5:mean}); {failed_plain_50:pct} of no-BN and {failures_bn:mean} BN runs "
            "did not train.",
    figure=figure_deeper_nets,
))
