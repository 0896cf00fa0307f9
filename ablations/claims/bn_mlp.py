"""bn (part 1): batch normalisation itself and in the one-hidden-layer MLP (L:124-184,
L:224-231, L:260-265, L:368); the deep-network BN claims are in bn_deep.py.

Claims about the trained BN MLP read the lecture's run, `mlp_run("batchnorm")` (200,000 steps;
running std, momentum 0.001, no eps, unbiased std), against the same MLP without BN,
`mlp_run("kaiming")`, on the same seeds and batches. A loss difference is judged with the
shared "practically identical loss" wherever it appears. Each claim's measurement, with the
reasons for how it is done, is the function of ablations/experiments/batchnorm.py it names.
"""

from __future__ import annotations

from itertools import product
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ablations import figures
from ablations.checks import Above, Below, Exact, Near, NeedsSteps, Negligible
from ablations.context import LECTURE_DIAG_STEPS, LECTURE_STEPS
from ablations.experiments import batchnorm as bn
from ablations.experiments.deep import CONTROL_STEPS, SWEEP_STEPS, after_diag
from ablations.experiments.runs import deep_run, mlp_run
from ablations.registry import Claim, Source, measures, register
from ablations.verdicts import Rules

BN, NO_BN = mlp_run("batchnorm"), mlp_run("kaiming")  # the lecture's MLP with and without BN
DEEP_BN: dict[str, Any] = {"batchnorm": "before", "batchnorm_last": True}  # the lecture's, BN
TRAINED = NeedsSteps(LECTURE_STEPS)
SAME, GAIN = "practically identical loss", "a loss gain worth the name"
CANCELLED, F64 = "the rounding bound of a cancelled sum", "float64 agreement of two implementations"
LOGIT, STATISTIC = "float32 resolution of a logit", "float32 resolution of a statistic"
NOISE, ZERO = "the noise of one batch's statistics", "exactly zero"


