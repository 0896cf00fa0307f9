"""bias: the notebook on the bias term in deep linear stacks (N).

The notebook's setup, replicated: a (1, 784) N(0,1) "image", then 100 linear layers 784 -> 50 ->
... -> 50, batch 1, float32, drawn in the notebook's order (the input, then per layer W and, when
there is one, b). Its inits: N(0,1) weights (cells 4-5); its "xavier", every layer divided by
sqrt(784) even the 50x50 ones (cells 6-7); N(0,1) biases. Controls: the correct fan-in
(1/sqrt(50) after the first layer), float64 (the same float32 draws computed in double), other
widths and batch sizes, the backward pass, BatchNorm, ReLU and 3x3 convolutions.

Theory beside every measurement. With batch 1 and W ~ N(0, 1/s), ||h_i||^2 = ||h_{i-1}||^2 *
chi2_w / s exactly, so ln ||h||^2 is a random walk with drift E ln(chi2_w / s) = psi(w/2) + ln 2 -
ln s per layer ("typical" predictions, for log quantities); the mean-field recursion
E var_i = (w/s) E var_{i-1} + var_b gives the stationary variance 1 / (1 - w/s) with an N(0,1) bias.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ablations.context import Context
from ablations.plotting import reference
from ablations.registry import Claim, Judgement, Measurement, Metric, Source, Verdict, register
from ablations.verdicts import overlaps, paired_difference, says, within
from makemore.modules import ACTIVATIONS

INPUT = 28 * 28  # the notebook's m (N:23-25)
WIDTH = 50  # nh
DEPTH = 100
IMAGE = 28  # the input seen as a 28 x 28 image by the convolutional stacks
KERNEL = 3
CONV_CHANNELS = 8
MAX_GRAD_WIDTH = 200
TAIL = 10  # "stationary" statistics average layers TAIL..DEPTH-1
F32 = torch.finfo(torch.float32)
LN_MAX = math.log(F32.max)  # float32 overflows above exp(88.7)
LN_TINY = math.log(F32.tiny)  # smallest normal float32, 1.2e-38
LN_SUBNORMAL = math.log(F32.smallest_normal * 2.0**-23)  # smallest subnormal, 1.4e-45
NORMAL_RANGE = (1e-30, 1e30)  # rms values whose layer-to-layer ratios are free of float32 limits


# --- the stacks --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Stack:
    """One deep stack. init: "normal" N(0,1) weights (cell 4); "notebook" every layer divided by
    sqrt(784) (cells 6-7); "fan-in" divided by sqrt(fan_in), the correct Xavier/LeCun scale;
    "kaiming" times sqrt(2 / fan_in). bias: an N(0,1) bias drawn after each W."""

    init: str = "normal"
    bias: bool = False
    width: int = WIDTH
    depth: int = DEPTH
    batch: int = 1
    dtype: str = "float32"
    activation: str = "linear"
    batchnorm: bool = False  # F.batch_norm after every linear layer (training mode, no affine)
    conv: bool = False  # 3x3 convolutions, `width` channels, on the input seen as 1 x 28 x 28
    flush_denormal: bool = False  # torch.set_flush_denormal(True): subnormals become 0

    @property
    def label(self) -> str:
        head = " ".join(p for p in ("conv" if self.conv else "", self.activation
                                    if self.activation != "linear" else "") if p)
        name = f"{head + ' ' if head else ''}{self.init}{'+bias' if self.bias else ''}"
        name += " +BN" if self.batchnorm else ""
        extras = [f"{f.name}={getattr(self, f.name)}" for f in fields(self)
                  if f.name in ("width", "depth", "batch") and getattr(self, f.name) != f.default]
        extras += ["float64"] if self.dtype == "float64" else []
        extras += ["flush-denormal"] if self.flush_denormal else []
        return ", ".join([name, *extras])

    @property
    def backward(self) -> bool:
        """Gradients are taken where the forward pass stays finite by design, up to width 200:
        the wider stacks serve forward-only sweeps, and their backward would triple their cost."""
        return (self.init != "normal" or self.batchnorm) and self.width <= MAX_GRAD_WIDTH

    def fan_in(self, layer: int) -> int:
        channels = (1 if layer == 0 else self.width) if self.conv else None
        if channels is not None:
            return channels * KERNEL * KERNEL
        return INPUT if layer == 0 else self.width

    def scale(self, layer: int) -> float:
        """The divisor s of the weight variance 1/s (1 for N(0,1) weights)."""
        return {"normal": 1.0, "notebook": float(INPUT), "fan-in": float(self.fan_in(layer)),
                "kaiming": self.fan_in(layer) / 2.0}[self.init]


def _draw_weight(stack: Stack, layer: int, g: torch.Generator) -> torch.Tensor:
    shape: tuple[int, ...]
    if stack.conv:
        shape = (stack.width, 1 if layer == 0 else stack.width, KERNEL, KERNEL)
    else:
        shape = (stack.fan_in(layer), stack.width)
    w = torch.randn(shape, generator=g)
    s = stack.scale(layer)
    return w if s == 1.0 else w / math.sqrt(s)  # float32 division, as in the notebook


def _linear(stack: Stack, a: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    if stack.conv:
        h = F.conv2d(a, w, padding=KERNEL // 2)
        h = h if b is None else h + b.view(1, -1, 1, 1)
    else:
        h = a @ w if b is None else a @ w + b  # the notebook's linear()
    if stack.batchnorm:
        h = F.batch_norm(h, None, None, training=True)
    return h


def propagate(stack: Stack, seed: int) -> pd.DataFrame:
    """Forward (and, where finite, backward) pass of one stack drawn from `seed`: one row per
    layer. `std`/`mean` are the notebook's a.std()/a.mean() in the stack's dtype; rms, max_abs
    are exact (float64) statistics of the same values; `shadow_rms` is the bias-free twin (same
    weights, no bias): for a linear stack exactly the input-dependent part of the activations."""
    g = torch.Generator().manual_seed(seed)
    dtype = getattr(torch, stack.dtype)
    x = torch.randn(stack.batch, INPUT, generator=g)
    if stack.conv:
        x = x.view(stack.batch, 1, IMAGE, IMAGE)
    weights, biases = [], []
    for layer in range(stack.depth):
        weights.append(_draw_weight(stack, layer, g).to(dtype).requires_grad_(stack.backward))
        biases.append(torch.randn(stack.width, generator=g).to(dtype) if stack.bias else None)
    readout = torch.randn(stack.batch, stack.width, *x.shape[2:], generator=g).to(dtype)
    act = ACTIVATIONS[stack.activation]()
    # torch.set_flush_denormal sets the calling thread's FTZ/DAZ flags only: intra-op worker
    # threads would still produce subnormals, so a flushed stack runs on this thread alone.
    threads = torch.get_num_threads()
    flushed = stack.flush_denormal and torch.set_flush_denormal(True)
    if stack.flush_denormal and not flushed:
        raise RuntimeError("this CPU cannot flush denormals (torch.set_flush_denormal)")
    if flushed:
        torch.set_num_threads(1)
    try:
        outs, shadows = [], []
        a = shadow = x.to(dtype)
        for w, b in zip(weights, biases, strict=True):
            h = _linear(stack, a, w, b)
            outs.append(h)
            a = act(h)
            if stack.bias:
                shadows.append(_linear(stack, shadow, w, None))
                shadow = act(shadows[-1])
        std = torch.stack([h.std() for h in outs]).detach().double()
        mean = torch.stack([h.mean() for h in outs]).detach().double()
        values = torch.stack(outs).detach()
        grads = _gradients(outs, weights, readout) if stack.backward else None
        shadow_grads = _gradients(shadows, weights, readout) if stack.backward and shadows else None
    finally:
        if flushed:
            torch.set_flush_denormal(False)
            torch.set_num_threads(threads)
    flat = values.flatten(1)
    exact = flat.double()
    finite = torch.isfinite(flat)
    frame = pd.DataFrame({
        "layer": np.arange(stack.depth),
        "std": std.numpy(),
        "mean": mean.numpy(),
        "rms": exact.pow(2).mean(1).sqrt().numpy(),
        "max_abs": exact.abs().amax(1).numpy(),
        "nonfinite_share": (~finite).double().mean(1).numpy(),
        "zero_share": (flat == 0).double().mean(1).numpy(),
        "subnormal_share": ((flat != 0) & (flat.abs() < torch.finfo(dtype).tiny))
        .double().mean(1).numpy(),
        # What normalising by the std would give (the only road from a tiny std to nan).
        "normalised_nan": torch.isnan(flat / std.to(dtype).unsqueeze(1)).any(1).numpy(),
    })
    if stack.bias:
        twin = torch.stack(shadows).detach().flatten(1).double()
        frame["shadow_rms"] = twin.pow(2).mean(1).sqrt().numpy()
        frame["twin_diff_rms"] = (exact - twin).pow(2).mean(1).sqrt().numpy()
    for name, found in (("", grads), ("shadow_", shadow_grads)):
        if found is not None:
            frame[f"{name}grad_rms"], frame[f"{name}wgrad_rms"] = found
    return frame


def _gradients(outs: list[torch.Tensor], weights: list[torch.Tensor],
               readout: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Per-layer rms of dL/dh_i and of dL/dW_i for the linear readout L = sum(h_last * r), whose
    output gradient r ~ N(0,1) does not depend on the forward pass."""
    loss = (outs[-1] * readout).sum()
    found = torch.autograd.grad(loss, [*outs, *weights], retain_graph=True)

    def rms(ts: Sequence[torch.Tensor]) -> np.ndarray:
        return np.array([t.double().pow(2).mean().sqrt().item() for t in ts])

    return rms(found[: len(outs)]), rms(found[len(outs):])


