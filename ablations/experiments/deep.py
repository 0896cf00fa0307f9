"""The lecture's deep network: its diagnostics as tidy frames, and the deep sweeps that several
families share; random stacks on Gaussian input for the lecture's x @ W demonstrations.

Diagnostics are read off a run recorded with `last_step` (each layer's last output and its
gradient, each parameter's gradient), as the lecture reads them after its loop: at init (a
1-step run: the first forward and backward) or after 1,000 steps (`steps="diag"`: the forward
pass of step 1,001, as the notebook's loop breaks after the update of i = 1,000). Update ratios
come from a run recorded with `update_ratios` (every step).

Deep sweeps (depths to 50, other nonlinearities, with or without BatchNorm) train networks the
lecture never trained, at a stated length, SWEEP_STEPS, with a convergence control at twice that
length: a claim judged on them must come out the same at CONTROL_STEPS.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from ablations import figures
from ablations.experiments.runs import RunTemplate, Trained, deep_run
from ablations.measurement import Metric
from makemore.diagnostics import activation_stats, per_member_std
from makemore.modules import ACTIVATIONS, Activation, Linear, Module, Scale, Sequential, Streams

SATURATED = 0.97  # the lecture's threshold for the deep network (L:279)
SWEEP_STEPS = 10_000  # networks the lecture never trained: long enough to rank them
CONTROL_STEPS = 2 * SWEEP_STEPS  # the convergence control: the conclusion must not change
KAIMING = {"tanh": 5 / 3, "relu": 2**0.5, "linear": 1.0}
READ_WINDOW = 100  # steps averaged for an update ratio read "at" a step (one step is one batch)
STACK_GAINS = (0.5, 1.0, 1.25, 1.5, 5 / 3, 2.0, 2.5, 3.0)  # the lecture's 1, 5/3, 2, 3 and between
DEEP_STACK_GAINS = (0.5, 1.0, 5 / 3, 3.0)  # the 20-layer stack at init ("if we had more layers")


def at_init(**options: Any) -> RunTemplate:
    """The deep network's first forward and backward pass, recorded."""
    return deep_run(1, record=("last_step",), decay=None, **options)


def after_diag(**options: Any) -> RunTemplate:
    """The deep network after the lecture's 1,000 steps at lr 0.1, recorded."""
    return deep_run("diag", record=("last_step",), **options)


def with_update_ratios(steps: int | str = "diag", **options: Any) -> RunTemplate:
    """The deep network with its update:data ratio recorded every step, at a constant lr."""
    return deep_run(steps, record=("update_ratios",), decay=None, **options)


def sweep(depth: int, nonlinearity: str = "tanh", batchnorm: bool = False,
          steps: int = SWEEP_STEPS, gain: float | None = None,
          vary: dict[str, Any] | None = None) -> RunTemplate:
    """A deep network the lecture never trained: `depth` hidden layers of 100, its own Kaiming
    gain unless given, BatchNorm before each nonlinearity (and after the output layer) or none,
    lr 0.1 dropped 10x at 3/4 of the run as the lecture does."""
    options: dict[str, Any] = {"depth": depth, "nonlinearity": nonlinearity}
    if batchnorm:
        options.update(batchnorm="before", batchnorm_last=True)
    if vary is None or "gain" not in vary:
        options["gain"] = KAIMING[nonlinearity] if gain is None else gain
    return deep_run(steps, vary=vary, **options)


# --- diagnostics ----------------------------------------------------------------------------------


def layer_stats(trained: Trained, kind: type[Module] = Activation,
                threshold: float = SATURATED) -> pd.DataFrame:
    """One row per layer of `kind` and member: layer (1 = next to the input), mean, std,
    saturated (|out| > threshold) and grad_std of the layer's recorded output, with the member's
    seed and conditions."""
    frame = pd.DataFrame(activation_stats(trained.model, threshold, kind))
    frame["layer"] = frame.position + 1
    frame["grad_std"] = frame.grad_std.astype(float)
    return frame.drop(columns=["position"]).merge(trained.members, on="member", how="left")


