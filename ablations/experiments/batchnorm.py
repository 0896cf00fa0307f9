"""The measurements of the bn claims about the one-hidden-layer MLP and BatchNorm itself
(ablations/claims/bn_mlp.py): one function per claim, named in its docstring's first word,
returning the Measurement whose metrics the claim declares; and the helpers they share.

On a trained BN MLP: its statistics (running, calibrated over the training set, replayed with
other momenta and batch sizes) and the val loss with each; an example's jitter over random
batch companions; the bias before BN at the end of training. On the layer alone: standardising
a batch, constant batches, torch.nn as reference, the bias gradient through BN, and the graph
that a buffer update outside torch.no_grad builds.

Anything that normalises a trained model with other statistics goes through `buffers_kept`,
which puts its running buffers and train/eval mode back afterwards.
"""

from __future__ import annotations

import ctypes
import math
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from itertools import product

import numpy as np
import pandas as pd
import torch

from ablations.context import Context
from ablations.experiments.runs import Trained
from ablations.measurement import Measurement, Metric
from makemore.models import DeepConfig, deep, mlp
from makemore.modules import (
    BatchNorm1d,
    Linear,
    Module,
    Sequential,
    Streams,
    Tanh,
    batch_variance,
    member_cross_entropy,
)
from makemore.train import TrainConfig, calibrate, evaluate, train

BATCH = 32  # the lecture's batch size
SUBSET = 1_024  # training examples of the overfitting arm of bn.regulariser


def nats(values) -> Metric:
    return Metric.of(values, "nats")


def numerics(values, unit: str = "") -> Metric:
    """Rounding residues, timings and byte counts: compared only with their bound."""
    return Metric.of(np.atleast_1d(values), unit, kind="numerics")


def rows(frame: pd.DataFrame, **where) -> pd.DataFrame:
    for column, value in where.items():
        frame = frame[frame[column] == value]
    return frame


# --- the trained BN MLP and its statistics ---------------------------------------------------


def first_linear(model: Module) -> Linear:
    return next(m for m in model.modules() if isinstance(m, Linear))


def norm_of(model: Module) -> BatchNorm1d:
    return next(m for m in model.modules() if isinstance(m, BatchNorm1d))


def members_of(x: torch.Tensor, model: Module) -> torch.Tensor:
    """The same examples for every member: (B, ...) -> (E, B, ...)."""
    weight = model.parameters()[0]
    return x.to(weight.device).unsqueeze(0).expand(weight.shape[0], *x.shape)


@contextmanager
def buffers_kept(model: Module) -> Iterator[BatchNorm1d]:
    """The model's BatchNorm; afterwards its buffers and the model's mode are as before."""
    norm = norm_of(model)
    saved = norm.running_mean, norm.running_var, model.training
    try:
        yield norm
    finally:
        norm.running_mean, norm.running_var = saved[0], saved[1]
        model.train(saved[2])


def std_of(norm: BatchNorm1d) -> torch.Tensor:
    """The std the BatchNorm normalises with in eval mode (its buffer holds a std or a var)."""
    return norm.running_var if norm.track == "std" else norm.running_var.sqrt()


def unit_statistics(model: Module, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) std of every unit of the BatchNorm's input over the examples x:
    (E, units) each, accumulated in float64 by the library's calibration."""
    with buffers_kept(model) as norm:
        calibrate(model, x)
        return norm.running_mean.cpu().numpy(), std_of(norm).cpu().numpy()


def val_with(model: Module, dev: tuple[torch.Tensor, torch.Tensor], mean: np.ndarray,
             std: np.ndarray) -> np.ndarray:
    """Per-member val loss with the BatchNorm normalising by the given statistics."""
    with buffers_kept(model) as norm:
        like = norm.running_mean
        stored = std if norm.track == "std" else std**2
        norm.running_mean = torch.as_tensor(mean).to(like)
        norm.running_var = torch.as_tensor(stored).to(like)
        return evaluate(model, dev).numpy()


@dataclass
class Statistics:
    """The trained BN MLP's running buffers and the statistics calibrated once over the whole
    training set, (members, units) each, and the val loss with each."""

    running_mean: np.ndarray
    running_std: np.ndarray
    calibrated_mean: np.ndarray
    calibrated_std: np.ndarray
    val_running: np.ndarray
    val_calibrated: np.ndarray


def statistics(ctx: Context, trained: Trained) -> Statistics:
    """Computed once per process for a trained run."""
    def compute() -> Statistics:
        model, splits = trained.model, ctx.splits()
        norm = norm_of(model)
        running = norm.running_mean.cpu().numpy(), std_of(norm).cpu().numpy()
        calibrated = unit_statistics(model, splits.train[0])
        return Statistics(*running, *calibrated, evaluate(model, splits.dev).numpy(),
                          val_with(model, splits.dev, *calibrated))

    return ctx.shared(("bn-statistics", tuple(trained.keys)), compute)