def layers(ctx: Context, stack: Stack) -> pd.DataFrame:
    """Per-layer rows of `stack` for every seed (memoised: claims share stacks)."""
    def compute() -> pd.DataFrame:
        frames = [propagate(stack, seed).assign(seed=seed) for seed in ctx.seeds]
        return pd.concat(frames, ignore_index=True).assign(condition=stack.label)

    return ctx.shared(("bias.stack", stack), compute)


def _first(mask: pd.Series) -> float:
    """The first layer where `mask` holds; nan when it never does."""
    hits = np.flatnonzero(mask.to_numpy())
    return float(hits[0]) if hits.size else math.nan


def summarise(frame: pd.DataFrame) -> dict[str, float | str]:
    """One run (one seed's layers) in numbers."""
    std = frame["std"]
    bad = ~np.isfinite(std)
    first_bad = _first(bad)
    rms = frame["rms"].to_numpy()
    usable = (rms > NORMAL_RANGE[0]) & (rms < NORMAL_RANGE[1])
    pairs = usable[1:] & usable[:-1]
    pairs[0] = False  # the first layer maps 784 inputs, not `width`
    ratios = np.log(rms[1:][pairs] / rms[:-1][pairs])
    last = frame.iloc[-1]
    row: dict[str, float | str] = {
        "first_bad_std": first_bad,
        "layers_to_bad_std": first_bad + 1,  # the notebook's "after ~44 layers" counts layers
        "bad_kind": "none" if math.isnan(first_bad)
        else ("nan" if math.isnan(std.iloc[int(first_bad)]) else "inf"),
        "first_bad_entry": _first(frame["nonfinite_share"] > 0),
        "first_subnormal": _first(frame["subnormal_share"] > 0),
        "first_zero": _first(frame["zero_share"] == 1),
        "nan_std_layers": float(np.isnan(std).sum()),
        "normalised_nan_last": float(last["normalised_nan"]),
        "std_last": float(last["std"]),
        "log10_rms_last": _log10(last["rms"]),
        "std_tail": float(std.iloc[TAIL:].mean()),
        "ms_last": float(last["rms"]) ** 2,
        "log_rms_step": float(ratios.mean()) if ratios.size else math.nan,
    }
    if "shadow_rms" in frame:
        row["log10_input_share_last"] = 2 * (_log10(last["shadow_rms"]) - _log10(last["rms"]))
        row["log10_twin_diff_max"] = _log10(float((frame["twin_diff_rms"] / frame["rms"]).max()))
    for prefix in ("", "shadow_"):
        if f"{prefix}wgrad_rms" in frame:
            row[f"log10_{prefix}wgrad_first"] = _log10(frame[f"{prefix}wgrad_rms"].iloc[0])
            row[f"log10_{prefix}wgrad_last"] = _log10(frame[f"{prefix}wgrad_rms"].iloc[-1])
            row[f"log10_{prefix}grad_first"] = _log10(frame[f"{prefix}grad_rms"].iloc[0])
    return row


def _log10(value: float) -> float:
    """log10 with 0 -> -inf and nan kept."""
    return math.log10(value) if value > 0 else (-math.inf if value == 0 else math.nan)


def summary(ctx: Context, stacks: Sequence[Stack]) -> pd.DataFrame:
    """One row per stack and seed: the stack's knobs, then summarise()."""
    rows = []
    for stack in stacks:
        for seed, frame in layers(ctx, stack).groupby("seed", sort=False):
            knobs = {f.name: getattr(stack, f.name) for f in fields(stack)}
            rows.append({"condition": stack.label, **knobs, "seed": seed, **summarise(frame)})
    return pd.DataFrame(rows)


def pick(table: pd.DataFrame, stack: Stack, column: str) -> np.ndarray:
    return table.loc[table.condition == stack.label, column].to_numpy(dtype=float)


# --- theory ------------------------------------------------------------------------------------

def log_step(width: int, s: float, activation: str = "linear") -> float:
    """E ln(||h_i||^2 / ||h_{i-1}||^2) for W ~ N(0, 1/s), batch 1: psi(w/2) + ln 2 - ln s for a
    linear stack. Through a ReLU, ||relu(h)||^2 / ||h||^2 ~ Beta(K/2, (w-K)/2) with K ~ Bin(w, 1/2)
    positive units, which gives ln 2 - ln s + E_K psi(K/2) (K = 0 has probability 2^-w)."""
    if activation == "linear":
        return _digamma(torch.tensor(width / 2)).item() + math.log(2) - math.log(s)
    if activation != "relu":
        raise ValueError(f"no closed form for {activation!r}")
    k = torch.arange(1, width + 1, dtype=torch.float64)
    log_binomial = (torch.lgamma(torch.tensor(width + 1.0)) - torch.lgamma(k + 1)
                    - torch.lgamma(width - k + 1) - width * math.log(2))
    return math.log(2) - math.log(s) + float((log_binomial.exp() * _digamma(k / 2)).sum())


def _digamma(x: torch.Tensor) -> torch.Tensor:
    return torch.special.digamma(x.to(torch.float64))


def typical_log_ms(width: int, s: float, layer: float, s0: float | None = None,
                   activation: str = "linear") -> float:
    """E ln(mean square of h_layer) for a bias-free stack: the input's E ln chi2_784, the first
    layer (divisor s0, no activation before it), then `layer` steps, divided by the width."""
    s0 = s if s0 is None else s0
    return (log_step(INPUT, 1.0) + log_step(width, s0) + layer * log_step(width, s, activation)
            - math.log(width))


def decades(log_ms: float) -> float:
    """ln(mean square) -> log10(rms)."""
    return log_ms / 2 / math.log(10)


def crossing_layer(level: float, width: int, s: float, s0: float | None = None) -> float:
    """The (fractional) layer at which the typical ln rms of a linear stack reaches `level`."""
    start = typical_log_ms(width, s, 0.0, s0)
    return (2 * level - start) / log_step(width, s)


def mean_field_var(width: int, s: float, bias_var: float, depth: int = DEPTH,
                   s0: float | None = None) -> np.ndarray:
    """E var of each layer: var_0 = 784/s0 + b, var_i = (w/s) var_{i-1} + b."""
    s0 = s if s0 is None else s0
    out = np.empty(depth)
    out[0] = INPUT / s0 + bias_var
    for i in range(1, depth):
        out[i] = width / s * out[i - 1] + bias_var
    return out


# --- what the notebook printed (one unseeded run) ----------------------------------------------

def _printed(text: str) -> np.ndarray:
    return np.array([float(v) for v in text.split()])


PRINTED_STD = {  # a.std() of every layer the notebook's output shows (N:40-65, 83-108, ...)
    "cell 4": _printed(
        "26.1706 188.7720 1162.1053 10019.8301 63094.7305 455544.7500 3361917.5 25106340. "
        "1.8682e+08 1.3495e+09 9.3639e+09 6.4331e+10 4.3354e+11 2.6942e+12 1.8670e+13 "
        "1.3257e+14 9.5434e+14 6.2041e+15 3.8465e+16 1.9924e+17 1.4602e+18 1.0735e+19 "
        "6.6974e+19 4.8939e+20 3.6402e+21 2.4501e+22"),
    "cell 5": _printed(
        "22.5135 157.3415 1014.1555 6892.7690 42421.7539 311417.0938 2563695.5 17689588. "
        "1.3575e+08 1.0693e+09 7.3240e+09 4.7974e+10 3.2171e+11 2.3479e+12 1.6541e+13 "
        "1.2849e+14 9.0753e+14 5.6709e+15 3.5614e+16 2.2148e+17 1.4494e+18 9.9376e+18 "
        "6.0428e+19 4.4832e+20 3.0153e+21 2.2223e+22"),
    "cell 6": _printed(
        "1.3213 0.9710 1.0783 1.1460 0.9311 1.1002 1.0311 1.0027 1.1469 1.0446 1.0336 1.1801 "
        "1.0580 1.1358 1.0590 0.8153 0.9828 0.9944 0.9233 1.0482 1.0281 1.2260 1.1781 1.1089 "
        "1.2104 1.0585 1.0125 0.9085 0.9092 0.9785 0.9863 0.8722"),
    "cell 7": _printed(
        "0.9502 0.2757 0.0723 0.0186 0.0047 0.0011 0.0003 7.7497e-05 1.9835e-05 5.0685e-06 "
        "1.2090e-06 2.6407e-07 6.7252e-08 1.4054e-08 3.3937e-09 7.8351e-10 1.8582e-10 "
        "5.6959e-11 1.6890e-11 3.9216e-12 8.8020e-13 2.2054e-13 6.0513e-14 1.4695e-14 "
        "3.8098e-15 9.7716e-16 2.5967e-16"),
}