def parameter_labels(names: list[str]) -> list[str]:
    """C for the embedding, W1.. for the Linear weights, the last one 'W<n> (out)'."""
    labels, linear = [], 0
    for index, name in enumerate(names):
        if name.endswith("Embedding.weight"):
            labels.append("C")
            continue
        linear += 1
        labels.append(f"W{linear} (out)" if index == len(names) - 1 else f"W{linear}")
    return labels


def weights(model: Module) -> list[tuple[str, Any]]:
    """The 2-D parameters (the embedding and the Linear weights) in order."""
    return [(n, p) for n, p in model.named_parameters() if p.dim() == 3]


def grad_data(trained: Trained) -> pd.DataFrame:
    """One row per 2-D parameter and member: its label, data std, grad std and grad:data."""
    named = weights(trained.model)
    labels = parameter_labels([n for n, _ in named])
    rows = []
    for (name, p), label in zip(named, labels, strict=True):
        if p.grad is None:
            raise ValueError(f"{name} has no gradient: record the run with 'last_step'")
        data, grad = per_member_std(p).numpy(), per_member_std(p.grad).numpy()
        for member in range(p.shape[0]):
            rows.append({"member": member, "parameter": label, "data_std": data[member],
                         "grad_std": grad[member], "grad_data": grad[member] / data[member]})
    return pd.DataFrame(rows).merge(trained.members, on="member", how="left")


def update_ratios(trained: Trained) -> tuple[np.ndarray, list[str]]:
    """(members, steps, parameters) log10 update:data ratios, and the parameters' labels."""
    if "update_ratios" not in trained.recorded:
        raise ValueError("the run was not recorded with 'update_ratios'")
    names = [n for n, _ in weights(trained.model)]
    return trained.recorded["update_ratios"].numpy(), parameter_labels(names)


