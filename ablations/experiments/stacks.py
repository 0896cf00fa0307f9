"""The bias notebook's deep linear stacks (N, cells 4-7), forward and backward at init, with the
theory that predicts them; and the 100-layer stack as a trainable network of the project.

The notebook's setup (N:23-34): a (1, 784) N(0,1) "image", 100 linear layers 784 -> 50 -> ... ->
50, batch 1, float32, `a.std()` printed after every layer. The input and then each layer's W are
drawn from the seed's generator, in the notebook's order; biases (and the backward pass's
readout) come from a second generator of the same seed, so that a stack with a bias and its
bias-free twin share input and weights exactly and compare seed by seed.

Inits: "normal" N(0,1) (cells 4-5); "notebook" every layer divided by sqrt(784), the 50-wide ones
too (cells 6-7, the notebook's "xavier"); "fan-in" divided by sqrt(fan_in), the correct scale
(1/sqrt(50) after the first layer); "kaiming" sqrt(2 / fan_in), for ReLU.

Theory (batch 1, W ~ N(0, 1/s), no bias): ||h_l||^2 = ||h_{l-1}||^2 chi2_w / s exactly, so ln rms
is a random walk whose steps have mean (psi(w/2) + ln 2 - ln s) / 2 and sd sqrt(psi'(w/2)) / 2.
With an N(0,1) bias the mean-field variance obeys v_l = (w/s) v_{l-1} + 1 (fixed point
1 / (1 - w/s) when w < s; v_0 + l when w = s, the correct fan-in).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ablations import figures
from ablations.context import Context
from ablations.experiments.runs import RunTemplate, Trained, deep_run
from ablations.measurement import NUMERICS, SCIENCE, Metric

INPUT, WIDTH, DEPTH = 28 * 28, 50, 100  # the notebook's m, nh and loop (N:24-30)
IMAGE, KERNEL = 28, 3  # the convolutional variant sees the input as 1 x 28 x 28, 3x3 kernels
BIAS_STREAM = 1_000_003  # the second generator's seed offset (biases, readout)
F32 = torch.finfo(torch.float32)
LOG10_F32_MAX = math.log10(F32.max)  # 38.53: beyond it a float32 is inf
LOG10_F32_TINY = math.log10(F32.tiny)  # -37.93: below it a float32 is subnormal, then 0

# a.std() after each layer as the notebook printed it (one unseeded run each; the outputs are cut
# off after 26, 26, 32 and 27 layers: N:40-65, N:83-108, N:130-161, N:178-204).
PRINTED_STD = {
    "cell 4": (26.1706, 188.7720, 1162.1053, 10019.8301, 63094.7305, 455544.75, 3361917.5,
               25106340.0, 1.8682e08, 1.3495e09, 9.3639e09, 6.4331e10, 4.3354e11, 2.6942e12,
               1.8670e13, 1.3257e14, 9.5434e14, 6.2041e15, 3.8465e16, 1.9924e17, 1.4602e18,
               1.0735e19, 6.6974e19, 4.8939e20, 3.6402e21, 2.4501e22),
    "cell 5": (22.5135, 157.3415, 1014.1555, 6892.7690, 42421.7539, 311417.0938, 2563695.5,
               17689588.0, 1.3575e08, 1.0693e09, 7.3240e09, 4.7974e10, 3.2171e11, 2.3479e12,
               1.6541e13, 1.2849e14, 9.0753e14, 5.6709e15, 3.5614e16, 2.2148e17, 1.4494e18,
               9.9376e18, 6.0428e19, 4.4832e20, 3.0153e21, 2.2223e22),
    "cell 6": (1.3213, 0.9710, 1.0783, 1.1460, 0.9311, 1.1002, 1.0311, 1.0027, 1.1469, 1.0446,
               1.0336, 1.1801, 1.0580, 1.1358, 1.0590, 0.8153, 0.9828, 0.9944, 0.9233, 1.0482,
               1.0281, 1.2260, 1.1781, 1.1089, 1.2104, 1.0585, 1.0125, 0.9085, 0.9092, 0.9785,
               0.9863, 0.8722),
    "cell 7": (0.9502, 0.2757, 0.0723, 0.0186, 0.0047, 0.0011, 0.0003, 7.7497e-05, 1.9835e-05,
               5.0685e-06, 1.2090e-06, 2.6407e-07, 6.7252e-08, 1.4054e-08, 3.3937e-09,
               7.8351e-10, 1.8582e-10, 5.6959e-11, 1.6890e-11, 3.9216e-12, 8.8020e-13,
               2.2054e-13, 6.0513e-14, 1.4695e-14, 3.8098e-15, 9.7716e-16, 2.5967e-16),
}


@dataclass(frozen=True)
class Stack:
    """One deep stack at init. relu: ReLU after every layer; batchnorm: F.batch_norm after every
    layer (training mode, no affine: needs batch > 1); conv: 3x3 convolutions with `width`
    channels on the input seen as 1 x 28 x 28."""

    init: str = "normal"
    bias: bool = False
    width: int = WIDTH
    depth: int = DEPTH
    batch: int = 1
    dtype: str = "float32"
    relu: bool = False
    batchnorm: bool = False
    conv: bool = False

    def fan_in(self, layer: int) -> int:
        if self.conv:
            return (1 if layer == 0 else self.width) * KERNEL * KERNEL
        return INPUT if layer == 0 else self.width

    def divisor(self, layer: int) -> float:
        """W = randn / divisor, divided in float32 as the notebook does."""
        fan = self.fan_in(layer)
        return {"normal": 1.0, "notebook": math.sqrt(INPUT), "fan-in": math.sqrt(fan),
                "kaiming": math.sqrt(fan / 2)}[self.init]

    @property
    def label(self) -> str:
        init = {"normal": "N(0,1)", "notebook": "/sqrt(784)", "fan-in": "/sqrt(fan_in)",
                "kaiming": "Kaiming"}[self.init]
        parts = [init, "+ bias" if self.bias else "", "ReLU" if self.relu else "",
                 "BN" if self.batchnorm else "", "conv" if self.conv else "",
                 f"width {self.width}" if self.width != WIDTH else "",
                 f"batch {self.batch}" if self.batch != 1 else "",
                 "float64" if self.dtype == "float64" else ""]
        return " ".join(p for p in parts if p)


CELL4, CELL5 = Stack(), Stack(bias=True)  # the notebook's cells, N:27-109 and N:117-205
CELL6, CELL7 = Stack(init="notebook", bias=True), Stack(init="notebook")
FAN_IN, FAN_IN_BIAS = Stack(init="fan-in"), Stack(init="fan-in", bias=True)  # the correct scale


def draw(stack: Stack, seed: int) -> tuple[torch.Tensor, list, list, torch.Tensor]:
    """Input, weights, biases (None without) and the backward pass's readout, float32. The
    readout comes first from the second generator, so a stack and its bias-free twin share it."""
    g = torch.Generator().manual_seed(seed)
    extra = torch.Generator().manual_seed(seed + BIAS_STREAM)
    x = torch.randn(stack.batch, INPUT, generator=g)
    image = (1, IMAGE, IMAGE) if stack.conv else ()
    readout = torch.randn(stack.batch, stack.width, *image[1:], generator=extra)
    weights, biases = [], []
    for layer in range(stack.depth):
        fan_out = stack.width
        shape = ((fan_out, stack.fan_in(layer) // KERNEL**2, KERNEL, KERNEL) if stack.conv
                 else (stack.fan_in(layer), fan_out))
        w = torch.randn(shape, generator=g)
        divisor = stack.divisor(layer)
        weights.append(w if divisor == 1.0 else w / divisor)
        biases.append(torch.randn(fan_out, generator=extra) if stack.bias else None)
    return x.view(stack.batch, *image) if stack.conv else x, weights, biases, readout


def layer(stack: Stack, a: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """The notebook's linear() (or a convolution), then BatchNorm if the stack has it."""
    if stack.conv:
        h = F.conv2d(a, w, padding=KERNEL // 2)
        h = h if b is None else h + b.view(1, -1, 1, 1)
    else:
        h = a @ w if b is None else a @ w + b
    return F.batch_norm(h, None, None, training=True) if stack.batchnorm else h


def rms(t: torch.Tensor) -> float:
    return t.double().pow(2).mean().sqrt().item()


def propagate(stack: Stack, seed: int, backward: bool = False) -> pd.DataFrame:
    """One row per layer (1 = next to the input): `std` is the notebook's a.std() in the stack's
    dtype; rms its exact (float64) rms; zero_share and subnormal_share, the shares of entries
    exactly 0 and subnormal; normalised_nan: whether a / a.std() has a nan (what normalising by
    that std would give); twin_rms and bias_part_rms: the rms of
    the bias-free twin (same input and weights) and of the difference, for stacks with a bias;
    grad_rms: rms of dL/dh for the readout L = sum(h_last * r), r ~ N(0,1), when `backward`."""
    dtype = getattr(torch, stack.dtype)
    x, weights, biases, readout = draw(stack, seed)
    weights = [w.to(dtype).requires_grad_(backward) for w in weights]
    a = twin = x.to(dtype)
    outs, rows = [], []
    for index, (w, b) in enumerate(zip(weights, biases, strict=True)):
        h = layer(stack, a, w, None if b is None else b.to(dtype))
        if backward:
            h.retain_grad()
        outs.append(h)
        values = h.detach()
        std = values.std()
        row = {"layer": index + 1, "std": std.item(), "rms": rms(values),
               "zero_share": (values == 0).double().mean().item(),
               "subnormal_share": ((values != 0) & (values.abs() < torch.finfo(dtype).tiny))
               .double().mean().item(),
               "normalised_nan": bool(torch.isnan(values / std).any())}
        if b is not None:
            twin = layer(stack, twin, w.detach(), None)
            row.update(twin_rms=rms(twin), bias_part_rms=rms(values - twin))
            twin = F.relu(twin) if stack.relu else twin
        rows.append(row)
        a = F.relu(h) if stack.relu else h
    frame = pd.DataFrame(rows)
    if backward:
        (outs[-1] * readout.to(dtype)).sum().backward()
        frame["grad_rms"] = [rms(h.grad) for h in outs]
    return frame


def layers(ctx: Context, stack: Stack, backward: bool = False) -> pd.DataFrame:
    """Per-layer rows of `stack` for every seed, with the stack's settings (computed once per
    process: several claims read the same stacks)."""
    def compute() -> pd.DataFrame:
        frames = [propagate(stack, seed, backward).assign(seed=seed) for seed in ctx.seeds]
        return pd.concat(frames, ignore_index=True).assign(stack=stack.label, **asdict(stack))

    return ctx.shared(("bias.stack", stack, backward), compute)


def float64(stack: Stack) -> Stack:
    """The same draws computed in float64: no overflow or underflow within 100 layers."""
    return replace(stack, dtype="float64")


def stacked(ctx: Context, *stacks: Stack) -> pd.DataFrame:
    """The per-layer rows of several stacks, one frame (column `stack` names them)."""
    return pd.concat([layers(ctx, s) for s in stacks], ignore_index=True)


def per_seed(frame: pd.DataFrame, summary: Callable[[pd.DataFrame], Any]) -> np.ndarray:
    """One value per seed, in seed order: summary(rows of that seed)."""
    return np.array([float(summary(rows)) for _, rows in frame.groupby("seed", sort=False)])


def over_seeds(ctx: Context, stack: Stack, summary: Callable[[pd.DataFrame], Any],
               unit: str = "") -> Metric:
    """A metric of `stack`: summary(rows of one seed) over the seeds."""
    return Metric.of(per_seed(layers(ctx, stack), summary), unit)


def first_layer(rows: pd.DataFrame, mask: pd.Series) -> float:
    """The first layer where `mask` holds (NaN if none)."""
    hits = rows.layer[mask.to_numpy()]
    return float(hits.iloc[0]) if len(hits) else math.nan


def layers_to_nonfinite(rows: pd.DataFrame) -> float:
    """Layers applied when the notebook's check (isinf or isnan of a.std(), N:36) first fires."""
    return first_layer(rows, ~np.isfinite(rows["std"]))


def log10_growth(rows: pd.DataFrame) -> float:
    """Mean log10 rms step per layer after the first (layer 1 maps 784 inputs, not `width`)."""
    with np.errstate(divide="ignore"):
        values = np.log10(rows.rms.to_numpy())
    return float(np.mean(np.diff(values[np.isfinite(values)])))


def log10_std_at(number: int) -> Callable[[pd.DataFrame], float]:
    """log10 of a.std() after `number` layers."""
    return lambda rows: math.log10(float(rows.loc[rows.layer == number, "std"].iloc[0]))


def log10_rms_last(rows: pd.DataFrame) -> float:
    return math.log10(rows.rms.iloc[-1])


def log10_input_share(rows: pd.DataFrame) -> float:
    """log10 of the share of the last layer's mean square that the bias-free twin (the part of
    a linear stack that depends on the input) accounts for."""
    return 2 * math.log10(rows.twin_rms.iloc[-1] / rows.rms.iloc[-1])


# --- theory ------------------------------------------------------------------------------------


def entry_shares(frame: pd.DataFrame) -> pd.DataFrame:
    """Tidy shares of subnormal and of zero entries per layer and seed: layer, seed, entries,
    share."""
    named = frame.rename(columns={"subnormal_share": "subnormal", "zero_share": "exactly 0"})
    return named.melt(id_vars=["layer", "seed"], value_vars=["subnormal", "exactly 0"],
                      var_name="entries", value_name="share")


def log10_step(width: int, variance: float) -> float:
    """Typical log10 rms step per layer of a bias-free linear stack, batch 1, W ~ N(0, variance):
    E ln(chi2_w variance) / 2 / ln 10 = (psi(w/2) + ln 2 + ln variance) / (2 ln 10)."""
    psi = torch.special.digamma(torch.tensor(width / 2, dtype=torch.float64)).item()
    return (psi + math.log(2) + math.log(variance)) / (2 * math.log(10))


def stationary_std(width: int, divisor_squared: float) -> float:
    """Mean-field std of a stack with an N(0,1) bias and W ~ N(0, 1/s), w < s: 1/sqrt(1 - w/s)."""
    return 1 / math.sqrt(1 - width / divisor_squared)


# --- the 100-layer stack as a trained network ----------------------------------------------------

TRAIN_STEPS = 500  # a stated length: the correctly scaled stack has left the uniform loss by then
TRAIN_LR = 0.1 / DEPTH  # every layer's update moves the end-to-end map: the lecture's 0.1 / depth


def trained_stack(init: str, bias: bool, steps: int) -> RunTemplate:
    """The 100-layer, width-50 linear stack as a network of the project (the names task: an
    embedding of the 3-character context in, 27 logits out, the lecture's last layer x 0.1),
    plain SGD at a constant TRAIN_LR. init "normal": N(0,1) weights and, with a bias, the
    notebook's N(0,1) bias (cells 4-5); "fan-in": the correct 1/sqrt(fan_in), and a bias that
    starts at 0 as a trainable bias does."""
    if init not in ("normal", "fan-in"):
        raise ValueError(f"a trained stack's init is 'normal' or 'fan-in', got {init!r}")
    bias_scale = 1.0 if bias and init == "normal" else None
    return deep_run(steps, depth=DEPTH, n_hidden=WIDTH, nonlinearity="linear",
                    fan_in_norm=init == "fan-in", gain=1.0, bias=bias, bias_scale=bias_scale,
                    lr=TRAIN_LR, decay=None)


def trained_arms() -> dict[str, RunTemplate]:
    """control[_bias][_2x] (the correct fan-in) and exploded[_bias][_2x] (N(0,1) weights): every
    arm at the stated length and, as the convergence control, at twice it."""
    arms = {}
    for init, arm in (("fan-in", "control"), ("normal", "exploded")):
        for bias in (False, True):
            for steps, length in ((TRAIN_STEPS, ""), (2 * TRAIN_STEPS, "_2x")):
                arms[f"{arm}{'_bias' if bias else ''}{length}"] = trained_stack(init, bias, steps)
    return arms


ARM_LABELS = {"control": "1/sqrt(fan_in)", "control_bias": "1/sqrt(fan_in) + bias",
              "exploded": "N(0,1)", "exploded_bias": "N(0,1) + bias"}


def arm_label(name: str) -> str:
    return ARM_LABELS[name.removesuffix("_2x")]


def final_losses(runs: dict[str, Trained]) -> pd.DataFrame:
    """One row per run and member: arm, length ("stated" or "twice": the convergence control),
    steps, and its step-0, train and val losses."""
    return pd.concat([run.losses_frame().assign(
        arm=arm_label(name), steps=run.steps,
        length="twice the length" if name.endswith("_2x") else "stated length")
        for name, run in runs.items()], ignore_index=True)


def loss_curves(runs: dict[str, Trained], points: int = 50) -> pd.DataFrame:
    """Training loss of the runs at twice the stated length, averaged over windows of steps
    (about `points` per run), finite values only: step, seed, loss, arm."""
    frames = []
    for name, run in runs.items():
        if name.endswith("_2x"):
            losses = run.losses.numpy()
            window = max(1, losses.shape[0] // points)
            means = losses[: losses.shape[0] // window * window].reshape(
                -1, window, losses.shape[1]).mean(1)
            steps, seeds = np.meshgrid(np.arange(1, means.shape[0] + 1) * window,
                                       run.members.seed, indexing="ij")
            frames.append(pd.DataFrame({"step": steps.ravel(), "seed": seeds.ravel(),
                                        "loss": means.ravel(), "arm": arm_label(name)}))
    curves = pd.concat(frames, ignore_index=True)
    return curves[np.isfinite(curves.loss)]


def unigram_loss(ctx: Context) -> float:
    """The dev loss of the training split's character frequencies: the best a network that
    ignores its input can do."""
    targets = ctx.splits().train[1]
    probs = torch.bincount(targets, minlength=27).double() / len(targets)
    return float(-probs[ctx.splits().dev[1]].log().mean())


# --- figures -------------------------------------------------------------------------------------


def per_layer(ax: Axes, frame: pd.DataFrame, column: str, ylabel: str, log: bool = True) -> None:
    """`column` per layer (log10 of its size unless `log` is False; inf, nan and 0 not drawn),
    one line with its CI over seeds per stack."""
    values = frame[column]
    if log:
        with np.errstate(divide="ignore", invalid="ignore"):
            values = np.log10(values.abs()).replace([np.inf, -np.inf], np.nan)
    figures.lines(ax, frame.assign(value=values), x="layer", y="value", hue="stack",
                  markers=False)
    ax.set(xlabel="layer (1 = next to the input)", ylabel=ylabel)


def finish(fig: Figure, axes: list[Axes], n: int, extra: str = "") -> None:
    """Legends, and the caption with the number of seeds."""
    for ax in axes:
        figures.legend(ax)
    figures.caption(fig, n, extra)


def printed(ax: Axes, cell: str, log: bool = True) -> None:
    """The stds the notebook printed for `cell`, as crosses."""
    values = np.asarray(PRINTED_STD[cell])
    ax.scatter(np.arange(1, values.size + 1), np.log10(values) if log else values, s=10,
               color="0.1", marker="x", zorder=3, label=f"notebook {cell} (one run)")


# --- the notebook's TODO list (N:216-223) --------------------------------------------------------

TODO_BN = Stack(bias=True, batchnorm=True, batch=32)
TODO_RELU = {init: Stack(init=init, relu=True) for init in ("fan-in", "kaiming")}
TODO_CONV = {init: Stack(init=init, conv=True, width=8) for init in ("normal", "fan-in")}
TODO_UNITS = {
    "xavier_bias_ms": "", "xavier_ms": "",
    **{f"growth_cell{c}": "log10/layer" for c in "4567"},
    "grad_notebook": "log10", "grad_fan_in": "log10", "grad_bias_change": "log10",
    "bn_std_last": "", "bn_log10_bias_part": "log10", "relu_fan_in_growth": "log10/layer",
    "relu_kaiming_growth": "log10/layer", "conv_layers": "layers", "conv_log10_rms_last": "log10",
}


def todo_frames(ctx: Context) -> dict[str, pd.DataFrame]:
    """Per-layer rows: "forward", cells 4-7 and the correct fan-in with and without a bias
    (float64); "variants", BatchNorm, ReLU and convolutions."""
    cells = (CELL4, CELL5, CELL6, CELL7, FAN_IN, FAN_IN_BIAS)
    return {"forward": stacked(ctx, *(float64(s) for s in cells)),
            "variants": stacked(ctx, TODO_BN, *TODO_RELU.values(), *TODO_CONV.values())}


def todo_metrics(ctx: Context) -> dict[str, Metric]:
    """One measurement per open question: the correct fan-in with and without an N(0,1) bias
    (Xavier's assumption); the growth per layer of cells 4-7 (activations per layer); the
    gradient reaching layer 1, and what the bias changes in it (backward pass); BatchNorm after
    every layer of an N(0,1)-weight stack with a bias, batch 32; ReLU under 1/sqrt(fan_in) and
    Kaiming; 3x3 convolutions, 8 channels, N(0,1) and 1/sqrt(fan_in) kernels."""
    def grad_first(stack: Stack) -> np.ndarray:
        return per_seed(layers(ctx, stack, backward=True),
                        lambda r: math.log10(r.grad_rms.iloc[0]))

    def ms_last(rows: pd.DataFrame) -> float:
        return rows.rms.iloc[-1] ** 2

    with_bias, without = grad_first(float64(CELL6)), grad_first(float64(CELL7))
    cells = {"4": CELL4, "5": CELL5, "6": CELL6, "7": CELL7}
    metrics = {
        "xavier_bias_ms": over_seeds(ctx, float64(FAN_IN_BIAS), ms_last),
        "xavier_ms": over_seeds(ctx, float64(FAN_IN), ms_last),
        **{f"growth_cell{c}": over_seeds(ctx, float64(s), log10_growth) for c, s in cells.items()},
        "grad_notebook": Metric.of(without),
        "grad_fan_in": Metric.of(grad_first(float64(FAN_IN))),
        "grad_bias_change": Metric.of(np.abs(with_bias - without)),
        "bn_std_last": over_seeds(ctx, TODO_BN, lambda r: r["std"].iloc[-1]),
        "bn_log10_bias_part": over_seeds(
            ctx, TODO_BN, lambda r: math.log10((r.bias_part_rms / r.rms).max())),
        "relu_fan_in_growth": over_seeds(ctx, float64(TODO_RELU["fan-in"]), log10_growth),
        "relu_kaiming_growth": over_seeds(ctx, float64(TODO_RELU["kaiming"]), log10_growth),
        "conv_layers": over_seeds(ctx, TODO_CONV["normal"], layers_to_nonfinite),
        "conv_log10_rms_last": over_seeds(ctx, TODO_CONV["fan-in"], log10_rms_last),
    }
    # what is left of the bias after BatchNorm is a rounding residue: numerics, not science
    return {name: Metric.of(m.samples, TODO_UNITS[name],
                            kind=NUMERICS if name == "bn_log10_bias_part" else SCIENCE)
            for name, m in metrics.items()}