def printed_layer(cell: str) -> int:
    """The last layer whose std the notebook's (truncated) output shows."""
    return len(PRINTED_STD[cell]) - 1


def printed_log10(cell: str) -> float:
    return math.log10(PRINTED_STD[cell][-1])


def printed_key(cell: str) -> str:
    return f"log10_std_layer{printed_layer(cell)}"


def add_printed(ctx: Context, m: Measurement, stack: Stack, cell: str) -> Measurement:
    """Put beside the measurement the seeds' log10 std at the notebook's last printed layer
    (the printed run is one unseeded draw, to be read against this distribution) and its
    typical prediction."""
    layer = printed_layer(cell)
    frame = layers(ctx, stack)
    m.metrics[printed_key(cell)] = Metric.of(np.log10(frame.loc[frame.layer == layer, "std"]),
                                             "log10")
    m.predictions[printed_key(cell)] = decades(typical_log_ms(WIDTH, stack.scale(1), layer,
                                                              s0=stack.scale(0)))
    return m


def printed_sentence(m: Measurement, cell: str) -> str:
    return (f"The notebook's printed std at layer {printed_layer(cell)} (one unseeded run): 10^"
            f"{printed_log10(cell):.2f}; seeds: 10^{m.metrics[printed_key(cell)]} (pred "
            f"{m.predictions[printed_key(cell)]:.2f}).")


# --- plotting helpers --------------------------------------------------------------------------

def panels(fig: Figure, count: int) -> list[Axes]:
    fig.set_size_inches(6 * count, 4.5)
    return list(fig.subplots(1, count))


def printed_points(ax: Axes, cell: str, log: bool = True) -> None:
    printed = PRINTED_STD[cell]
    ax.scatter(range(len(printed)), np.log10(printed) if log else printed, s=12, color="k",
               label=f"notebook {cell}, printed std", zorder=3)


def band(ax: Axes, frame: pd.DataFrame, column: str, label: str, log: bool = True,
         color: str | None = None) -> None:
    """Median over seeds as a line, min-max over seeds as a band."""
    values = frame[["layer", "seed", column]].copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        values["y"] = np.log10(values[column].abs()) if log else values[column]
    values = values.replace([np.inf, -np.inf], np.nan)
    grouped = values.groupby("layer")["y"]
    line = ax.plot(grouped.median().index, grouped.median(), label=label, color=color)[0]
    ax.fill_between(grouped.min().index, grouped.min(), grouped.max(), alpha=0.25,
                    color=line.get_color(), linewidth=0)


def float32_limits(ax: Axes, tiny: bool = False) -> None:
    if tiny:
        ax.axhline(math.log10(F32.tiny), color="0.5", linestyle=":",
                   label="float32 smallest normal")
        ax.axhline(LN_SUBNORMAL / math.log(10), color="0.3", linestyle=":",
                   label="float32 smallest subnormal")
    else:
        ax.axhline(math.log10(F32.max), color="0.3", linestyle=":", label="float32 max")


def strip(ax: Axes, table: pd.DataFrame, x: str, y: str) -> None:
    """Every seed as a point per x, with the mean and its spread."""
    for position, (_, group) in enumerate(table.groupby(x, sort=False)):
        ys = group[y].to_numpy(dtype=float)
        ax.scatter(np.full(ys.size, position) + np.linspace(-0.1, 0.1, ys.size), ys, s=14,
                   color="C0", alpha=0.7)
        ax.errorbar(position + 0.25, np.nanmean(ys), yerr=np.nanstd(ys), fmt="o", color="C3")
    ax.set_xticks(range(table[x].nunique()), [str(v) for v in table[x].unique()], rotation=20)


# --- bias.explosion ----------------------------------------------------------------------------

EXPLOSION_WIDTHS = (10, 20, 50, 100, 200)
CELL4 = Stack()
CELL5 = Stack(bias=True)
CELL6 = Stack(init="notebook", bias=True)
CELL7 = Stack(init="notebook")


def measure_explosion(ctx: Context) -> Measurement:
    """N(0,1) weights, no bias: the layer of the first inf/nan std (the notebook's check) and of
    the first non-finite activation, over widths; float64 and batch 32 controls at width 50."""
    stacks = [Stack(width=w) for w in EXPLOSION_WIDTHS]
    f64, b32 = Stack(dtype="float64"), Stack(batch=32)
    table = summary(ctx, [*stacks, f64, b32])
    table["predicted_layers"] = [crossing_layer(LN_MAX, int(w), 1.0) + 1 for w in table.width]
    metrics = {
        "layers_to_bad_std": Metric.of(pick(table, CELL4, "layers_to_bad_std"), "layers"),
        "layers_to_bad_entry": Metric.of(pick(table, CELL4, "first_bad_entry") + 1, "layers"),
        "nan_first_share": Metric.of(table.loc[table.condition == CELL4.label, "bad_kind"]
                                     .eq("nan"), "share of seeds"),
        "layers_to_bad_std_batch32": Metric.of(pick(table, b32, "layers_to_bad_std"), "layers"),
        "float64_bad_share": Metric.of(np.isfinite(pick(table, f64, "first_bad_std")),
                                       "share of seeds"),
        "float64_log10_rms_last": Metric.of(pick(table, f64, "log10_rms_last"), "log10"),
        "log10_growth_per_layer": Metric.of(pick(table, f64, "log_rms_step") / math.log(10),
                                            "log10/layer"),
    }
    predictions = {"layers_to_bad_std": crossing_layer(LN_MAX, WIDTH, 1.0) + 1,
                   "layers_to_bad_std_mean_field": 2 * (LN_MAX - 0.5 * math.log(INPUT))
                   / math.log(WIDTH) + 1,
                   "float64_log10_rms_last": decades(typical_log_ms(WIDTH, 1.0, DEPTH - 1)),
                   "log10_growth_per_layer": decades(log_step(WIDTH, 1.0))}
    for w in EXPLOSION_WIDTHS:
        metrics[f"layers_to_bad_std_w{w}"] = Metric.of(
            pick(table, Stack(width=w), "layers_to_bad_std"), "layers")
        predictions[f"layers_to_bad_std_w{w}"] = crossing_layer(LN_MAX, w, 1.0) + 1
    frame = pd.concat([layers(ctx, CELL4), layers(ctx, f64)], ignore_index=True)
    return add_printed(ctx, Measurement(table, metrics, predictions, frames={"layers": frame}),
                       CELL4, "cell 4")


def judge_explosion(m: Measurement, ctx: Context) -> Judgement:
    first = m.metrics["layers_to_bad_std"]
    entry = m.metrics["layers_to_bad_entry"]
    growth = m.metrics["log10_growth_per_layer"]
    f64_bad = m.metrics["float64_bad_share"]
    near_44 = overlaps(first, 43, 45)
    explodes = growth.ci_low > 0.5  # > 3x per layer: geometric growth in any precision
    widths = "; ".join(f"w={w}: {m.metrics[f'layers_to_bad_std_w{w}'].mean:.1f} "
                       f"(pred {m.predictions[f'layers_to_bad_std_w{w}']:.1f})"
                       for w in EXPLOSION_WIDTHS)
    evidence = (
        f"{says('the std is first inf/nan after', first, 'approximately 44')} "
        f"(prediction, the typical rms crossing float32's max: "
        f"{m.predictions['layers_to_bad_std']:.1f}); the first activation overflows after "
        f"{entry}; "
        f"nan (not inf) comes first in {m.metrics['nan_first_share'].mean:.0%} of seeds: the "
        "float32 sum inside mean()/std() overflows before any activation does. "
        f"Per width, layers until the first inf/nan std: {widths}. Batch 32: "
        f"{m.metrics['layers_to_bad_std_batch32']}. float64 (same draws): no inf/nan in "
        f"{1 - f64_bad.mean:.0%} of seeds, "
        f"{says('log10 rms at layer 99', m.metrics['float64_log10_rms_last'])} "
        f"(pred {m.predictions['float64_log10_rms_last']:.1f}); "
        f"{says('growth', growth)} (pred {m.predictions['log10_growth_per_layer']:.3f}). "
        + printed_sentence(m, "cell 4"))
    ok = near_44 and explodes
    return Judgement(
        Verdict.REPRODUCED if ok else Verdict.NOT_REPRODUCED, evidence,
        holds_instead="" if ok else f"the first inf/nan std comes after {first.mean:.1f} layers, "
        f"growth {growth.mean:.2f} decades per layer",
        tolerance="'approximately 44' read as 43-45: the crossing layer's seed sd is "
        "sqrt(44 psi'(25))/ln 50 = 0.35 layers, so +-1 layer is ~3 sd; growth must exceed 0.5 "
        "decade/layer (prediction 0.85)")