def ratio_curves(trained: Trained, points: int = 100) -> pd.DataFrame:
    """Tidy update-ratio curves, averaged over windows so that each has about `points` steps:
    step, parameter, ratio, with the member's seed and conditions."""
    ratios, labels = update_ratios(trained)
    window = max(ratios.shape[1] // points, 1)
    usable = ratios.shape[1] // window * window
    binned = ratios[:, :usable].reshape(ratios.shape[0], -1, window, ratios.shape[2]).mean(2)
    members, bins, params = np.meshgrid(np.arange(binned.shape[0]), np.arange(binned.shape[1]),
                                        np.arange(binned.shape[2]), indexing="ij")
    frame = pd.DataFrame({"member": members.ravel(), "step": (bins.ravel() + 1) * window,
                          "parameter": np.asarray(labels)[params.ravel()],
                          "ratio": binned.ravel()})
    return frame.merge(trained.members, on="member", how="left")


def ratios_read(trained: Trained, stop: int, window: int = READ_WINDOW) -> pd.DataFrame:
    """The log10 update:data ratio of each parameter and member read at step `stop` as the
    lecture reads its plot: the mean over the `window` steps ending there (step 0 alone for
    stop=1). Columns: member, parameter, ratio, with the member's seed and conditions."""
    ratios, labels = update_ratios(trained)
    start = max(stop - window, 0)
    values = ratios[:, start:stop].mean(axis=1)
    members, params = np.meshgrid(np.arange(values.shape[0]), np.arange(values.shape[1]),
                                  indexing="ij")
    frame = pd.DataFrame({"member": members.ravel(), "parameter": np.asarray(labels)[
        params.ravel()], "ratio": values.ravel()})
    return frame.merge(trained.members, on="member", how="left")


def role(parameter: pd.Series) -> pd.Series:
    """'embedding' (C), 'output' (the last Linear) or 'hidden' (the Linear weights between)."""
    return pd.Series(np.where(parameter == "C", "embedding", np.where(
        parameter.str.endswith("(out)"), "output", "hidden")), index=parameter.index)


@torch.no_grad()
def collapse_error(model: Module, x: torch.Tensor) -> np.ndarray:
    """Per member: the worst difference between a linear stack's layer-by-layer map of the
    embedded contexts x (E, B, fan_in) and the one map x @ (W1 ... Wk) + b collapsed from its
    weights and biases, in units of the rounding bound n u |x||W1|..|Wk| (+ the biases' terms),
    n the summed lengths of the chain's dot products (Higham)."""
    linears = [m for m in model.modules() if isinstance(m, Linear)]
    stepwise, magnitude = x, x.abs()
    weight, bias = None, None
    for layer in linears:
        w, b = layer.weight, layer.bias.unsqueeze(1)
        stepwise = torch.baddbmm(b, stepwise, w)
        magnitude = torch.baddbmm(b.abs(), magnitude, w.abs())
        weight = w if weight is None else torch.bmm(weight, w)
        bias = b if bias is None else torch.baddbmm(b, bias, w)
    collapsed = torch.baddbmm(bias, x, weight)
    n_terms = sum(m.weight.shape[1] + 1 for m in linears)
    bound = n_terms * torch.finfo(x.dtype).eps / 2 * magnitude
    return ((stepwise - collapsed).abs() / bound).flatten(1).max(1).values.cpu().numpy()


def legend_outside(ax: Any, title: str | None = None) -> None:
    """The figure's legend beside the axes, clear of the data (figures.legend, placed)."""
    figures.legend(ax, loc="center left", bbox_to_anchor=(1.0, 0.5), title=title)


# --- per-seed metrics -----------------------------------------------------------------------------


def seed_values(frame: pd.DataFrame, column: str, **where: Any) -> pd.Series:
    """One value per seed (in seed order): `column` averaged over the rows matching `where`
    (a value, or a tuple of accepted values; floats compared with isclose)."""
    rows = frame
    for name, wanted in where.items():
        values = wanted if isinstance(wanted, tuple) else (wanted,)
        mask = np.zeros(len(rows), dtype=bool)
        for value in values:
            mask |= (np.isclose(rows[name], value) if isinstance(value, float)
                     else (rows[name] == value).to_numpy())
        rows = rows[mask]
    if rows.empty:
        raise ValueError(f"no rows of {column} where {where}")
    return rows.groupby("seed", sort=True)[column].mean()


def seed_metric(frame: pd.DataFrame, column: str, unit: str = "", **where: Any) -> Metric:
    return Metric.of(seed_values(frame, column, **where), unit)


def seed_ratio(frame: pd.DataFrame, column: str, top: dict[str, Any], bottom: dict[str, Any],
               unit: str = "") -> Metric:
    """Per seed, column where `top` over column where `bottom`."""
    return Metric.of(seed_values(frame, column, **top) / seed_values(frame, column, **bottom),
                     unit)


def log_ratio_spread(frame: pd.DataFrame, column: str, unit: str = "decades") -> Metric:
    """Per seed, log10 of the largest over the smallest value of `column` among its rows."""
    per_seed = frame.groupby("seed", sort=True)[column]
    return Metric.of(np.log10(per_seed.max() / per_seed.min()), unit)


def unigram_loss(y_train: torch.Tensor, y_dev: torch.Tensor) -> float:
    """The dev loss of the best input-independent prediction: the training split's character
    frequencies. A network that learned nothing from its input does no better."""
    counts = torch.bincount(y_train, minlength=int(y_train.max()) + 1).double()
    log_p = torch.log(counts / counts.sum())
    return float(-log_p[y_dev].mean())


# --- random stacks on Gaussian input --------------------------------------------------------------


def gaussian_stack(seeds: Sequence[int], widths: Sequence[int], scales: Sequence[Scale],
                   phi: str, batch: int, backward: bool = False,
                   threshold: float = SATURATED) -> pd.DataFrame:
    """len(widths) - 1 blocks Linear(widths[i], widths[i+1], no bias) -> phi, the i-th weight
    drawn randn * scales[i] (a number, or one per member), on x ~ N(0, 1) of `batch` rows, one
    member per seed; with `backward`, a random N(0, 1) upstream gradient on the last output.
    One row per member and block: layer (1 = next to the input), pre_std and grad_std of the
    Linear output, post_std, post_grad_std and saturated of the nonlinearity's."""
    streams = Streams(list(seeds))
    layers: list[Module] = []
    for fan_in, fan_out, scale in zip(widths[:-1], widths[1:], scales, strict=True):
        layers += [Linear(fan_in, fan_out, bias=False, streams=streams, weight_scale=scale),
                   ACTIVATIONS[phi]()]
    model = Sequential(layers)
    x = streams.randn(batch, widths[0])
    with torch.set_grad_enabled(backward):
        out = model(x)
        if backward:
            for layer in layers:
                layer.out.retain_grad()
            out.backward(streams.randn(batch, widths[-1]))
    pre = pd.DataFrame(activation_stats(model, threshold, kind=Linear))
    post = pd.DataFrame(activation_stats(model, threshold))
    return pd.DataFrame({"member": pre.member, "seed": [seeds[m] for m in pre.member],
                         "layer": pre.position + 1, "pre_std": pre["std"],
                         "grad_std": pre.grad_std.astype(float), "post_std": post["std"],
                         "post_grad_std": post.grad_std.astype(float),
                         "saturated": post.saturated})


def log2_slope(frame: pd.DataFrame, column: str) -> pd.Series:
    """Per seed: the least-squares slope of log2(column^2) against the layer, in bits of
    variance per layer."""
    return frame.groupby("seed", sort=True).apply(
        lambda rows: float(np.polyfit(rows.layer, np.log2(rows[column] ** 2), 1)[0]),
        include_groups=False)


def finite_width_drift(phi: str, width: int) -> float:
    """The largest expected log2 of one layer's variance ratio r beyond its mean-field value at
    width n: r has mean 1 and, for a single input, variance 2/n (linear: a chi-square over n)
    or 5/n (ReLU: relu(z)^2 has fourth moment 3/2 against its squared mean 1/4, times 4), so
    E[ln r] = -Var/2 to first order (Hanin & Nica 2019); a batch of inputs averages r, so the
    drift is at most this."""
    variance = {"linear": 2.0, "relu": 5.0}[phi] / width
    return -variance / 2 / math.log(2)


def std_rel_sd(n: int, kurtosis: float) -> float:
    """Relative sd of the sample std of n independent draws of a distribution with this
    kurtosis (3 Gaussian, 9/5 uniform): Var(s^2) / sigma^4 = (kurtosis - 1) / n, halved for s."""
    return 0.5 * math.sqrt((kurtosis - 1) / n)


def matmul_std_rel_sd(fan_in: int, fan_out: int, batch: int) -> float:
    """Relative sd of std(x @ W) for x (batch x fan_in) and W (fan_in x fan_out) ~ N(0, 1): the
    sample variance has relative variance 2 / (fan_in fan_out) from W and 2 / batch (1 / fan_in
    + 1 / fan_out) from x given W; the std half the relative sd of the variance."""
    return 0.5 * math.sqrt(2 / (fan_in * fan_out) + 2 / batch * (1 / fan_in + 1 / fan_out))


# --- draws of the lecture's x @ W demonstrations and of torch.nn.init -----------------------------


def worst_abs(frame: pd.DataFrame, column: str, unit: str = "sd") -> Metric:
    """Per seed, the largest |column| over its rows."""
    return Metric.of(frame[column].abs().groupby(frame.seed, sort=True).max(), unit)


def matmul_draws(seeds: Sequence[int], batch: int, fan_out: int, fan_ins: Sequence[int],
                 scales: Sequence[float]) -> pd.DataFrame:
    """std(x @ W * scale) for x (batch x fan_in) and W (fan_in x fan_out) ~ N(0, 1), a fresh
    draw per scale as in the lecture's cell, and W / sqrt(fan_in), per fan-in and seed; z is
    the draw's distance from sqrt(fan_in) x scale in its sampling sd (matmul_std_rel_sd)."""
    rows = []
    for fan_in in fan_ins:
        streams = Streams(list(seeds))
        labelled = [(f"{s:g}", s) for s in scales] + [("1/sqrt(fan_in)", 1 / math.sqrt(fan_in))]
        for label, scale in labelled:
            x, w = streams.randn(batch, fan_in), streams.randn(fan_in, fan_out) * scale
            predicted = math.sqrt(fan_in) * scale
            for seed, std in zip(seeds, torch.bmm(x, w).flatten(1).std(1).tolist(), strict=True):
                rows.append({"fan_in": fan_in, "scale": label, "seed": seed, "std": std,
                             "predicted": predicted, "z": (std / predicted - 1)
                             / matmul_std_rel_sd(fan_in, fan_out, batch)})
    return pd.DataFrame(rows)


def kaiming_normal_draws(seeds: Sequence[int], fan_ins: Sequence[int],
                         elements: int) -> pd.DataFrame:
    """std x sqrt(fan_in) of torch.nn.init.kaiming_normal_ on (elements / fan_in, fan_in)
    tensors per nonlinearity ('default': no argument, i.e. leaky_relu with slope 0), with its
    distance z from calculate_gain in sampling sd of a Gaussian sample std."""
    rows = []
    for nonlinearity in ("linear", "tanh", "relu", "default"):
        options = {} if nonlinearity == "default" else {"nonlinearity": nonlinearity}
        gain = torch.nn.init.calculate_gain(options.get("nonlinearity", "relu"))
        for fan_in in fan_ins:
            for seed in seeds:
                w = torch.empty(elements // fan_in, fan_in)
                torch.nn.init.kaiming_normal_(w, generator=torch.Generator().manual_seed(seed),
                                              **options)
                std = w.std().item() * math.sqrt(fan_in)
                rows.append({"nonlinearity": nonlinearity, "fan_in": fan_in, "seed": seed,
                             "std_x_sqrt_fan_in": std,
                             "z": (std / gain - 1) / std_rel_sd(w.numel(), 3.0)})
    return pd.DataFrame(rows)


def torch_linear(fan_in: int, fan_out: int, seed: int) -> torch.nn.Linear:
    """torch.nn.Linear with its own default init, drawn from `seed` without touching the global
    generator's state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.nn.Linear(fan_in, fan_out)


def linear_default_draws(seeds: Sequence[int], fan_ins: Sequence[int],
                         elements: int) -> pd.DataFrame:
    """torch.nn.Linear's default weights per fan-in and seed: std and max |w| times sqrt(fan_in),
    and z, the std's distance from that of U(-b, b), b / sqrt(3) with b = 1 / sqrt(fan_in), in
    sampling sd of a uniform sample std."""
    rows = []
    for fan_in in fan_ins:
        for seed in seeds:
            w = torch_linear(fan_in, elements // fan_in, seed).weight.detach()
            std = w.std().item() * math.sqrt(fan_in)
            rows.append({"fan_in": fan_in, "seed": seed, "std x sqrt(fan_in)": std,
                         "max |w| x sqrt(fan_in)": w.abs().max().item() * math.sqrt(fan_in),
                         "z": (std * math.sqrt(3) - 1) / std_rel_sd(w.numel(), 9 / 5)})
    return pd.DataFrame(rows)


@torch.no_grad()
def default_stack(seeds: Sequence[int], width: int, depth: int, batch: int) -> pd.DataFrame:
    """A stack of `depth` default torch.nn.Linear layers fed N(0, 1) against one of the
    lecture's randn / sqrt(fan_in) (no bias): per layer the std across examples (the part of
    the output that carries the input)."""
    rows = []
    for seed in seeds:
        g = torch.Generator().manual_seed(seed)
        default = lecture = torch.randn(batch, width, generator=g)
        for layer in range(1, depth + 1):
            default = torch_linear(width, width, seed + layer)(default)
            lecture = lecture @ (torch.randn(width, width, generator=g) / math.sqrt(width))
            rows += [{"seed": seed, "layer": layer, "init": name,
                      "std_across_examples": h.std(0).pow(2).mean().sqrt().item()}
                     for name, h in (("torch.nn.Linear default", default),
                                     ("randn / sqrt(fan_in) (the lecture's)", lecture))]
    return pd.DataFrame(rows)


def mode_stack(seeds: Sequence[int], sizes: Sequence[int], mode: str,
               batch: int) -> pd.DataFrame:
    """A ReLU stack of these widths, each weight drawn gain / sqrt(fan) with fan its fan_in or
    its fan_out (`mode`), gain 1 on the first layer (its input is Gaussian) and sqrt 2 after a
    ReLU; forward and backward (gaussian_stack), one member per seed."""
    scales = [(1.0 if i == 0 else math.sqrt(2)) / math.sqrt(a if mode == "fan_in" else b)
              for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True))]
    return gaussian_stack(seeds, sizes, scales, "relu", batch, backward=True).assign(mode=mode)