def rms_error(estimate: np.ndarray, truth: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Per member: RMS over units of (estimate - truth) / scale."""
    return np.sqrt((((estimate - truth) / scale) ** 2).mean(-1))


@torch.no_grad()
def bn_input(model: Sequential, x: torch.Tensor) -> torch.Tensor:
    """The BatchNorm's input (the pre-activations) for examples x of every member: (E, B, H)."""
    h = members_of(x, model)
    for layer in model.layers[: model.layers.index(norm_of(model))]:
        h = layer(h)
    return h


@torch.no_grad()
def replay_running(model: Sequential, x_train: torch.Tensor, momentum: float, batch: int,
                   steps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The running mean and std the BatchNorm would hold with another momentum or batch size:
    the lecture's update (EMA of the batch mean and unbiased batch std) over `steps` random
    batches of the trained network, started from its running buffers. Momentum never enters
    training (batches are normalised by their own statistics), so a run with this momentum
    would have the same weights; at the end of training they move too little within 1/m
    steps for the replay's fixed weights to matter."""
    norm = norm_of(model)
    mean, std = norm.running_mean.clone(), std_of(norm).clone()
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        h = bn_input(model, x_train[torch.randint(0, x_train.shape[0], (batch,),
                                                  generator=generator)])
        mean = (1 - momentum) * mean + momentum * h.mean(1)
        std = (1 - momentum) * std + momentum * batch_variance(h).sqrt().squeeze(1)
    return mean.cpu().numpy(), std.cpu().numpy()


@torch.no_grad()
def batch_statistics_loss(model: Module, data: tuple[torch.Tensor, torch.Tensor],
                          seed: int, batch: int = BATCH) -> np.ndarray:
    """Per-member loss over a split forwarded in random batches (a seeded permutation) in
    training mode: each batch normalised by its own statistics, as in training."""
    x_all, y_all = data
    order = torch.randperm(x_all.shape[0], generator=torch.Generator().manual_seed(seed))
    with buffers_kept(model):
        model.train()
        losses = []
        for start in range(0, x_all.shape[0] - batch + 1, batch):
            pick = order[start : start + batch]
            logits = model(members_of(x_all[pick], model))
            losses.append(member_cross_entropy(logits, members_of(y_all[pick], model)).double())
        return torch.stack(losses).mean(0).cpu().numpy()


@torch.no_grad()
def single_example_loss(model: Module, data: tuple[torch.Tensor, torch.Tensor]) -> np.ndarray:
    """Per-member mean loss with every example forwarded alone, in eval mode."""
    x_all, y_all = data
    was_training = model.training
    model.eval()
    losses = [member_cross_entropy(model(members_of(x_all[i : i + 1], model)),
                                   members_of(y_all[i : i + 1], model)).double()
              for i in range(x_all.shape[0])]
    model.train(was_training)
    return torch.stack(losses).mean(0).cpu().numpy()


@torch.no_grad()
def companion_jitter(model: Module, examples: torch.Tensor, pool: torch.Tensor, batch: int,
                     draws: int, seed: int, training: bool = True) -> np.ndarray:
    """Per member: the std over `draws` random sets of batch - 1 companions (from `pool`) of
    an example's logits, averaged over its 27 logits and over the examples."""
    generator = torch.Generator().manual_seed(seed)
    spreads, was_training = [], model.training
    has_bn = any(isinstance(m, BatchNorm1d) for m in model.modules())
    with buffers_kept(model) if has_bn else nullcontext():
        model.train(training)
        for example in examples:
            logits = []
            for _ in range(draws):
                others = pool[torch.randint(0, pool.shape[0], (batch - 1,), generator=generator)]
                logits.append(model(members_of(torch.cat([example[None], others]), model))[:, 0])
            spreads.append(torch.stack(logits).std(0).mean(-1))
    model.train(was_training)
    return torch.stack(spreads).mean(0).cpu().numpy()


def final_losses(runs: dict[str, Trained], **labels: str) -> Measurement:
    """Each run's members labelled by `labels` (run name -> label, column "run"), and the val
    loss of each run over seeds as val_<run name>."""
    table = pd.concat([runs[k].losses_frame().assign(run=v) for k, v in labels.items()])
    return Measurement(table, {f"val_{k}": nats(runs[k].val_loss) for k in labels},
                       steps=min(runs[k].steps for k in labels))


def jitter(ctx: Context, runs: dict[str, Trained], batches: tuple[int, ...],
           examples: int) -> Measurement:
    """bn.coupling. Dev examples forwarded with random training examples as batch companions:
    per member, the std of their logits over the draws (`companion_jitter`) with batch
    statistics at each batch size, and at batch 32 for the two nets that cannot couple
    examples: the same net in eval mode, and the MLP without BN."""
    splits, draws = ctx.splits(), max(20, ctx.profile.samples // 20)
    order = torch.randperm(splits.dev[0].shape[0], generator=torch.Generator().manual_seed(0))
    picked, pool = splits.dev[0][order[:examples]], splits.train[0]
    conditions = [("batch statistics", runs["bn"].model, b, True) for b in batches] + [
        ("eval mode", runs["bn"].model, BATCH, False), ("no BN", runs["no_bn"].model, BATCH, True)]
    t = pd.concat([runs["bn"].members.assign(condition=name, batch=b, jitter=companion_jitter(
        model, picked, pool, b, draws, seed=b, training=training))
        for name, model, b, training in conditions])
    return Measurement(t, {
        "jitter_b32": nats(rows(t, condition="batch statistics", batch=BATCH).jitter),
        "jitter_eval": numerics(rows(t, condition="eval mode").jitter, "nats"),
        "jitter_no_bn": numerics(rows(t, condition="no BN").jitter, "nats")},
        steps=runs["bn"].steps)


SETTINGS = {"": "whole data", "small_": f"{SUBSET:,} examples",
            "long_": f"{SUBSET:,} examples"}  # run name prefixes of bn.regulariser


def regularisation(ctx: Context, runs: dict[str, Trained]) -> Measurement:
    """bn.regulariser. Train-val gap and val loss with BN (runs "<prefix>bn") and without
    ("<prefix>no_bn") in each setting; train loss on what each net trained on."""
    subset = ctx.splits().train[0][:SUBSET], ctx.splits().train[1][:SUBSET]
    frames: list[pd.DataFrame] = []
    metrics: dict[str, Metric] = {}
    for (prefix, setting), config in product(SETTINGS.items(), ("bn", "no_bn")):
        run = runs[prefix + config]
        gap = run.val_loss - (evaluate(run.model, subset).numpy() if prefix else run.train_loss)
        frames.append(run.members.assign(setting=f"{setting}\n{run.steps:,} steps", gap=gap,
                                         config="with BN" if config == "bn" else "without BN"))
        metrics |= {f"{prefix}gap_{config}": nats(gap), f"{prefix}val_{config}": nats(run.val_loss)}
    return Measurement(pd.concat(frames), metrics, steps=min(runs["bn"].steps,
                                                             runs["no_bn"].steps))


def calibration(ctx: Context, runs: dict[str, Trained]) -> Measurement:
    """bn.calibrate. Per member, the trained BN MLP's val loss with the statistics BN may use:
    the training set's, calibrated once; the dev split's own, as one batch (the lecture's
    evaluation before calibration, L:139); batches of 32 with their own (training mode). And
    the first examples of the split forwarded one at a time, and batched, calibrated."""
    run, splits = runs["bn"], ctx.splits()
    stats, model = statistics(ctx, run), run.model
    head = splits.dev[0][: ctx.profile.samples], splits.dev[1][: ctx.profile.samples]
    losses = {"val_calibrated": stats.val_calibrated,
              "val_own_split": val_with(model, splits.dev, *unit_statistics(model, splits.dev[0]))}
    with buffers_kept(model) as norm:
        norm.set_statistics(torch.as_tensor(stats.calibrated_mean),
                            torch.as_tensor(stats.calibrated_std) ** 2)
        losses["alone"] = single_example_loss(model, head)
        losses["batched"] = evaluate(model, head).numpy()
        losses["val_batch32"] = batch_statistics_loss(model, splits.dev, seed=0)
    table = pd.concat([run.members.assign(statistics=CALIBRATION[k], whole_split=k.startswith(
        "val_"), val_loss=v) for k, v in losses.items()])
    return Measurement(table, {k: nats(v) for k, v in losses.items()}, steps=run.steps)


CALIBRATION = {"val_calibrated": "calibrated (training set)", "val_own_split": "own, as one batch",
               "alone": "calibrated, one at a time", "batched": "calibrated, batched",
               "val_batch32": "own, batches of 32"}


def running_statistics(ctx: Context, runs: dict[str, Trained]) -> Measurement:
    """bn.running-stats. The running mean and std (momentum 0.001) at the end against the
    calibrated statistics, in unit sd: RMS over units, and the largest difference of either;
    their ratio (an average of batch stds is biased low: c4(32) = 0.992 for Gaussian units);
    and the val loss with each."""
    s = statistics(ctx, runs["bn"])
    errors = {"mean": rms_error(s.running_mean, s.calibrated_mean, s.calibrated_std),
              "std": rms_error(s.running_std, s.calibrated_std, s.calibrated_std)}
    largest = np.maximum(np.abs(s.running_mean - s.calibrated_mean),
                         np.abs(s.running_std - s.calibrated_std)) / s.calibrated_std
    table = pd.concat([runs["bn"].members.assign(buffer=k, error=v) for k, v in errors.items()])
    return Measurement(table, {
        "mean_error": Metric.of(errors["mean"], "sd"), "std_error": Metric.of(errors["std"], "sd"),
        "largest_difference": Metric.of(largest.max(-1), "sd"),
        "std_ratio": Metric.of((s.running_std / s.calibrated_std).mean(-1)),
        "val_running": nats(s.val_running), "val_calibrated": nats(s.val_calibrated)},
        steps=runs["bn"].steps)


def momentum(ctx: Context, runs: dict[str, Trained],
             replayed: tuple[tuple[float, int], ...]) -> Measurement:
    """bn.momentum. Per member and (momentum m, batch B): the running mean's RMS error over
    units against the calibrated mean (unit sd), and the val loss with those running
    statistics; m 0.001 at B 32 as trained, the others replayed (`replay_running`, 10/m
    batches). Metrics err_/val_m<m without the dot>_b<B>."""
    run, splits = runs["bn"], ctx.splits()
    s = statistics(ctx, run)
    buffers = {(0.001, BATCH): (s.running_mean, s.running_std)}
    for m, b in replayed:
        buffers[m, b] = replay_running(run.model, splits.train[0], m, b, round(10 / m), seed=b)
    t = pd.concat([run.members.assign(
        momentum=m, batch=b, condition=f"m {m:g}\nB {b}",
        mean_error=rms_error(mean, s.calibrated_mean, s.calibrated_std),
        val_cost=val_with(run.model, splits.dev, mean, std) - s.val_calibrated)
        for (m, b), (mean, std) in buffers.items()])
    metrics = {"val_calibrated": nats(s.val_calibrated)}
    for (m, b), frame in t.groupby(["momentum", "batch"]):
        key = f"m{str(m).replace('.', '')}_b{b}"
        metrics |= {f"err_{key}": Metric.of(frame.mean_error, "sd"),
                    f"val_{key}": nats(frame.val_cost.to_numpy() + s.val_calibrated)}
    return Measurement(t, metrics, steps=run.steps)


# --- the bias before BN ----------------------------------------------------------------------


def rounding_bound(h: torch.Tensor, upstream: torch.Tensor, gamma: torch.Tensor | float,
                   eps: float) -> torch.Tensor:
    """What rounding can leave of a bias gradient that BN cancels: b.grad = sum_i g_i with
    g_i = (gamma / sigma)(d_i - mean(d) - xhat_i mean(d xhat)), zero in exact arithmetic; a sum
    of B terms of size |gamma d_i| / sigma, each from a centring with conditioning
    1 + max|h| / sigma, is off by at most about B u cond sum_i |gamma d_i| / sigma (per unit;
    the batch is dim -2)."""
    u = torch.finfo(h.dtype).eps / 2
    h = h.detach()
    batch = h.shape[-2]
    sigma = torch.sqrt(h.var(-2) + eps)
    condition = 1 + h.abs().amax(-2) / sigma
    return batch * u * condition * (gamma * upstream).abs().sum(-2) / sigma


def bias_gradient(batch: int, fan_in: int, fan_out: int, seed: int, dtype: torch.dtype,
                  batchnorm: bool = True) -> float:
    """Linear (bias randn * 0.01) -> BatchNorm1d (eps 1e-5) with a random upstream gradient:
    the bias gradient in units of `rounding_bound`, worst unit. Without BN (the control) the
    bias gradient is sum_i d_i, which nothing cancels: its median unit in the same units."""
    streams = Streams([seed])
    linear = Linear(fan_in, fan_out, streams=streams, bias_scale=0.01)
    x, upstream = streams.randn(batch, fan_in).to(dtype), streams.randn(batch, fan_out).to(dtype)
    weight, bias = linear.weight.detach().to(dtype), linear.bias.detach().to(dtype)  # type: ignore
    h = x @ weight.requires_grad_() + bias.requires_grad_()
    norm = BatchNorm1d(fan_out, eps=1e-5)
    norm.gamma, norm.beta = norm.gamma.to(dtype), norm.beta.to(dtype)
    ((norm(h) if batchnorm else h) * upstream).sum().backward()
    units = bias.grad.abs() / rounding_bound(h, upstream, 1.0, norm.eps)  # type: ignore[union-attr]
    return float(units.max() if batchnorm else units.median())


def bias_before_bn(ctx: Context, runs: dict[str, Trained],
                   shapes: tuple[tuple[int, int, int], ...]) -> Measurement:
    """bn.bias-zero-grad. `bias_gradient` per seed and (batch, fan_in, fan_out): float32,
    float64, and without BN (the control). Then the lecture's MLP trained with b1 (randn * 0.01)
    before BN (run "b1"), per member: b1's gradient on a batch (`trained_bias_gradient`), how
    far b1 moved from its init (worst unit) relative to how far BN's beta moved from 0 (mean
    over units), and the val loss against the MLP without b1 (run "bn")."""
    cases = (("float32", torch.float32, True), ("float64", torch.float64, True),
             ("no BN (control)", torch.float32, False))
    table = pd.DataFrame([{"seed": s, "shape": f"{b}x{i}->{o}", "case": case,
                           "over_bound": bias_gradient(b, i, o, s, dtype, with_bn)}
                          for s in ctx.seeds for b, i, o in shapes
                          for case, dtype, with_bn in cases])
    run, splits = runs["b1"], ctx.splits()
    pick = torch.randint(0, splits.train[0].shape[0], (BATCH,),
                         generator=torch.Generator().manual_seed(0))
    grad = trained_bias_gradient(run.model, splits.train[0][pick], splits.train[1][pick])
    init, trained = first_linear(mlp(Streams(list(run.members.seed)), "batchnorm", b1=0.01)), \
        first_linear(run.model)
    assert trained.bias is not None and init.bias is not None
    moved = (trained.bias - init.bias).abs().amax(-1) / norm_of(run.model).beta.abs().mean(-1)
    table = pd.concat([table, run.members.assign(case="trained MLP", over_bound=grad)])
    worst = table.groupby("case").over_bound
    losses = final_losses(runs, b1="with b1", bn="without b1")
    return Measurement(table, {
        **losses.metrics, "grad_f32": numerics(worst.max()["float32"], "x bound"),
        "grad_f64": numerics(worst.max()["float64"], "x bound"),
        "control": Metric.exact(worst.min()["no BN (control)"], "x bound"),
        "trained_grad": numerics(grad, "x bound"),
        "b1_moved": numerics(moved.detach().cpu().numpy())}, steps=losses.steps)


def trained_bias_gradient(model: Sequential, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Per member: the gradient of the bias before BN on one batch of the trained network, in
    units of `rounding_bound` (worst unit)."""
    linear, norm = first_linear(model), norm_of(model)
    with buffers_kept(model):
        model.train()
        for p in model.parameters():
            p.grad = None
        h = linear(model.layers[1](model.layers[0](members_of(x, model))))
        out = norm(h)
        out.retain_grad()
        logits = model.layers[-1](model.layers[-2](out))
        member_cross_entropy(logits, members_of(y, model)).sum().backward()
        assert out.grad is not None and linear.bias is not None and linear.bias.grad is not None
        bound = rounding_bound(h, out.grad, norm.gamma.detach().unsqueeze(1), norm.eps)
        units = linear.bias.grad.abs() / bound
    return units.amax(-1).detach().cpu().numpy()


# --- the layer alone -------------------------------------------------------------------------


def standardised_errors(x: torch.Tensor, convention: str) -> dict[str, float]:
    """BatchNorm1d (gamma 1, beta 0, eps 0) on x of shape (1, n, width): the worst unit's batch
    mean and its std in the convention it normalised with, off from 0 and 1 in ulps of the
    unit's conditioning u (1 + |mean| / std); and the std in the other convention."""
    n = x.shape[1]
    with torch.no_grad():
        out = BatchNorm1d(x.shape[2], eps=0.0, convention=convention)(x)[0].double()
    exact = x[0].double()
    own = convention == "lecture"  # the lecture divides by the unbiased std, torch the biased
    ulp = torch.finfo(x.dtype).eps
    conditioning = ulp * (1 + exact.mean(0).abs() / exact.std(0))
    return {"mean_error_ulps": float((out.mean(0).abs() / conditioning).max()),
            "std_error_ulps": float(((out.std(0, unbiased=own) - 1).abs() / conditioning).max()),
            "other_std": float(out.std(0, unbiased=not own).mean()),
            "other_std_predicted": math.sqrt((n - 1) / n) ** (1 if own else -1)}


def constant_batch(value: float, batch: int, width: int, eps: float) -> dict[str, float]:
    """BatchNorm1d on a float32 batch whose rows all equal `value` (batch variance exactly 0):
    the share of non-finite outputs and of non-finite input gradients."""
    x = torch.full((1, batch, width), value, requires_grad=True)
    out = BatchNorm1d(width, eps=eps)(x)
    (out * torch.linspace(-1, 1, batch).view(1, batch, 1)).sum().backward()
    return {"nonfinite_out": float((~torch.isfinite(out.detach())).float().mean()),
            "nonfinite_grad": float((~torch.isfinite(x.grad)).float().mean())}  # type: ignore


def standardisation(ctx: Context, batches: tuple[int, ...], widths: tuple[int, ...],
                    inputs: tuple[tuple[float, float, str], ...]) -> Measurement:
    """bn.standardise. `standardised_errors` for every seed, batch size, width and input law
    (loc + scale * a normal or exponential draw), float32 and float64, both conventions."""
    rows_ = []
    for seed in ctx.seeds:
        g = torch.Generator().manual_seed(seed)
        for n, width, (loc, scale, law) in product(batches, widths, inputs):
            draw = torch.empty(1, n, width, dtype=torch.float64)
            draw = draw.normal_(generator=g) if law == "normal" else draw.exponential_(generator=g)
            for dtype, convention in product((torch.float32, torch.float64), ("lecture", "torch")):
                rows_.append({"seed": seed, "batch": n, "width": width, "law": law, "loc": loc,
                              "convention": convention, "dtype": str(dtype)[6:],
                              **standardised_errors((loc + scale * draw).to(dtype), convention)})
    t = pd.DataFrame(rows_)
    t["error_ulps"] = t[["mean_error_ulps", "std_error_ulps"]].max(axis=1).clip(lower=1e-3)
    return Measurement(t, {"worst_mean_ulps": numerics(t.mean_error_ulps.max(), "ulps"),
                           "worst_std_ulps": numerics(t.std_error_ulps.max(), "ulps")})


def epsilon(ctx: Context, runs: dict[str, Trained], values: tuple[float, ...],
            batches: tuple[int, ...], widths: tuple[int, ...]) -> Measurement:
    """bn.epsilon. The share of non-finite outputs (eps 0) and of non-finite outputs or input
    gradients (eps 1e-5) over constant batches of every value, batch size and width; the val
    losses of runs "eps" and "no_eps"."""
    t = pd.DataFrame([{"eps": eps, **constant_batch(v, b, w, eps)} for v in values
                      for b in batches for w in widths for eps in (0.0, 1e-5)])
    shares = t.groupby("eps")[["nonfinite_out", "nonfinite_grad"]].mean()
    losses = final_losses(runs, eps="1e-5", no_eps="0")
    losses.metrics |= {"nonfinite_eps0": Metric.exact(shares.nonfinite_out[0.0]),
                       "nonfinite_eps": Metric.exact(shares.loc[1e-5].max())}
    return losses


def init_statistics(ctx: Context) -> Measurement:
    """bn.init-unit-gaussian. Per seed, the pre-activation units' mean |mean| and mean std over
    the training set at init: the lecture's BN MLP (Kaiming W1, no b1) and the plain-randn init
    (W1 and b1 randn, the control), each read through a BN layer added after W1 (it draws
    nothing, so the draws are the configuration's own)."""
    frames = []
    for init, config in (("Kaiming (the lecture's)", "batchnorm"), ("plain randn", "original")):
        mean, std = unit_statistics(mlp(Streams(ctx.seeds), config, batchnorm=True),
                                    ctx.splits().train[0])
        frames.append(pd.DataFrame({"seed": ctx.seeds, "init": init,
                                    "|mean|": np.abs(mean).mean(-1), "std": std.mean(-1)}))
    t = pd.concat(frames)
    ours, control = rows(t, init="Kaiming (the lecture's)"), rows(t, init="plain randn")
    return Measurement(t.melt(id_vars=["seed", "init"], value_vars=["|mean|", "std"],
                              var_name="statistic"), {
        "unit_mean": Metric.of(ours["|mean|"]), "unit_std": Metric.of(ours["std"]),
        "control_mean": Metric.of(control["|mean|"]), "control_std": Metric.of(control["std"])})


def relative(ours: torch.Tensor, reference: torch.Tensor) -> float:
    """max |ours - reference| / max |reference|."""
    return float((ours.detach() - reference.detach()).abs().max()
                 / reference.detach().abs().max().clamp_min(1e-300))


def torch_comparison(batch: int, dim: int, seed: int, steps: int = 3) -> dict[str, float]:
    """Our BatchNorm1d in both conventions, Linear and Tanh against torch.nn in float64, with
    equal parameters on equal batches: training outputs and gradients for `steps` steps, then
    buffers and an eval pass. Input gradients are a cancellation, compared on the scale of
    their terms |gamma d| / sigma. Worst relative differences by what is compared."""
    g = torch.Generator().manual_seed(seed)
    f64 = torch.float64
    gamma, beta = 1 + 0.3 * torch.randn(dim, generator=g, dtype=f64), \
        0.3 * torch.randn(dim, generator=g, dtype=f64)
    theirs = torch.nn.BatchNorm1d(dim).double()
    with torch.no_grad():
        theirs.weight.copy_(gamma)
        theirs.bias.copy_(beta)
    ours = {}
    for convention in ("lecture", "torch"):
        norm = BatchNorm1d(dim, convention=convention)
        norm.gamma, norm.beta = gamma[None].clone(), beta[None].clone()
        norm.running_mean, norm.running_var = norm.running_mean.double(), \
            norm.running_var.double()
        ours[convention] = norm.requires_grad_()
    worst = {"torch_convention": 0.0, "lecture_closed_form": 0.0, "lecture_same": 0.0,
             "lecture_train_output": 0.0}
    centre, spread = 3 * torch.randn(dim, generator=g, dtype=f64), \
        torch.exp(torch.randn(dim, generator=g, dtype=f64))
    for _ in range(steps):
        x = centre + spread * torch.randn(batch, dim, generator=g, dtype=f64)
        up = torch.randn(batch, dim, generator=g, dtype=f64)
        ref_x = x.clone().requires_grad_()
        for p in (theirs.weight, theirs.bias, *(p for n in ours.values() for p in n.parameters())):
            p.grad = None
        reference = theirs(ref_x)
        (reference * up).sum().backward()
        terms = (gamma * up / torch.sqrt(x.var(0, unbiased=False) + theirs.eps)).abs().max()
        for convention, norm in ours.items():
            own_x = x[None].clone().requires_grad_()
            out = norm(own_x)[0]
            (out * up).sum().backward()
            if convention == "torch":
                worst["torch_convention"] = max(
                    worst["torch_convention"], relative(out, reference),
                    float((own_x.grad[0] - ref_x.grad).abs().max() / terms),  # type: ignore
                    relative(norm.gamma.grad[0], theirs.weight.grad),  # type: ignore
                    relative(norm.beta.grad[0], theirs.bias.grad))  # type: ignore
            else:  # normalised by the unbiased variance: torch's output scaled per unit
                ratio = torch.sqrt((x.var(0, unbiased=False) + norm.eps) / (x.var(0) + norm.eps))
                worst["lecture_closed_form"] = max(worst["lecture_closed_form"], relative(
                    out - beta, (reference - beta) * ratio))
                worst["lecture_same"] = max(worst["lecture_same"], relative(
                    norm.beta.grad[0], theirs.bias.grad))  # type: ignore
                worst["lecture_train_output"] = max(worst["lecture_train_output"], relative(
                    out - beta, reference - beta))
    x = centre + spread * torch.randn(batch, dim, generator=g, dtype=f64)
    theirs.eval()
    with torch.no_grad():
        reference = theirs(x)
        for convention, norm in ours.items():
            key = "torch_convention" if convention == "torch" else "lecture_same"
            norm.eval()
            worst[key] = max(worst[key], relative(norm(x[None])[0], reference),
                             relative(norm.running_mean[0], theirs.running_mean),  # type: ignore
                             relative(norm.running_var[0], theirs.running_var))  # type: ignore
    worst["linear_tanh"] = linear_tanh_comparison(batch, dim, seed)
    return worst


def linear_tanh_comparison(batch: int, dim: int, seed: int) -> float:
    """Our Linear (weight stored fan_in x fan_out) and Tanh against torch.nn.Linear (weight
    transposed) and torch.tanh in float64: outputs and all gradients, worst relative."""
    streams = Streams([seed])
    ours = Linear(30, dim, streams=streams, bias_scale=0.1)
    ours.weight = ours.weight.detach().double().requires_grad_()
    ours.bias = ours.bias.detach().double().requires_grad_()  # type: ignore[union-attr]
    theirs = torch.nn.Linear(30, dim).double()
    with torch.no_grad():
        theirs.weight.copy_(ours.weight[0].T)
        theirs.bias.copy_(ours.bias[0])
    x = streams.randn(batch, 30)[0].double()
    up = streams.randn(batch, dim)[0].double()
    own_x, ref_x = x[None].clone().requires_grad_(), x.clone().requires_grad_()
    out, reference = Tanh()(ours(own_x))[0], torch.tanh(theirs(ref_x))
    (out * up).sum().backward()
    (reference * up).sum().backward()
    return max(relative(out, reference), relative(own_x.grad[0], ref_x.grad),  # type: ignore
               relative(ours.weight.grad[0].T, theirs.weight.grad),  # type: ignore
               relative(ours.bias.grad[0], theirs.bias.grad))  # type: ignore


COMPARED = {"lecture_train_output": "lecture's, training output",
            "lecture_same": "lecture's, eval and buffers", "torch_convention": "torch convention",
            "linear_tanh": "Linear, Tanh"}


def torch_equivalence(ctx: Context, batches: tuple[int, ...], dim: int) -> Measurement:
    """bn.pytorch-equivalence. `torch_comparison` per seed and batch size: worst relative
    differences (the lecture's training output at batch 32 per seed)."""
    t = pd.DataFrame([{"seed": s, "batch": b, **torch_comparison(b, dim, s)}
                      for s in ctx.seeds for b in batches])
    tidy = t.melt(id_vars=["seed", "batch"], value_vars=list(COMPARED), var_name="compared",
                  value_name="difference").replace({"compared": COMPARED})
    return Measurement(tidy.assign(difference=tidy.difference.clip(lower=1e-18)), {
        **{c: numerics(t[c].max(), "relative") for c in
           ("torch_convention", "lecture_same", "linear_tanh", "lecture_closed_form")},
        "lecture_train": Metric.exact(t.lecture_train_output.max(), "relative"),
        "lecture_train_b32": Metric.of(rows(t, batch=BATCH).lecture_train_output, "relative")},
        predictions={"lecture_train_b32": 1 - math.sqrt((BATCH - 1) / BATCH)})


def buffer_init(ctx: Context) -> Measurement:
    """bn.buffer-init. The buffers of a fresh BatchNorm1d, ours (the lecture's class) and
    torch.nn's, and what eval mode does before any update: the largest relative change of an
    input, and the factor by which it would blow the input up had running_var started at 0
    (as L:260 says)."""
    ours, theirs = BatchNorm1d(100), torch.nn.BatchNorm1d(100)
    mean = torch.cat([ours.running_mean[0], theirs.running_mean])  # type: ignore[list-item]
    var = torch.cat([ours.running_var[0], theirs.running_var])  # type: ignore[list-item]
    x = torch.randn(64, 100, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours.eval()
        change = relative(ours(x[None])[0], x)
        ours.running_var = torch.zeros_like(ours.running_var)
        blowup = float(ours(x[None])[0].abs().max() / x.abs().max())
    table = pd.DataFrame({"seed": 0, "buffer": ["running_mean"] * 200 + ["running_var"] * 200,
                          "layer": (["lecture's"] * 100 + ["torch.nn"] * 100) * 2,
                          "init": torch.cat([mean, var]).numpy()})
    return Measurement(table, {"mean_init": Metric.exact(float(mean.abs().max())),
                               "var_init": Metric.exact(float(var.abs().min())),
                               "eval_change": numerics(change, "relative"),
                               "zero_var_blowup": Metric.exact(blowup, "x")})


# --- the buffer update outside torch.no_grad -------------------------------------------------


class BufferUpdate(BatchNorm1d):
    """The library's BatchNorm1d written out, its running-buffer update inside torch.no_grad
    (`no_grad`: the lecture's way) or outside it (the mistake L:265 warns about). Everything
    else is the library's code in its order (autograd sums gradients in the order the graph
    was built), so the numbers are the same; both arms use this class so that both train
    through the same code path."""

    no_grad = True

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().__call__(x)
        mean = x.mean(1, keepdim=True)
        centred = x - mean
        unbiased = batch_variance(x)
        var = unbiased if self.convention == "lecture" else batch_variance(x, unbiased=False)
        self.out = self.gamma.unsqueeze(1) * (centred / torch.sqrt(var + self.eps)) \
            + self.beta.unsqueeze(1)
        with torch.no_grad() if self.no_grad else nullcontext():
            stat = unbiased.sqrt() if self.track == "std" else unbiased
            m = self.momentum
            self.running_mean = (1 - m) * self.running_mean + m * mean.squeeze(1)
            self.running_var = (1 - m) * self.running_var + m * stat.squeeze(1)
        return self.out


def graph_nodes(tensors: list[torch.Tensor]) -> int:
    """Autograd nodes reachable from the tensors: the graph they keep alive."""
    seen: set[int] = set()
    stack = [t.grad_fn for t in tensors]
    while stack:
        node = stack.pop()
        if node is not None and id(node) not in seen:
            seen.add(id(node))
            stack.extend(next_node for next_node, _ in node.next_functions)
    return len(seen)


def resident_kib() -> float:
    """The process's resident memory in use now: the allocator's free pages are given back
    first (glibc's malloc_trim), so that memory freed earlier and taken up again counts as the
    new use it is (Linux: /proc and glibc)."""
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 1024


def buffer_update(ctx: Context, steps: int) -> Measurement:
    """bn.buffers-no-grad. The lecture's deep network with BN, per seed trained twice `steps`
    steps with the buffer update inside torch.no_grad and outside it (`deep_bn`), same seed
    and batches: the graph nodes the buffers keep; over the second `steps` steps (the first
    warm up) the growth of the memory in use (`resident_kib`) and the time per step; the
    largest difference between the two runs' losses and buffers. Every graph is kept alive to
    the end, so that no run's memory is taken up by another."""
    kept, runs, data = [], [], ctx.splits().train
    config = TrainConfig(steps=steps, decay_step=None)
    for seed in ctx.seeds:
        results = {}
        for graph in (False, True):
            model, streams = deep_bn([seed], graph)
            first = train(model, data, config, streams)
            before, start = resident_kib(), time.perf_counter()
            second = train(model, data, config, streams)
            seconds = (time.perf_counter() - start) / steps
            results[graph] = model, torch.cat([first.losses, second.losses])
            runs.append({"seed": seed, "update": "outside no_grad" if graph else "in no_grad",
                         "graph_nodes": graph_nodes(model.buffers()),
                         "memory_kib_per_step": (resident_kib() - before) / steps,
                         "ms_per_step": 1e3 * seconds})
        (plain, plain_losses), (tracked, tracked_losses) = results[False], results[True]
        difference = max([float((plain_losses - tracked_losses).abs().max())] + [
            float((a - b.detach()).abs().max())
            for a, b in zip(plain.buffers(), tracked.buffers(), strict=True)])
        for row in runs[-2:]:
            row["max_difference"] = difference
        kept.append(tracked)
    t = pd.DataFrame(runs)
    metrics = {"max_difference": numerics(t.max_difference.max())}
    for arm, update in (("graph", "outside no_grad"), ("no_grad", "in no_grad")):
        own = rows(t, update=update)
        metrics |= {f"nodes_{arm}": Metric.of(own.graph_nodes),
                    f"memory_{arm}": numerics(own.memory_kib_per_step, "KiB"),
                    f"ms_{arm}": numerics(own.ms_per_step, "ms")}
    return Measurement(t, metrics)


def deep_bn(seeds: list[int], graph: bool, **config) -> tuple[Sequential, Streams]:
    """The lecture's deep network with BN before every tanh and after the last layer (DeepConfig
    overrides in `config`), its BatchNorms `BufferUpdate`s updating their buffers outside
    torch.no_grad when `graph`, inside it otherwise."""
    streams = Streams(seeds)
    model = deep(streams, DeepConfig(batchnorm="before", batchnorm_last=True, **config))
    for layer in model.layers:
        if isinstance(layer, BatchNorm1d):
            layer.__class__ = BufferUpdate  # the same layer object, its update written out
            layer.no_grad = not graph  # type: ignore[attr-defined]
    return model, streams