def plot_explosion(m: Measurement, fig: Figure) -> None:
    left, right = panels(fig, 2)
    frame = m.frames["layers"]
    for stack in (CELL4, Stack(dtype="float64")):
        band(left, frame[frame.condition == stack.label], "std", stack.label)
    printed_points(left, "cell 4")
    float32_limits(left)
    reference(left, 43, "source: inf/nan after 44 layers, index", axis="x")
    left.set(title="N(0,1) weights, width 50: std per layer", xlabel="layer",
             ylabel="log10 std (median, min-max over seeds)")
    left.legend(fontsize=8)
    t = m.table[(m.table.dtype == "float32") & (m.table.batch == 1)]
    right.scatter(t.width, t.layers_to_bad_std, s=18, alpha=0.7, label="seeds")
    grid_w = np.geomspace(min(EXPLOSION_WIDTHS), max(EXPLOSION_WIDTHS), 50)
    right.plot(grid_w, [crossing_layer(LN_MAX, int(w), 1.0) + 1 for w in grid_w], color="0.4",
               label="prediction: typical rms reaches float32 max")
    right.scatter([WIDTH], [44], marker="*", s=140, color="C3", label="source: 44", zorder=3)
    right.set_xscale("log")
    right.set(title="First inf/nan std vs width (float32, batch 1)", xlabel="width (units)",
              ylabel="layers applied until the std is inf/nan")
    right.legend(fontsize=8)


register(Claim(
    id="bias.explosion",
    statement="N(0,1) weights make the activations explode to inf/nan around layer 44",
    source=Source("N", "19-21, 27-66"),
    measure=measure_explosion,
    judge=judge_explosion,
    plot=plot_explosion,
    source_values={"layers_to_bad_std": 44, printed_key("cell 4"): printed_log10("cell 4")},
))


# --- bias.bias-no-help -------------------------------------------------------------------------

BIAS_WIDTHS = (10, 50, 200)


def measure_bias_no_help(ctx: Context) -> Measurement:
    """Cell 5 (N(0,1) weights and bias) beside cell 4 (no bias), over widths and in float64:
    mean-field, var_i = w var_{i-1} + 1, so a unit bias is nothing beside a variance >= 784."""
    with_bias = [Stack(bias=True, width=w) for w in BIAS_WIDTHS]
    without = [Stack(width=w) for w in BIAS_WIDTHS]
    f64 = [Stack(bias=True, dtype="float64"), Stack(dtype="float64")]
    table = summary(ctx, [*with_bias, *without, *f64])
    first_b = pick(table, CELL5, "layers_to_bad_std")
    first_n = pick(table, CELL4, "layers_to_bad_std")
    metrics = {
        "layers_to_bad_std_bias": Metric.of(first_b, "layers"),
        "layers_to_bad_std_no_bias": Metric.of(first_n, "layers"),
        "first_bad_shift": paired_difference(first_b, first_n, "layers"),
        "log10_growth_bias": Metric.of(pick(table, f64[0], "log_rms_step") / math.log(10),
                                       "log10/layer"),
        "log10_growth_no_bias": Metric.of(pick(table, f64[1], "log_rms_step") / math.log(10),
                                          "log10/layer"),
    }
    predictions = {"layers_to_bad_std_bias": crossing_layer(LN_MAX, WIDTH, 1.0) + 1,
                   "first_bad_shift": 0.0,
                   "log10_growth_bias": decades(log_step(WIDTH, 1.0))}
    for w in BIAS_WIDTHS:
        shift = paired_difference(pick(table, Stack(bias=True, width=w), "first_bad_std"),
                                  pick(table, Stack(width=w), "first_bad_std"), "layers")
        metrics[f"first_bad_shift_w{w}"] = shift
    frame = pd.concat([layers(ctx, s) for s in (CELL4, CELL5, *f64)], ignore_index=True)
    return add_printed(ctx, Measurement(table, metrics, predictions, frames={"layers": frame}),
                       CELL5, "cell 5")


def judge_bias_no_help(m: Measurement, ctx: Context) -> Judgement:
    shift = m.metrics["first_bad_shift"]
    with_bias = m.metrics["layers_to_bad_std_bias"]
    growth_b, growth_n = m.metrics["log10_growth_bias"], m.metrics["log10_growth_no_bias"]
    unchanged = overlaps(shift, -1, 1) and all(
        overlaps(m.metrics[f"first_bad_shift_w{w}"], -1, 1) for w in BIAS_WIDTHS)
    explodes = with_bias.n == len(ctx.seeds) and math.isfinite(with_bias.mean)
    ok = unchanged and explodes
    shifts = ", ".join(f"w={w}: {m.metrics[f'first_bad_shift_w{w}'].mean:+.2f}"
                       for w in BIAS_WIDTHS)
    evidence = (
        f"{says('with an N(0,1) bias the std is first inf/nan after', with_bias)} vs "
        f"{m.metrics['layers_to_bad_std_no_bias']} without; {says('shift', shift)} "
        f"(per width: {shifts}); float64 growth {growth_b} with bias vs {growth_n} without "
        f"(pred {m.predictions['log10_growth_bias']:.3f} for both). "
        + printed_sentence(m, "cell 5"))
    return Judgement(
        Verdict.REPRODUCED if ok else Verdict.NOT_REPRODUCED, evidence,
        holds_instead="" if ok else f"the bias moves the first inf/nan by {shift.mean:+.2f} layers",
        tolerance="a shift within +-1 layer is no effect: the crossing layer's seed sd is 0.35 "
        "layers at width 50 (1.8 at width 10); the bias adds 1 to a variance >= 784")


def plot_bias_no_help(m: Measurement, fig: Figure) -> None:
    left, right = panels(fig, 2)
    frame = m.frames["layers"]
    for stack in (Stack(dtype="float64"), Stack(bias=True, dtype="float64")):
        band(left, frame[frame.condition == stack.label], "rms", stack.label)
    printed_points(left, "cell 5")
    float32_limits(left)
    left.set(title="N(0,1) weights with and without N(0,1) bias", xlabel="layer",
             ylabel="log10 rms (median, min-max over seeds)")
    left.legend(fontsize=8)
    t = m.table[m.table.dtype == "float32"].assign(
        setup=lambda d: np.where(d.bias, "bias", "no bias") + ", w=" + d.width.astype(str))
    strip(right, t, "setup", "layers_to_bad_std")
    reference(right, 44, "source (no bias)")
    right.set(title="First inf/nan std (float32; mean +- sd in red)", xlabel="condition",
              ylabel="layers applied until the std is inf/nan")
    right.legend(fontsize=8)


register(Claim(
    id="bias.bias-no-help",
    statement="Adding an N(0,1) bias does not keep the variance stable",
    source=Source("N", "68-111"),
    measure=measure_bias_no_help,
    judge=judge_bias_no_help,
    plot=plot_bias_no_help,
    source_values={printed_key("cell 5"): printed_log10("cell 5")},
))


# --- bias.xavier-with-bias ---------------------------------------------------------------------

XAVIER_WIDTHS = (10, 50, 200, 400, 784)
STATIONARY_STD = math.sqrt(1 / (1 - WIDTH / INPUT))


def measure_xavier_with_bias(ctx: Context) -> Measurement:
    """Cell 6 (every layer / sqrt(784), N(0,1) bias): the std per layer, its stationary value
    1/sqrt(1 - w/784) over widths, and how much of the activation still depends on the input
    (the bias-free twin with the same weights, float64)."""
    stacks = [Stack(init="notebook", bias=True, width=w) for w in XAVIER_WIDTHS]
    f64 = Stack(init="notebook", bias=True, dtype="float64")
    table = summary(ctx, [*stacks, f64])
    table["predicted_std_tail"] = [
        float(np.sqrt(mean_field_var(int(w), INPUT, 1.0)[TAIL:]).mean()) for w in table.width]
    frame = layers(ctx, CELL6)
    printed = PRINTED_STD["cell 6"]
    early = frame[frame.layer < len(printed)].groupby("seed")["std"].mean()
    share_pred = (typical_log_ms(WIDTH, INPUT, DEPTH - 1)
                  - math.log(STATIONARY_STD**2)) / math.log(10)
    metrics = {
        "std_tail": Metric.of(pick(table, CELL6, "std_tail")),
        "std_first_layers": Metric.of(early),
        "log10_input_share_last": Metric.of(pick(table, f64, "log10_input_share_last"), "log10"),
        "float32_input_share_zero": Metric.of(
            np.isneginf(pick(table, CELL6, "log10_input_share_last")), "share of seeds"),
    }
    predictions = {"std_tail": STATIONARY_STD, "log10_input_share_last": share_pred,
                   "std_first_layers": float(np.sqrt(mean_field_var(WIDTH, INPUT, 1.0)
                                                     [: len(printed)]).mean())}
    for w in XAVIER_WIDTHS:
        key = f"std_tail_w{w}"
        metrics[key] = Metric.of(pick(table, Stack(init="notebook", bias=True, width=w),
                                      "std_tail"))
        predictions[key] = float(np.sqrt(mean_field_var(w, INPUT, 1.0)[TAIL:]).mean())
    return Measurement(table, metrics, predictions,
                       frames={"layers": pd.concat([frame, layers(ctx, f64)], ignore_index=True)})