def plot_points(fig: Figure, frame: pd.DataFrame, x: str, panels: dict[str, str], title: str,
                n: int, hue: str | None = None, reference: tuple[float, str] | None = None,
                log: tuple[str, ...] = (), extra: str = "") -> None:
    """Means over seeds with their CIs (and every seed) by category x, one panel per column of
    `panels` (column -> axis label); the source's value as a reference line on the last."""
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (y, label) in zip(axes, panels.items(), strict=True):
        figures.points(ax, frame, x=x, y=y, hue=hue)
        ax.set(xlabel="", ylabel=label, yscale="log" if y in log else "linear")
        ax.tick_params(axis="x", labelsize=7 if len(panels) > 1 else 9)
    if reference:
        figures.reference(axes[-1], *reference)
    figures.legend(axes[-1], loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(title)
    figures.caption(fig, n, extra)


def plot_curves(fig: Figure, frame: pd.DataFrame, y: str, title: str, ylabel: str, n: int,
                theory: tuple[np.ndarray, str], hue: str | None = None,
                reference: tuple[float, str] | None = None, extra: str = "") -> None:
    """Means over seeds with their CI bands against the batch size, log-log, with theory."""
    ax = fig.add_subplot()
    figures.lines(ax, frame, x="batch", y=y, hue=hue)
    ax.plot(np.sort(frame.batch.unique()), theory[0], ":", color="0.2", label=theory[1])
    if reference:
        figures.reference(ax, *reference)
    ax.set(xscale="log", yscale="log", xlabel="batch size B", ylabel=ylabel, title=title)
    figures.legend(ax, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figures.caption(fig, n, extra)


register(Claim(
    id="bn.standardise", source=Source("L", "127-132, 136"),
    statement="Standardising over the batch makes every unit exactly zero-mean, unit-std on "
              "that batch",
    measure=measures(worst_mean_ulps="ulps", worst_std_ulps="ulps")(bn.standardisation),
    grid={"batches": (2, 3, 8, 32, 256, 1024), "widths": (1, 7, 200),
          "inputs": ((0.0, 1.0, "normal"), (3.0, 0.01, "normal"), (-50.0, 2.0, "normal"),
                     (0.0, 100.0, "normal"), (1.0, 1.0, "exponential"))},
    rules=Rules(reproduced=(Exact("worst_mean_ulps", "rounding of a batch standardisation"),
                            Exact("worst_std_ulps", "rounding of a batch standardisation"))),
    headline="worst_std_ulps",
    finding="Every unit's batch mean is 0 and its std 1 (in the convention BN divides by) to "
            "{worst_mean_ulps:mean} and {worst_std_ulps:mean} ulps, over batches of 2-1,024.",
    figure=lambda m, fig: plot_points(
        fig, m.table.groupby(["seed", "batch", "dtype"], as_index=False).error_ulps.max(),
        "batch", {"error_ulps": "worst unit's error (ulps of its conditioning)"}, "BN's output "
        "per unit: batch mean 0 and std 1, to rounding", m.table.seed.nunique(), hue="dtype",
        reference=(64, "bound"), log=("error_ulps",), extra="x: batch size"),
))

register(Claim(
    id="bn.mlp", source=Source("L", "139-141"), runs={"bn": BN, "no_bn": NO_BN},
    statement="BN in the one-hidden-layer MLP reaches val loss about 2.10, no better: the "
              "shallow net was already calibrated",
    measure=measures(val_bn="nats", val_no_bn="nats")(
        lambda ctx, runs: bn.final_losses(runs, bn="with BN", no_bn="without BN (Kaiming)")),
    rules=Rules(reproduced=(TRAINED, Near("val_bn", "the lecture's val loss 2.10"),
                            Below(("val_no_bn", "val_bn"), GAIN)),
                partly=(TRAINED, Below(("val_no_bn", "val_bn"), GAIN)),
                partly_means="BN brings no gain over the same MLP without it ({val_no_bn}), but "
                             "its val loss {val_bn} is not the lecture's 2.10 at two decimals",
                instead="BN improves on the MLP without it: {val_bn} vs {val_no_bn}"),
    headline="val_bn",
    finding="With BN the MLP ends at val loss {val_bn}; without BN at {val_no_bn} (same seeds "
            "and batches).",
    figure=lambda m, fig: plot_points(
        fig, m.table, "run", {"val_loss": "val loss (nats)"}, "One-hidden-layer MLP after "
        f"{m.steps:,} steps", m.metrics["val_bn"].n, reference=(2.10, "lecture (one run)"),
        extra=f"the notebook's seed: {m.table.val_loss.iloc[0]:.4f} (the notebook printed 2.1057)"),
))

register(Claim(
    id="bn.coupling", source=Source("L", "146-151"), runs={"bn": BN, "no_bn": NO_BN},
    statement="BN makes an example's output depend on the other examples of its batch (jitter)",
    measure=measures(jitter_b32="nats", jitter_eval="nats", jitter_no_bn="nats")(bn.jitter),
    grid={"batches": (8, 32, 128), "examples": 8},
    rules=Rules(reproduced=(TRAINED, Above("jitter_b32", LOGIT), Exact("jitter_eval", LOGIT),
                            Exact("jitter_no_bn", LOGIT))),
    headline="jitter_b32",
    finding="With batch statistics an example's logits jitter by {jitter_b32} over random "
            "batches of 32; in eval mode and without BN by {jitter_eval:mean} and "
            "{jitter_no_bn:mean}.",
    figure=lambda m, fig: plot_curves(
        fig, bn.rows(m.table, condition="batch statistics"), "jitter", "One example's logits "
        "over random batch companions", "std of its logits (nats)", m.metrics["jitter_b32"].n,
        (m.metrics["jitter_b32"].mean * np.sqrt(32 / np.sort(m.table.batch.unique())),
         "1/sqrt(B) through B = 32"), extra=f"at B = 32: eval mode "
        f"{m.metrics['jitter_eval'].mean:.1e}, no BN {m.metrics['jitter_no_bn'].mean:.1e}"),
))

ARMS = ("Whole data: gap {gap_bn} with BN vs {gap_no_bn} without, val loss {val_bn} vs "
        "{val_no_bn}; 1,024 examples: gap {small_gap_bn} vs {small_gap_no_bn}, val loss "
        "{small_val_bn} vs {small_val_no_bn} (10k steps), {long_val_bn} vs {long_val_no_bn} (20k)")
register(Claim(
    id="bn.regulariser", source=Source("L", "152-153"),
    statement="That jitter acts as a regulariser, like data augmentation",
    runs={"bn": BN, "no_bn": NO_BN, **{
        p + c: mlp_run("batchnorm" if c == "bn" else "kaiming", steps, subset=bn.SUBSET)
        for (p, steps), c in product((("small_", SWEEP_STEPS), ("long_", CONTROL_STEPS)),
                                     ("bn", "no_bn"))}},
    measure=measures(**{f"{p}{q}_{c}": "nats" for p, q, c in product(
        bn.SETTINGS, ("gap", "val"), ("bn", "no_bn"))})(bn.regularisation),
    rules=Rules(
        reproduced=(TRAINED, *(Below((f"{p}gap_bn", f"{p}gap_no_bn"), 0.0) for p in bn.SETTINGS),
                    *(Above((f"{p}val_no_bn", f"{p}val_bn"), GAIN) for p in ("small_", "long_"))),
        partly=(TRAINED, Below(("gap_bn", "gap_no_bn"), 0.0)),
        partly_means="BN narrows the lecture's train-val gap but does not regularise where "
                     "the MLP overfits. " + ARMS,
        instead="BN does not narrow the lecture's train-val gap. " + ARMS),
    headline="gap_bn",
    finding="Train-val gap {gap_bn:mean} with BN vs {gap_no_bn:mean} without on the whole data; "
            "on 1,024 examples {small_gap_bn:mean} vs {small_gap_no_bn:mean}, val loss "
            "{small_val_bn:mean} vs {small_val_no_bn:mean}.",
    figure=lambda m, fig: plot_points(
        fig, m.table, "setting", {"gap": "val loss - train loss (nats)"}, "Train-val gap with "
        "and without BN", m.metrics["gap_bn"].n, hue="config", log=("gap",),
        extra="control: the same MLP without BN, same seeds, steps and batches"),
))

register(Claim(
    id="bn.calibrate", source=Source("L", "157-162"), runs={"bn": BN},
    statement="After training, stats estimated once over the whole training set allow "
              "single-example inference with the same loss",
    measure=measures(val_calibrated="nats", val_own_split="nats", alone="nats", batched="nats",
                     val_batch32="nats")(bn.calibration),
    rules=Rules(reproduced=(TRAINED, Negligible(("val_calibrated", "val_own_split"), SAME),
                            Negligible(("alone", "batched"), SAME))),
    headline="val_calibrated",
    finding="Calibrated statistics give val loss {val_calibrated}, as the split normalised as "
            "one batch ({val_own_split:mean}); its first examples alone {alone:mean}, batched "
            "{batched:mean}.",
    figure=lambda m, fig: plot_points(
        fig, m.table[m.table.whole_split], "statistics",
        {"val_loss": "val loss (nats)"}, "The trained BN MLP's val loss by the statistics BN "
        "normalises with", m.metrics["val_calibrated"].n),
))

register(Claim(
    id="bn.running-stats", source=Source("L", "163-176"), runs={"bn": BN},
    statement="Running mean/std (momentum 0.001) end 'very similar, not identical' to the "
              "calibrated ones; val loss basically identical",
    measure=measures(mean_error="sd", std_error="sd", largest_difference="sd", std_ratio="",
                     val_running="nats", val_calibrated="nats")(bn.running_statistics),
    rules=Rules(reproduced=(
        TRAINED, Above("largest_difference", STATISTIC), Below("mean_error", NOISE),
        Below("std_error", NOISE),
        Negligible(("val_running", "val_calibrated"), SAME)),
        instead="running buffers {mean_error} (mean) and {std_error} (std) from the calibrated "
                "ones; val loss {val_running} vs {val_calibrated}"),
    headline="mean_error",
    finding="The running buffers end {mean_error:mean} sd (mean) and {std_error:mean} sd (std) "
            "from the calibrated ones, the std {std_ratio:mean}x (biased low); val loss "
            "{val_running:mean} vs {val_calibrated:mean}.",
    figure=lambda m, fig: plot_points(
        fig, m.table, "buffer", {"error": "RMS over units of running - calibrated (unit sd)"},
        f"Running vs calibrated statistics after {m.steps:,} steps", m.metrics["mean_error"].n,
        reference=(0.127, "noise of one batch's stats"), log=("error",),
        extra=f"val loss: running {m.metrics['val_running'].mean:.5f}, calibrated "
              f"{m.metrics['val_calibrated'].mean:.5f}"),
))

register(Claim(
    id="bn.epsilon", source=Source("L", "178"),
    statement="eps (1e-5) prevents division by zero when the batch variance is 0, and "
              "otherwise changes results negligibly",
    runs={"eps": after_diag(**DEEP_BN), "no_eps": after_diag(**DEEP_BN, bn_eps=0.0)},
    measure=measures(nonfinite_eps0="", nonfinite_eps="", val_eps="nats", val_no_eps="nats")(
        bn.epsilon),
    grid={"values": (0.0, 1.0, 0.1, -3.7, 1 / 3, 1000.1), "batches": (2, 3, 32, 1000),
          "widths": (1, 4)},
    rules=Rules(reproduced=(NeedsSteps(LECTURE_DIAG_STEPS), Above("nonfinite_eps0", ZERO),
                            Exact("nonfinite_eps", ZERO),
                            Negligible(("val_eps", "val_no_eps"), SAME)),
                instead="constant batches: {nonfinite_eps0:pct} non-finite without eps, "
                        "{nonfinite_eps:pct} with it; val loss {val_eps} with eps, {val_no_eps} "
                        "without"),
    headline="nonfinite_eps",
    finding="Constant batches: {nonfinite_eps0:pct} of outputs nan/inf without eps, "
            "{nonfinite_eps:pct} with eps 1e-5; the deep BN net after 1,000 steps: val loss "
            "{val_eps:mean} with eps, {val_no_eps:mean} without.",
    figure=lambda m, fig: plot_points(
        fig, m.table, "run", {"val_loss": "val loss (nats)"}, "The lecture's deep BN network "
        "after 1,000 steps, by eps", m.metrics["val_eps"].n, extra="constant batches: "
        f"{m.metrics['nonfinite_eps0'].mean:.0%} non-finite outputs without eps, "
        f"{m.metrics['nonfinite_eps'].mean:.0%} with 1e-5"),
))

register(Claim(
    id="bn.bias-zero-grad", source=Source("L", "182-184"),
    statement="A bias before BN is subtracted out: its gradient is exactly zero and it never "
              "learns",
    runs={"b1": mlp_run("batchnorm", b1=0.01), "bn": BN},
    measure=measures(grad_f32="x bound", grad_f64="x bound", control="x bound",
                     trained_grad="x bound", b1_moved="", val_b1="nats", val_bn="nats")(
        bn.bias_before_bn),
    grid={"shapes": ((2, 30, 200), (32, 30, 200), (32, 100, 27), (512, 30, 200), (4096, 10, 8))},
    rules=Rules(reproduced=(
        TRAINED, *(Exact(g, CANCELLED) for g in ("grad_f32", "grad_f64", "trained_grad")),
        Above("control", CANCELLED), Exact("b1_moved", "a bias that did not learn"),
        Negligible(("val_b1", "val_bn"), SAME)),
        instead="the bias gradient reaches {grad_f32:mean} (float32), {grad_f64:mean} (float64) "
                "and {trained_grad:mean} (trained) of the rounding bound, {control:mean} without "
                "BN; b1 moved {b1_moved:mean} as far as beta; val loss {val_b1} with b1, "
                "{val_bn} without"),
    headline="grad_f32",
    finding="Through BN the bias gradient is rounding only (at most {grad_f32:mean} of its "
            "bound; {control:mean}x it without BN); over training b1 moved {b1_moved:mean} as "
            "far as BN's beta.",
    figure=lambda m, fig: plot_points(
        fig, m.table.groupby(["seed", "case"], as_index=False).over_bound.max(), "case",
        {"over_bound": "|b.grad| / rounding bound (worst unit and shape)"}, "The gradient of a "
        "bias before BN", m.metrics["val_b1"].n, reference=(1.0, "rounding bound"),
        log=("over_bound",)),
))

THRASH = (TRAINED, Above(("err_m01_b32", "err_m0001_b32"), 0.0),
          Below(("err_m01_b512", "err_m01_b32"), 0.0),
          Negligible(("val_m0001_b32", "val_calibrated"), SAME),
          Negligible(("val_m01_b512", "val_calibrated"), SAME))
register(Claim(
    id="bn.momentum", source=Source("L", "224-227"), runs={"bn": BN},
    statement="With batch 32, momentum 0.1 makes the running stats thrash; 0.001 converges; "
              "with a large batch 0.1 is fine",
    measure=measures(err_m01_b32="sd", err_m0001_b32="sd", err_m01_b512="sd",
                     val_m01_b32="nats", val_m0001_b32="nats", val_m01_b512="nats",
                     val_calibrated="nats")(bn.momentum),
    grid={"replayed": ((0.1, 32), (0.1, 512))},
    rules=Rules(
        reproduced=(*THRASH, Negligible(("val_m01_b32", "val_calibrated"), SAME, negate=True)),
        partly=THRASH,
        partly_means="momentum 0.1 at batch 32 leaves the running mean {err_m01_b32} off "
                     "(0.001: {err_m0001_b32}), but the val loss with it, {val_m01_b32}, is "
                     "practically the calibrated {val_calibrated}: the thrashing shows in the "
                     "buffers, not in the loss",
        instead="running-mean error {err_m01_b32} at 0.1 and {err_m0001_b32} at 0.001 (batch "
                "32), {err_m01_b512} at 0.1 (batch 512); val loss {val_m01_b32}, "
                "{val_m0001_b32}, {val_m01_b512} vs calibrated {val_calibrated}"),
    headline="err_m01_b32",
    finding="Running-mean error {err_m01_b32:mean} sd at momentum 0.1 vs {err_m0001_b32:mean} "
            "at 0.001 (batch 32), {err_m01_b512:mean} at 0.1 with batch 512; val loss "
            "{val_m01_b32:mean}, {val_m0001_b32:mean}, {val_m01_b512:mean}.",
    figure=lambda m, fig: plot_points(
        fig, m.table, "condition", {"mean_error": "running-mean error (unit sd)",
                                    "val_cost": "val loss: running - calibrated (nats)"},
        "The trained BN MLP's running statistics by momentum m and batch B",
        m.metrics["val_calibrated"].n, reference=(0.005, "practically identical"),
        log=("mean_error",), extra="m 0.1: replayed on the trained network"),
))

SAME_CODE = tuple(Exact(n, F64) for n in ("torch_convention", "lecture_same", "linear_tanh"))
register(Claim(
    id="bn.pytorch-equivalence", source=Source("L", "231, 368"),
    statement="The hand-written BatchNorm1d (and Linear, Tanh) has the API of torch.nn and "
              "\"the implementation is identical\"",
    measure=measures(torch_convention="relative", lecture_same="relative",
                     linear_tanh="relative", lecture_closed_form="relative",
                     lecture_train="relative", lecture_train_b32="relative")(bn.torch_equivalence),
    grid={"batches": (2, 8, 32, 128, 1024), "dim": 100},
    rules=Rules(
        reproduced=(*SAME_CODE, Exact("lecture_train", F64)),
        partly=(*SAME_CODE, Exact("lecture_closed_form", F64)),
        partly_means="identical in eval mode, in its buffers, and in Linear (weight stored "
                     "transposed) and Tanh; in training mode the lecture's BatchNorm1d divides "
                     "by the unbiased batch std where torch.nn divides by the biased one, so its "
                     "outputs are torch's times sqrt((B-1)/B): {lecture_train_b32:pct} smaller "
                     "at batch 32, {lecture_train:pct} at batch 2"),
    headline="lecture_train_b32",
    finding="torch's convention matches torch.nn to {torch_convention:mean}; the lecture's "
            "BatchNorm1d trains {lecture_train_b32:pct} smaller at batch 32 (unbiased variance) "
            "and matches in eval mode.",
    figure=lambda m, fig: plot_curves(
        fig, m.table, "difference", "Against torch.nn, float64", "worst relative difference "
        "(1e-18: equal)", m.metrics["lecture_train_b32"].n, (1 - np.sqrt(
            1 - 1 / np.sort(m.table.batch.unique())), "1 - sqrt((B-1)/B)"), hue="compared",
        reference=(1e-10, "agreement bound")),
))

AFFINE = {"mlp": "MLP", "mlp_plain": "MLP, no gain/bias", "deep": "deep",
          "deep_plain": "deep, no gain/bias"}
register(Claim(
    id="bn.affine", source=Source("L", "133, 228"),
    statement="BN without its learnable gain and bias (units forced to stay unit Gaussian) "
              "\"won't achieve a very good result\"; the affine part is \"almost always kept\"",
    runs={"mlp": BN, "mlp_plain": mlp_run("batchnorm", bn_affine=False),
          "deep": deep_run(**DEEP_BN), "deep_plain": deep_run(**DEEP_BN, bn_affine=False,
                                                               last_scale=1.0)},
    measure=measures(**{f"val_{k}": "nats" for k in AFFINE})(
        lambda ctx, runs: bn.final_losses(runs, **AFFINE)),
    rules=Rules(reproduced=(TRAINED, Above(("val_mlp_plain", "val_mlp"), GAIN),
                            Above(("val_deep_plain", "val_deep"), GAIN)),
                partly=(TRAINED, Above(("val_mlp_plain", "val_mlp"), GAIN)),
                partly_means="without gain and bias the MLP ends worse ({val_mlp_plain} vs "
                             "{val_mlp}), the deep net not ({val_deep_plain} vs {val_deep})",
                instead="without gain and bias: MLP {val_mlp_plain} vs {val_mlp}, deep net "
                        "{val_deep_plain} vs {val_deep}"),
    headline="val_mlp_plain",
    finding="Without BN's gain and bias the MLP ends at val loss {val_mlp_plain:mean} "
            "({val_mlp:mean} with them), the deep net at {val_deep_plain:mean} "
            "({val_deep:mean}).",
    figure=lambda m, fig: plot_points(
        fig, m.table, "run", {"val_loss": "val loss (nats)"}, f"After {m.steps:,} steps, BN "
        "with and without its gain and bias", m.metrics["val_mlp"].n,
        extra="without a gain the deep net has no gamma to shrink the last BN at init"),
))

register(Claim(
    id="bn.init-unit-gaussian", source=Source("L", "124, 166"),
    statement="At the lecture's init each pre-activation is \"roughly unit Gaussian\" (mean "
              "about 0, std about 1), which is why the running mean and std start at 0 and 1",
    measure=measures(unit_mean="", unit_std="", control_mean="", control_std="")(
        bn.init_statistics),
    rules=Rules(reproduced=(Near("unit_mean", "roughly zero"), Near("unit_std", "roughly one")),
                partly=(Near("unit_mean", "roughly zero"),),
                partly_means="the units are centred (|mean| {unit_mean}) but their std is "
                             "{unit_std}, not about 1",
                instead="a unit's |mean| is {unit_mean} and its std {unit_std} (plain randn: "
                        "{control_mean}, {control_std})"),
    headline="unit_std",
    finding="At the lecture's init a pre-activation unit has |mean| {unit_mean:mean} and std "
            "{unit_std:mean} over the training set; plain randn W1, b1 give {control_mean:mean} "
            "and {control_std:mean}.",
    figure=lambda m, fig: plot_points(
        fig, m.table, "statistic", {"value": "over the training set, mean over units"},
        "Pre-activation units at init", m.metrics["unit_std"].n, hue="init",
        reference=(1.0, "unit std"), log=("value",)),
))

register(Claim(
    id="bn.buffer-init", source=Source("L", "260"),
    statement="The running mean and variance buffers are initialised with zeros",
    measure=measures(mean_init="", var_init="", eval_change="relative", zero_var_blowup="x")(
        bn.buffer_init),
    rules=Rules(reproduced=(Exact("mean_init", ZERO), Exact("var_init", ZERO)),
                partly=(Exact("mean_init", ZERO),),
                partly_means="running_mean starts at 0, running_var at {var_init:mean} (the "
                             "lecture's class and torch.nn alike): eval mode before any update "
                             "changes an input by {eval_change:mean}; a zero variance would "
                             "multiply it by {zero_var_blowup:mean}"),
    headline="var_init",
    finding="A fresh BatchNorm1d, the lecture's and torch.nn's, holds running_mean "
            "{mean_init:mean} and running_var {var_init:mean}: zeros and ones.",
    figure=lambda m, fig: plot_points(
        fig, m.table, "buffer", {"init": "initial value"}, "A fresh BatchNorm1d's buffers", 1,
        hue="layer",
        reference=(0.0, "L:260: zeros"), extra="deterministic; the lecture's class and torch.nn "
        "agree"),
))

register(Claim(
    id="bn.buffers-no-grad", source=Source("L", "165, 265"),
    statement="Updating the running buffers outside torch.no_grad makes torch build a "
              "computational graph for them: wasted work, same numbers",
    measure=measures(nodes_graph="", nodes_no_grad="", memory_graph="KiB", memory_no_grad="KiB",
                     ms_graph="ms", ms_no_grad="ms", max_difference="")(bn.buffer_update),
    grid={"steps": 100},
    rules=Rules(reproduced=(Above("nodes_graph", ZERO), Exact("nodes_no_grad", ZERO),
                            Above(("memory_graph", "memory_no_grad"), ZERO),
                            Exact("max_difference", ZERO))),
    headline="nodes_graph",
    finding="Outside no_grad the buffers keep a {nodes_graph:mean}-node graph after 200 steps "
            "and memory grows {memory_graph:mean} KiB a step ({memory_no_grad:mean} inside); "
            "numbers differ by {max_difference:mean}.",
    figure=lambda m, fig: plot_points(
        fig, m.table, "update", {"memory_kib_per_step": "memory growth (KiB per step)",
                                 "ms_per_step": "time (ms per step)"}, "Deep BN network: "
        "buffer update in and outside torch.no_grad", m.metrics["ms_graph"].n,
        extra=f"{m.metrics['nodes_graph'].mean:,.0f} graph nodes kept outside no_grad"),
))