def judge_xavier_with_bias(m: Measurement, ctx: Context) -> Judgement:
    tail = m.metrics["std_tail"]
    share = m.metrics["log10_input_share_last"]
    about_one = overlaps(tail, 0.9, 1.1)
    carries_input = share.mean > -2  # >= 1% of the variance comes from the input
    widths = ", ".join(f"w={w}: {m.metrics[f'std_tail_w{w}'].mean:.2f} "
                       f"(pred {m.predictions[f'std_tail_w{w}']:.2f})" for w in XAVIER_WIDTHS)
    evidence = (
        f"{says(f'std over layers {TAIL}-99', tail, 'about 1')} (mean-field "
        f"1/sqrt(1 - 50/784) = {STATIONARY_STD:.4f}); layers 0-31: {m.metrics['std_first_layers']} "
        f"vs the notebook's printed {PRINTED_STD['cell 6'].mean():.4f}. By width: {widths}: it "
        "holds only because 50 < 784. The input's share of the layer-99 variance (bias-free twin, "
        f"float64): 10^{share} (pred 10^{m.predictions['log10_input_share_last']:.1f}); in float32 "
        f"it is exactly 0 in {m.metrics['float32_input_share_zero'].mean:.0%} of seeds: the std of "
        "1 is the biases' own, the activations no longer depend on the input.")
    if about_one and carries_input:
        verdict, instead = Verdict.REPRODUCED, ""
    elif about_one:
        verdict = Verdict.PARTLY
        instead = (f"the std stays near {tail.mean:.2f}, but it is the bias noise of the last "
                   f"layers: the input's share of the variance is 10^{share.mean:.0f}; and only "
                   f"for widths below 784 (w=784: {m.metrics['std_tail_w784'].mean:.1f})")
    else:
        verdict, instead = Verdict.NOT_REPRODUCED, f"the std averages {tail.mean:.2f}"
    return Judgement(verdict, evidence, holds_instead=instead,
                     tolerance="'about 1' as 0.9-1.1: one layer's std over 50 units has sd "
                     "1/sqrt(98) = 0.10; an input share below 1% counts as no signal")


def plot_xavier_with_bias(m: Measurement, fig: Figure) -> None:
    first, second, third = panels(fig, 3)
    frame = m.frames["layers"]
    band(first, frame[frame.condition == CELL6.label], "std", CELL6.label, log=False)
    first.plot(np.arange(DEPTH), np.sqrt(mean_field_var(WIDTH, INPUT, 1.0)), color="0.4",
               label="mean-field sqrt(E var)")
    printed_points(first, "cell 6", log=False)
    reference(first, 1.0, "source: about")
    first.set(title="Every layer / sqrt(784), N(0,1) bias", xlabel="layer",
              ylabel="std (median, min-max over seeds)")
    first.legend(fontsize=8)
    t = m.table[m.table.dtype == "float32"]
    second.scatter(t.width, t.std_tail, s=18, alpha=0.7, label="seeds")
    second.plot(t.width.unique(), t.groupby("width", sort=False).predicted_std_tail.first(),
                color="0.4", marker="x", label="mean-field")
    reference(second, 1.0, "source: about")
    second.set_xscale("log")
    second.set_yscale("log")
    second.set(title=f"Std over layers {TAIL}-99 vs width", xlabel="width (units)", ylabel="std")
    second.legend(fontsize=8)
    f64 = frame[frame.condition == Stack(init="notebook", bias=True, dtype="float64").label]
    share = f64.assign(share=(f64.shadow_rms / f64.rms) ** 2)
    band(third, share, "share", "bias-free twin / total, float64")
    third.plot(np.arange(DEPTH), [(typical_log_ms(WIDTH, INPUT, i) - math.log(STATIONARY_STD**2))
                                  / math.log(10) for i in range(DEPTH)], color="0.4",
               label="typical prediction")
    third.set(title="Share of the variance that depends on the input", xlabel="layer",
              ylabel="log10 share")
    third.legend(fontsize=8)


register(Claim(
    id="bias.xavier-with-bias",
    statement="Dividing by sqrt(784) with an N(0,1) bias keeps the std about 1 for 100 layers",
    source=Source("N", "113-162"),
    measure=measure_xavier_with_bias,
    judge=judge_xavier_with_bias,
    plot=plot_xavier_with_bias,
    source_values={"std_tail": 1.0, "std_first_layers": float(PRINTED_STD["cell 6"].mean())},
))


# --- bias.xavier-no-bias -----------------------------------------------------------------------

NO_BIAS_WIDTHS = (10, 50, 200)
EULER_GAMMA = 0.5772156649015329


def smallest_entry_offset(width: int) -> float:
    """E ln(min |z| / rms) over `width` N(0,1) entries, ~ -ln(w sqrt(2/pi)) - gamma: how far
    below the rms the first entry to become subnormal sits."""
    return -math.log(width * math.sqrt(2 / math.pi)) - EULER_GAMMA


def largest_entry_offset(width: int) -> float:
    """ln(max |z| / rms), ~ ln sqrt(2 ln w): how far above the rms the last entry to vanish sits."""
    return 0.5 * math.log(2 * math.log(width))


def measure_xavier_no_bias(ctx: Context) -> Measurement:
    """Cell 7 (every layer / sqrt(784), no bias): the per-layer std factor (typical
    exp(E ln(chi2_50/784)/2) = 0.2500, mean-field sqrt(50/784) = 0.2525) over widths, and where
    float32 turns the activations subnormal and then exactly 0; float64 and flush-to-zero."""
    stacks = [Stack(init="notebook", width=w) for w in NO_BIAS_WIDTHS]
    f64, ftz = Stack(init="notebook", dtype="float64"), Stack(init="notebook", flush_denormal=True)
    table = summary(ctx, [*stacks, f64, ftz])
    metrics = {
        "std_factor": Metric.of(np.exp(pick(table, CELL7, "log_rms_step")), "x/layer"),
        "first_subnormal_layer": Metric.of(pick(table, CELL7, "first_subnormal")),
        "first_zero_layer": Metric.of(pick(table, CELL7, "first_zero")),
        "first_zero_layer_flush_denormal": Metric.of(pick(table, ftz, "first_zero")),
        "float32_zero_std_share": Metric.of(pick(table, CELL7, "std_last") == 0, "share of seeds"),
        "float64_log10_rms_last": Metric.of(pick(table, f64, "log10_rms_last"), "log10"),
    }
    start = dict(width=WIDTH, s=INPUT)
    predictions = {
        "std_factor": math.exp(log_step(WIDTH, INPUT) / 2),
        "std_factor_mean_field": math.sqrt(WIDTH / INPUT),
        "first_subnormal_layer": crossing_layer(LN_TINY - smallest_entry_offset(WIDTH), **start),
        "first_zero_layer": crossing_layer(LN_SUBNORMAL - math.log(2)
                                           - largest_entry_offset(WIDTH), **start),
        "first_zero_layer_flush_denormal": crossing_layer(LN_TINY - largest_entry_offset(WIDTH),
                                                          **start),
        "float64_log10_rms_last": decades(typical_log_ms(WIDTH, INPUT, DEPTH - 1)),
    }
    for w in NO_BIAS_WIDTHS:
        metrics[f"std_factor_w{w}"] = Metric.of(
            np.exp(pick(table, Stack(init="notebook", width=w), "log_rms_step")), "x/layer")
        predictions[f"std_factor_w{w}"] = math.exp(log_step(w, INPUT) / 2)
    frame = pd.concat([layers(ctx, s) for s in (CELL7, f64, ftz)], ignore_index=True)
    return add_printed(ctx, Measurement(table, metrics, predictions, frames={"layers": frame}),
                       CELL7, "cell 7")


def judge_xavier_no_bias(m: Measurement, ctx: Context) -> Judgement:
    factor = m.metrics["std_factor"]
    f64 = m.metrics["float64_log10_rms_last"]
    vanishes = factor.ci_high < 1 and f64.ci_high < -30
    widths = ", ".join(f"w={w}: {m.metrics[f'std_factor_w{w}'].mean:.4f} "
                       f"(pred {m.predictions[f'std_factor_w{w}']:.4f})" for w in NO_BIAS_WIDTHS)
    evidence = (
        f"{says('std multiplied per layer by', factor)} (typical prediction "
        f"{m.predictions['std_factor']:.4f}, mean-field sqrt(50/784) = "
        f"{m.predictions['std_factor_mean_field']:.4f}); by width {widths}. float64: "
        f"{says('log10 rms at layer 99', f64)} "
        f"(pred {m.predictions['float64_log10_rms_last']:.1f}). "
        f"float32: first subnormal entry at layer {m.metrics['first_subnormal_layer']} (pred "
        f"{m.predictions['first_subnormal_layer']:.1f}), every entry exactly 0 from layer "
        f"{m.metrics['first_zero_layer']} (pred {m.predictions['first_zero_layer']:.1f}; with "
        f"denormals flushed {m.metrics['first_zero_layer_flush_denormal']}); the layer-99 std is "
        f"exactly 0 in {m.metrics['float32_zero_std_share'].mean:.0%} of seeds. "
        + printed_sentence(m, "cell 7"))
    return Judgement(
        Verdict.REPRODUCED if vanishes else Verdict.NOT_REPRODUCED, evidence,
        holds_instead="" if vanishes else f"the std changes by {factor.mean:.3f} per layer",
        tolerance="vanishing = a per-layer factor whose CI is below 1 and a float64 rms at layer "
        "99 below 1e-30 (30 decades under the input)")


def plot_xavier_no_bias(m: Measurement, fig: Figure) -> None:
    left, right = panels(fig, 2)
    frame = m.frames["layers"]
    for label in frame.condition.unique():
        band(left, frame[frame.condition == label], "std", label)
    left.plot(np.arange(DEPTH), [decades(typical_log_ms(WIDTH, INPUT, i))
                                 for i in range(DEPTH)], color="0.4", linestyle="--",
              label="typical prediction (rms)")
    printed_points(left, "cell 7")
    float32_limits(left, tiny=True)
    left.set(title="Every layer / sqrt(784), no bias: std per layer", xlabel="layer",
             ylabel="log10 std (median, min-max over seeds; 0 not drawn)")
    left.legend(fontsize=7)
    f32 = frame[frame.condition == CELL7.label]
    band(right, f32, "subnormal_share", "subnormal entries", log=False)
    band(right, f32, "zero_share", "entries exactly 0", log=False)
    ftz = frame[frame.condition == Stack(init="notebook", flush_denormal=True).label]
    band(right, ftz, "zero_share", "exactly 0, denormals flushed", log=False)
    right.set(title="What float32 holds as the std vanishes", xlabel="layer",
              ylabel="share of the 50 activations")
    right.set_xlim(50, DEPTH)
    right.legend(fontsize=8)


register(Claim(
    id="bias.xavier-no-bias",
    statement="The same init (every layer / sqrt(784)) without bias vanishes",
    source=Source("N", "164-205"),
    measure=measure_xavier_no_bias,
    judge=judge_xavier_no_bias,
    plot=plot_xavier_no_bias,
    source_values={printed_key("cell 7"): printed_log10("cell 7")},
))


# --- bias.purpose ------------------------------------------------------------------------------

FAN_IN = Stack(init="fan-in")
PURPOSE_F64 = tuple(Stack(init=i, bias=b, dtype="float64") for i in ("notebook", "fan-in")
                    for b in (False, True))


def grad_prediction(s: float) -> tuple[float, float]:
    """Typical log10 rms of dL/dh_0 and of dL/dW_0 for the readout gradient r ~ N(0,1): the
    backward pass multiplies ||g||^2 by chi2_50/s per layer, as the forward does."""
    log_ms_g0 = log_step(WIDTH, 1.0) - math.log(WIDTH) + (DEPTH - 1) * log_step(WIDTH, s)
    log_ms_w0 = log_ms_g0 + log_step(INPUT, 1.0) - math.log(INPUT)
    return decades(log_ms_g0), decades(log_ms_w0)


def measure_purpose(ctx: Context) -> Measurement:
    """The control the notebook lacks: the correct fan-in (1/sqrt(50) after the first layer)
    without bias. Then what the bias does: the input's share of the activations (bias-free twin
    with the same weights) and the first layer's weight gradient with and without it."""
    table = summary(ctx, [FAN_IN, Stack(init="fan-in", bias=True), CELL6, CELL7, *PURPOSE_F64])
    nb, nb_bias, fi, fi_bias = PURPOSE_F64
    metrics = {
        "fan_in_log10_rms_last": Metric.of(pick(table, FAN_IN, "log10_rms_last"), "log10"),
        "fan_in_vanished_share": Metric.of(pick(table, FAN_IN, "log10_rms_last") < -2,
                                           "share of seeds"),
        "notebook_log10_rms_last": Metric.of(pick(table, nb, "log10_rms_last"), "log10"),
        "notebook_bias_log10_input_share": Metric.of(
            pick(table, nb_bias, "log10_input_share_last"), "log10"),
        "fan_in_bias_log10_input_share": Metric.of(
            pick(table, fi_bias, "log10_input_share_last"), "log10"),
        "notebook_bias_log10_wgrad_first": Metric.of(
            pick(table, nb_bias, "log10_wgrad_first"), "log10"),
        "notebook_bias_wgrad_first_vs_twin": paired_difference(
            pick(table, nb_bias, "log10_wgrad_first"),
            pick(table, nb_bias, "log10_shadow_wgrad_first"), "decades"),
        "notebook_bias_log10_wgrad_last": Metric.of(pick(table, nb_bias, "log10_wgrad_last"),
                                                    "log10"),
        "notebook_twin_log10_wgrad_last": Metric.of(
            pick(table, nb_bias, "log10_shadow_wgrad_last"), "log10"),
        "fan_in_log10_wgrad_first": Metric.of(pick(table, FAN_IN, "log10_wgrad_first"), "log10"),
    }
    predictions = {
        "fan_in_log10_rms_last": decades(typical_log_ms(WIDTH, WIDTH, DEPTH - 1, s0=INPUT)),
        "notebook_log10_rms_last": decades(typical_log_ms(WIDTH, INPUT, DEPTH - 1)),
        "notebook_bias_log10_input_share": (typical_log_ms(WIDTH, INPUT, DEPTH - 1)
                                            - math.log(STATIONARY_STD**2)) / math.log(10),
        "fan_in_bias_log10_input_share": math.log10(1 / mean_field_var(WIDTH, WIDTH, 1.0,
                                                                       s0=INPUT)[-1]),
        "notebook_bias_log10_wgrad_first": grad_prediction(INPUT)[1],
        "notebook_bias_wgrad_first_vs_twin": 0.0,
        "fan_in_log10_wgrad_first": grad_prediction(WIDTH)[1],
    }
    frame = pd.concat([layers(ctx, s) for s in PURPOSE_F64], ignore_index=True)
    return Measurement(table, metrics, predictions, frames={"layers": frame})


def judge_purpose(m: Measurement, ctx: Context) -> Judgement:
    fan_in = m.metrics["fan_in_log10_rms_last"]
    share = m.metrics["notebook_bias_log10_input_share"]
    same_grad = m.metrics["notebook_bias_wgrad_first_vs_twin"]
    good_init_enough = fan_in.ci_low > -2
    bias_no_signal = share.mean < -2
    bias_no_grad = abs(same_grad.mean) < 1e-6
    evidence = (
        f"Control, the correct fan-in without bias: {says('log10 rms at layer 99', fan_in)} (pred "
        f"{m.predictions['fan_in_log10_rms_last']:.2f}; below 1e-2 in "
        f"{m.metrics['fan_in_vanished_share'].mean:.0%} of seeds), against 10^"
        f"{m.metrics['notebook_log10_rms_last'].mean:.1f} for the notebook's init (float64): the "
        "vanishing comes from dividing 50-wide layers by sqrt(784), not from the missing bias. "
        "The bias keeps the std but not the signal: the input's share of the layer-99 variance "
        f"is 10^{share} (pred {m.predictions['notebook_bias_log10_input_share']:.1f}); with the "
        "correct "
        f"init and a unit bias still 10^{m.metrics['fan_in_bias_log10_input_share']} (pred "
        f"{m.predictions['fan_in_bias_log10_input_share']:.1f}, the biases accumulate). Backward "
        f"(notebook init, float64): the first layer's weight gradient is 10^"
        f"{m.metrics['notebook_bias_log10_wgrad_first']} with the bias and "
        f"{says('differs from the bias-free twin by', same_grad)}; the last layer's is 10^"
        f"{m.metrics['notebook_bias_log10_wgrad_last'].mean:.1f} with bias vs "
        f"10^{m.metrics['notebook_twin_log10_wgrad_last'].mean:.1f} without; with the correct "
        f"fan-in and no bias the first layer's is 10^{m.metrics['fan_in_log10_wgrad_first']}.")
    if not good_init_enough:
        verdict, instead = Verdict.REPRODUCED, ""
    elif bias_no_signal or bias_no_grad:
        verdict = Verdict.NOT_REPRODUCED
        instead = ("a good init is enough: with 1/sqrt(fan_in) the bias-free stack neither "
                   "vanishes nor loses its gradient; the notebook's vanishing is its init's "
                   "(1/sqrt(784) on 50-wide layers). The bias only masks it: the activations "
                   "it keeps at std 1 carry no input, and it cannot restore the early layers' "
                   "gradient")
    else:
        verdict = Verdict.PARTLY
        instead = "a good init suffices, but the bias does carry signal or gradient here"
    return Judgement(verdict, evidence, holds_instead=instead,
                     tolerance="vanished = rms below 1e-2 at layer 99: the random walk of ln rms "
                     "has sd sqrt(99 psi'(25))/2 = 1.0 (0.43 decade), so -2 decades is > 3 sd "
                     "below the prediction; the twin gradients must agree to float64 rounding")


def plot_purpose(m: Measurement, fig: Figure) -> None:
    first, second, third = panels(fig, 3)
    frame = m.frames["layers"]
    for stack in PURPOSE_F64:
        part = frame[frame.condition == stack.label]
        band(first, part, "rms", stack.label)
        band(second, part, "wgrad_rms", stack.label)
        if stack.bias:
            band(third, part.assign(share=(part.shadow_rms / part.rms) ** 2), "share", stack.label)
    first.set(title="Activations (float64)", xlabel="layer",
              ylabel="log10 rms (median, min-max over seeds)")
    second.set(title="Weight gradient of each layer", xlabel="layer", ylabel="log10 rms of dL/dW")
    third.set(title="Input's share of the variance (bias-free twin / total)", xlabel="layer",
              ylabel="log10 share")
    for ax in (first, second, third):
        ax.legend(fontsize=7)


register(Claim(
    id="bias.purpose",
    statement="Just a good init is not enough: the bias exists for numerical stability in the "
              "forward pass; without it deep nets are harder to train",
    source=Source("N", "207"),
    measure=measure_purpose,
    judge=judge_purpose,
    plot=plot_purpose,
))


# --- bias.nan ----------------------------------------------------------------------------------

NAN_STACKS = (*(Stack(init="notebook", width=w) for w in NO_BIAS_WIDTHS),
              Stack(init="notebook", batch=32), Stack(init="notebook", flush_denormal=True))


def measure_nan(ctx: Context) -> Measurement:
    """Every vanishing float32 stack (widths, batch 32, denormals flushed): does any std become
    nan? What the notebook's isinf/isnan check sees; the smallest positive std before 0; what
    dividing by that std gives."""
    table = summary(ctx, NAN_STACKS)
    frame = pd.concat([layers(ctx, s) for s in NAN_STACKS], ignore_index=True)
    positive = frame[frame["std"] > 0].groupby(["condition", "seed"], sort=False)["std"].min()
    table["log10_smallest_positive_std"] = np.log10(positive.to_numpy())
    metrics = {
        "nan_std_layers": Metric.of(table.nan_std_layers, "layers per run"),
        "notebook_check_fires": Metric.of(np.isfinite(table.first_bad_std), "share of runs"),
        "zero_std_share": Metric.of(pick(table, CELL7, "std_last") == 0, "share of seeds"),
        "first_zero_layer": Metric.of(pick(table, CELL7, "first_zero")),
        "log10_smallest_positive_std": Metric.of(pick(table, CELL7, "log10_smallest_positive_std"),
                                                 "log10"),
        "normalised_nan_share": Metric.of(table.normalised_nan_last, "share of runs"),
    }
    predictions = {"nan_std_layers": 0.0}
    return Measurement(table, metrics, predictions, frames={"layers": frame})


def judge_nan(m: Measurement, ctx: Context) -> Judgement:
    nan_layers = m.metrics["nan_std_layers"]
    zero = m.metrics["zero_std_share"]
    per_stack = "; ".join(
        f"{label}: " + (f"all 0 from layer {group.first_zero.mean():.1f}"
                        if group.first_zero.notna().all()
                        else f"rms 10^{group.log10_rms_last.mean():.0f} at layer 99")
        for label, group in m.table.groupby("condition", sort=False))
    evidence = (
        f"over {len(m.table)} float32 runs (widths {list(NO_BIAS_WIDTHS)}, batch 32, denormals "
        f"flushed): {says('layers with a nan std', nan_layers)}; the notebook's isinf/isnan check "
        f"fires in {m.metrics['notebook_check_fires'].mean:.0%} of runs. The values go subnormal, "
        f"then exactly 0 ({per_stack}). At width 50 the smallest positive std is 10^"
        f"{m.metrics['log10_smallest_positive_std']} (float32's smallest normal: 10^"
        f"{math.log10(F32.tiny):.1f}), then std = 0.0 (mean 0.0) in {zero.mean:.0%} of seeds. "
        "Only dividing by that std gives nan (0/0): in "
        f"{m.metrics['normalised_nan_share'].mean:.0%} of runs at layer 99.")
    clamps_to_nan = nan_layers.mean > 0
    return Judgement(
        Verdict.REPRODUCED if clamps_to_nan else Verdict.NOT_REPRODUCED, evidence,
        holds_instead="" if clamps_to_nan else
        "float32 underflows gradually: subnormal values, then exact zeros; the std becomes 0.0, "
        "not nan, and the notebook's own nan check never fires. nan needs 0/0, e.g. normalising "
        "by that std",
        tolerance="exact: IEEE float32 semantics, deterministic counts over every run")


def plot_nan(m: Measurement, fig: Figure) -> None:
    left, right = panels(fig, 2)
    frame = m.frames["layers"]
    cell7 = frame[frame.condition == CELL7.label]
    band(left, cell7, "std", "a.std() (0 not drawn)")
    band(left, cell7, "max_abs", "largest |activation|")
    float32_limits(left, tiny=True)
    left.set(title="float32, every layer / sqrt(784), no bias", xlabel="layer",
             ylabel="log10 value (median, min-max over seeds)")
    left.legend(fontsize=8)
    t = m.table.assign(nan=m.table.nan_std_layers, zero_std=(m.table.std_last == 0).astype(float))
    counts = t.groupby("condition", sort=False)[["nan", "zero_std"]].mean()
    positions = np.arange(len(counts))
    right.bar(positions - 0.2, counts["nan"], width=0.4, label="layers with nan std (per run)")
    right.bar(positions + 0.2, counts["zero_std"], width=0.4, label="runs ending at std = 0.0")
    right.text(0.02, 0.5, f"nan stds in {len(t)} runs: {int(t.nan.sum())}",
               transform=right.transAxes, fontsize=10)
    right.set_xticks(positions, counts.index, rotation=20, fontsize=8)
    right.set(title="Does the std 'clamp to nan'?", xlabel="stack",
              ylabel="count per run / share of runs")
    right.legend(fontsize=8)


register(Claim(
    id="bias.nan",
    statement="Multiplying by weights close to zero layer after layer makes the std so small "
              "that it clamps to nan",
    source=Source("N", "209-214"),
    measure=measure_nan,
    judge=judge_nan,
    plot=plot_nan,
))


# --- bias.todo ---------------------------------------------------------------------------------

FAN_IN_BIAS = Stack(init="fan-in", bias=True)
BN = Stack(batchnorm=True, bias=True, batch=32)
RELU = {init: Stack(init=init, activation="relu") for init in ("fan-in", "kaiming")}
CONV = {init: Stack(init=init, conv=True, width=CONV_CHANNELS) for init in ("normal", "fan-in")}
CELLS = {"cell 4": CELL4, "cell 5": CELL5, "cell 6": CELL6, "cell 7": CELL7}
STEP_TOL = 0.02  # ln(rms) per layer


def batch_of_one_is_undefined() -> bool:
    """BatchNorm needs a batch: with the notebook's batch of 1 the batch variance is undefined."""
    try:
        F.batch_norm(torch.randn(1, WIDTH), None, None, training=True)
    except ValueError:
        return True
    return False


def measure_todo(ctx: Context) -> Measurement:
    """One measurement per open question of the notebook's TODO list (N:216-223)."""
    f64_nb, f64_nb_bias = PURPOSE_F64[0], PURPOSE_F64[1]
    stacks = [*CELLS.values(), FAN_IN, FAN_IN_BIAS, f64_nb, f64_nb_bias, BN, Stack(batch=32),
              *RELU.values(), *CONV.values()]
    table = summary(ctx, stacks)

    def of(stack: Stack, column: str, unit: str = "") -> Metric:
        return Metric.of(pick(table, stack, column), unit)

    metrics = {
        "q3_log10_grad_first_notebook": of(f64_nb, "log10_grad_first", "log10"),
        "q3_log10_grad_first_fan_in": of(FAN_IN, "log10_grad_first", "log10"),
        "q3_grad_first_bias_vs_twin": paired_difference(
            pick(table, f64_nb_bias, "log10_grad_first"),
            pick(table, f64_nb_bias, "log10_shadow_grad_first"), "decades"),
        "q4_bn_std_tail": of(BN, "std_tail"),
        "q4_bn_log10_bias_effect": of(BN, "log10_twin_diff_max", "log10"),
        "q4_no_bn_first_bad_layer": of(Stack(batch=32), "first_bad_std"),
        "q4_batch1_undefined": Metric.exact(float(batch_of_one_is_undefined())),
        "q5_relu_fan_in_step": of(RELU["fan-in"], "log_rms_step", "ln/layer"),
        "q5_relu_kaiming_step": of(RELU["kaiming"], "log_rms_step", "ln/layer"),
        "q6_conv_normal_first_bad_layer": of(CONV["normal"], "first_bad_std"),
        "q6_conv_fan_in_log10_rms_last": of(CONV["fan-in"], "log10_rms_last", "log10"),
    }
    for name, stack in (("bias", FAN_IN_BIAS), ("no_bias", FAN_IN)):
        metrics[f"q1_log10_ms_last_{name}"] = Metric.of(2 * pick(table, stack, "log10_rms_last"),
                                                        "log10")
    n = BN.batch * BN.width
    predictions = {
        "q1_log10_ms_last_bias": math.log10(mean_field_var(WIDTH, WIDTH, 1.0, s0=INPUT)[-1]),
        "q1_log10_ms_last_no_bias": typical_log_ms(WIDTH, WIDTH, DEPTH - 1, s0=INPUT)
        / math.log(10),
        "q3_log10_grad_first_notebook": grad_prediction(INPUT)[0],
        "q3_log10_grad_first_fan_in": grad_prediction(WIDTH)[0],
        "q3_grad_first_bias_vs_twin": 0.0,
        "q4_bn_std_tail": math.sqrt(n / (n - 1)),  # biased-variance normalisation, unbiased std
        "q4_no_bn_first_bad_layer": crossing_layer(LN_MAX, WIDTH, 1.0),
        "q5_relu_fan_in_step": log_step(WIDTH, WIDTH, "relu") / 2,
        "q5_relu_kaiming_step": log_step(WIDTH, WIDTH / 2, "relu") / 2,
        "q5_relu_fan_in_step_mean_field": math.log(0.5) / 2,
        # mean-field: var_0 = 9 (a 3x3 patch), then x 9 * channels per layer
        "q6_conv_normal_first_bad_layer": 2 * (LN_MAX - math.log(3))
        / math.log(KERNEL * KERNEL * CONV_CHANNELS),
        "q6_conv_fan_in_log10_rms_last": 0.0,
    }
    for cell, stack in CELLS.items():
        metrics[f"q2_step_{cell.replace(' ', '')}"] = of(stack, "log_rms_step", "ln/layer")
        s = stack.scale(1)
        predictions[f"q2_step_{cell.replace(' ', '')}"] = (
            0.0 if stack.bias and s > WIDTH else log_step(WIDTH, s) / 2)
    frame = pd.concat([layers(ctx, s) for s in stacks], ignore_index=True)
    return Measurement(table, metrics, predictions, frames={"layers": frame})


def todo_answers(m: Measurement) -> list[tuple[str, bool, str]]:
    """(question, answer agrees with theory, the answer in numbers)."""
    met, pred = m.metrics, m.predictions
    steps = [within(met[f"q2_step_{c}"], pred[f"q2_step_{c}"], abs_tol=STEP_TOL)
             for c in ("cell4", "cell5", "cell6", "cell7")]
    factors = ", ".join(f"{c}: x{math.exp(met[f'q2_step_{c}'].mean):.3f} (pred "
                        f"x{math.exp(pred[f'q2_step_{c}']):.3f})"
                        for c in ("cell4", "cell5", "cell6", "cell7"))
    twin = met["q3_grad_first_bias_vs_twin"]
    return [
        ("Does Xavier assume anything about the bias?",
         within(met["q1_log10_ms_last_bias"], pred["q1_log10_ms_last_bias"], abs_tol=0.3),
         "yes, a zero (or negligible) bias: with the correct fan-in and an N(0,1) bias the "
         "variance grows by 1 per layer, " + says("log10 mean square at layer 99",
                                                   met["q1_log10_ms_last_bias"])
         + f" (mean-field var_0 + 99 = 10^{pred['q1_log10_ms_last_bias']:.2f}) against "
         f"10^{met['q1_log10_ms_last_no_bias'].mean:.2f} without bias"),
        ("Activations per layer", all(steps),
         f"the figure; per-layer rms factor {factors}"),
        ("Backward pass",
         within(met["q3_log10_grad_first_notebook"], pred["q3_log10_grad_first_notebook"],
                abs_tol=0.3)
         and within(met["q3_log10_grad_first_fan_in"], pred["q3_log10_grad_first_fan_in"],
                    abs_tol=0.3) and abs(twin.mean) < 1e-6,
         "it mirrors the forward pass: dL/dh_0 is 10^" + str(met["q3_log10_grad_first_notebook"])
         + f" under the notebook's init (pred {pred['q3_log10_grad_first_notebook']:.1f}), 10^"
         f"{met['q3_log10_grad_first_fan_in']} with the correct fan-in (pred "
         f"{pred['q3_log10_grad_first_fan_in']:.2f}), and the bias changes it by {twin.mean:g} "
         "decades (a linear stack's backward pass never sees the bias)"),
        ("BatchNorm",
         within(met["q4_bn_std_tail"], pred["q4_bn_std_tail"], abs_tol=1e-3)
         and met["q4_bn_log10_bias_effect"].ci_high < -3 and met["q4_batch1_undefined"].mean == 1,
         f"with N(0,1) weights, batch 32, BN after every layer: std "
         f"{met['q4_bn_std_tail'].mean:.6f} at every layer (pred {pred['q4_bn_std_tail']:.6f}) "
         "where the same stack without BN overflows at layer "
         f"{met['q4_no_bn_first_bad_layer'].mean:.1f}; BN removes the bias (relative difference "
         f"to the bias-free twin 10^{met['q4_bn_log10_bias_effect'].mean:.1f}, "
         "float32 rounding); with the notebook's batch of 1 it is undefined"),
        ("ReLU",
         within(met["q5_relu_fan_in_step"], pred["q5_relu_fan_in_step"], abs_tol=STEP_TOL)
         and within(met["q5_relu_kaiming_step"], pred["q5_relu_kaiming_step"], abs_tol=STEP_TOL),
         f"1/sqrt(fan_in) halves the variance per layer: rms x"
         f"{math.exp(met['q5_relu_fan_in_step'].mean):.3f} (pred "
         f"x{math.exp(pred['q5_relu_fan_in_step']):.3f}); Kaiming sqrt(2/fan_in) keeps it: x"
         f"{math.exp(met['q5_relu_kaiming_step'].mean):.3f} (pred "
         f"x{math.exp(pred['q5_relu_kaiming_step']):.3f}, below 1 only by the fluctuation of the "
         "active units)"),
        ("Conv layer",
         within(met["q6_conv_normal_first_bad_layer"], pred["q6_conv_normal_first_bad_layer"],
                abs_tol=1.5) and overlaps(met["q6_conv_fan_in_log10_rms_last"], -1, 1),
         f"the same rule with fan_in = channels x 3 x 3: N(0,1) kernels ({CONV_CHANNELS} "
         f"channels) overflow at layer {met['q6_conv_normal_first_bad_layer']} (mean-field "
         f"{pred['q6_conv_normal_first_bad_layer']:.1f}); 1/sqrt(fan_in) keeps the rms at 10^"
         f"{met['q6_conv_fan_in_log10_rms_last']} after 100 layers (zero padding loses a little)"),
    ]


def judge_todo(m: Measurement, ctx: Context) -> Judgement:
    answers = todo_answers(m)
    agree = [ok for _, ok, _ in answers]
    evidence = " ".join(f"[{q}] {text}." for q, _, text in answers)
    if all(agree):
        verdict, instead = Verdict.REPRODUCED, ""
    else:
        verdict = Verdict.PARTLY if any(agree) else Verdict.NOT_REPRODUCED
        instead = "answers that disagree with theory: " + "; ".join(
            q for q, ok, _ in answers if not ok)
    return Judgement(verdict, "The TODO list asserts nothing; 'reproduced' means every "
                     "question has a measured answer that agrees with the fan-in theory. "
                     + evidence, holds_instead=instead,
                     tolerance=f"per-layer ln-rms steps within {STEP_TOL} of theory beyond their "
                     "CI (per-layer sd sqrt(psi'(25))/2 = 0.1 over ~60-98 layers); decades "
                     "within 0.3 (random-walk sd 0.43 per seed); BN std to 1e-3")


def plot_todo(m: Measurement, fig: Figure) -> None:
    fig.set_size_inches(16, 9)
    axes = fig.subplots(2, 3).ravel()
    frame = m.frames["layers"]

    def draw(ax: Axes, stacks: Sequence[Stack], column: str, title: str, ylabel: str) -> None:
        for stack in stacks:
            band(ax, frame[frame.condition == stack.label], column, stack.label)
        ax.set(title=title, xlabel="layer", ylabel=ylabel)

    draw(axes[0], [FAN_IN, FAN_IN_BIAS], "rms", "Q1 Xavier (fan-in) with an N(0,1) bias",
         "log10 rms")
    axes[0].plot(np.arange(DEPTH), 0.5 * np.log10(mean_field_var(WIDTH, WIDTH, 1.0, s0=INPUT)),
                 color="0.4", linestyle="--", label="mean-field sqrt(var_0 + layer)")
    draw(axes[1], list(CELLS.values()), "std", "Q2 the notebook's cells 4-7, per layer",
         "log10 std (0, inf, nan not drawn)")
    float32_limits(axes[1])
    draw(axes[2], [*PURPOSE_F64[:2], FAN_IN], "grad_rms", "Q3 backward: dL/dh per layer",
         "log10 rms of dL/dh")
    draw(axes[3], [BN, Stack(batch=32)], "std", "Q4 N(0,1) weights, batch 32, with BatchNorm",
         "log10 std")
    reference(axes[3], 0.0, "log10 std = 0 (std 1)")
    draw(axes[4], list(RELU.values()), "rms", "Q5 ReLU: fan-in vs Kaiming", "log10 rms")
    for stack in RELU.values():
        axes[4].plot(np.arange(DEPTH), [decades(typical_log_ms(
            WIDTH, stack.scale(1), i, s0=stack.scale(0), activation="relu")) for i in range(DEPTH)],
            color="0.4", linestyle="--")
    draw(axes[5], list(CONV.values()), "rms", f"Q6 3x3 conv, {CONV_CHANNELS} channels, 28x28",
         "log10 rms")
    float32_limits(axes[5])
    for ax in axes:
        ax.legend(fontsize=7)


register(Claim(
    id="bias.todo",
    statement="The notebook's open questions (does Xavier assume anything about the bias; "
              "activations per layer; the backward pass; BatchNorm; ReLU; conv) have measured "
              "answers that agree with the fan-in theory",
    source=Source("N", "216-223"),
    measure=measure_todo,
    judge=judge_todo,
    plot=plot_todo,
))
