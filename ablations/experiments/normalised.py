"""BatchNorm in the lecture's deep network: where the lecture puts it, what its BN claims read
off a run (per-layer tanh statistics, settled update ratios), its step-0 loss, and the line
between a run that trains and one that does not.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ablations import figures
from ablations.experiments.deep import layer_stats, sweep, update_ratios
from ablations.experiments.runs import RunTemplate, Trained
from ablations.measurement import Measurement, per_seed
from makemore.models import DeepConfig, deep
from makemore.modules import BatchNorm1d, Linear, Streams, member_cross_entropy

# L:349-350: right after each hidden Linear (before its tanh), and after the last Linear.
LECTURE_BN: dict[str, Any] = {"batchnorm": "before", "batchnorm_last": True}
NETWORKS = {"bn": "BN before every tanh", "plain": "no BN"}


def tanh_stats(trained: Trained) -> pd.DataFrame:
    """One row per tanh layer and member (layer 1 next to the input): std and saturation of
    its last recorded output, with the member's seed and conditions."""
    return layer_stats(trained)[["member", "seed", "layer", "std", "saturated",
                                 *trained.members.columns.drop(["member", "seed"])]]


def settled_ratios(trained: Trained) -> pd.DataFrame:
    """One row per 2-D parameter and member: its log10 update:data ratio averaged over the
    second half of the run, where the lecture reads its plot once the first steps' transient
    has passed (L:335); `linear` marks the Linear weights (not the embedding C)."""
    ratios, labels = update_ratios(trained)
    late = ratios[:, ratios.shape[1] // 2:, :].mean(axis=1)
    frame = pd.DataFrame(late, columns=labels).rename_axis("member").reset_index()
    frame = frame.melt(id_vars="member", var_name="parameter", value_name="ratio")
    frame["linear"] = frame.parameter.str.startswith("W")
    return frame.merge(trained.members, on="member", how="left")


ROW_COLUMNS = ("layer", "parameter", "linear", "std", "saturated", "ratio")


def per_member(frame: pd.DataFrame, value: str, how: str = "mean") -> pd.DataFrame:
    """`value` aggregated over the rows of each member (its layers or parameters), with the
    member's seed and conditions: one row per member, in member order."""
    keys = [c for c in frame.columns if c not in ROW_COLUMNS]
    return frame.groupby(keys, as_index=False, sort=False, dropna=False)[value].agg(how)


def seedwise(frame: pd.DataFrame, value: str, how: str | None = None,
             **where: object) -> np.ndarray:
    """`value` per seed, in seed order, over the rows matching `where` (so that two arrays of
    one run pair seed by seed); with `how`, first aggregated over each member's rows."""
    if how is not None:
        frame = per_member(frame, value, how)
    return np.asarray(per_seed(frame, value, where).samples)


def shortest(runs: dict[str, Trained]) -> int:
    """The length of the shortest of a claim's runs: what its NeedsSteps check reads."""
    return min(r.steps for r in runs.values())


def unigram_entropy(targets: torch.Tensor) -> float:
    """The entropy of the next character's frequencies: by Gibbs' inequality the lowest loss
    any model that ignores its context can reach."""
    counts = torch.bincount(targets).double()
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log()).sum())


def sweep_runs(depths: tuple[int, ...], lengths: dict[str, int]) -> dict[str, RunTemplate]:
    """tanh stacks at their Kaiming gain 5/3 and lr 0.1, with BN before every tanh (and after
    the last Linear) and without, at every depth and length, named arm_depth_length."""
    return {f"{arm}_{depth}_{length}": sweep(depth, "tanh", batchnorm=arm == "bn", steps=steps)
            for arm in NETWORKS for depth in depths for length, steps in lengths.items()}


def sweep_table(runs: dict[str, Trained], floor: float) -> pd.DataFrame:
    """One row per member of the sweep runs: its network, depth, length, whole-split losses,
    whether it did not train, and `loss`: its train loss, or `floor` for a run that did not
    train (it is worth no more than the unigram model)."""
    frames = []
    for key, run in runs.items():
        arm, depth, length = key.split("_")
        frame = run.losses_frame().assign(network=NETWORKS[arm], depth=int(depth), arm=arm,
                                          run=length, length=f"{run.steps:,} steps")
        frame["failed"] = did_not_train(frame.train_loss, floor)
        frames.append(frame.assign(loss=np.where(frame.failed, floor, frame.train_loss)))
    return pd.concat(frames, ignore_index=True)


def did_not_train(loss: np.ndarray, floor: float) -> np.ndarray:
    """A run that did not train: its final loss is not finite, or no better than `floor`
    (the unigram entropy: it learned nothing from its context)."""
    loss = np.asarray(loss, dtype=float)
    return ~np.isfinite(loss) | (loss >= floor)


@torch.no_grad()
def step0_losses(seeds: list[int], data: tuple[torch.Tensor, torch.Tensor], last_bn: bool,
                 weight_scale: float = 1.0, gamma_scale: float = 1.0,
                 gain: float = 1.0) -> np.ndarray:
    """Each seed's step-0 loss of the deep network with BN before every tanh: its first batch
    of 32 drawn as training draws it (member 0 is the notebook's own draw), with the last
    Linear's weight scaled by `weight_scale` and, with a last BN, its gamma by
    `gamma_scale`."""
    streams = Streams(seeds)
    model = deep(streams, DeepConfig(gain=gain, batchnorm="before", batchnorm_last=last_bn,
                                     last_scale=1.0))
    x, y = data
    ix = streams.randint(x.shape[0], 1, 32)[:, 0]
    last = [m for m in model.modules() if isinstance(m, Linear)][-1]
    last.weight *= weight_scale
    if last_bn:
        norm = [m for m in model.modules() if isinstance(m, BatchNorm1d)][-1]
        norm.gamma *= gamma_scale
    return member_cross_entropy(model(x[ix]), y[ix]).numpy()


# --- figures -----------------------------------------------------------------------------------


def ratio_band(ax: Axes) -> None:
    """The lecture's guide line at -3 and the decent range around it (L:336-346)."""
    ax.axhspan(-3.5, -2.0, color="0.9", zorder=0, label="decent range (-3.5 to -2)")
    figures.reference(ax, -3.0, "lecture's guide")


def ratio_points(ax: Axes, frame: pd.DataFrame, hue: str, title: str) -> None:
    """Settled update ratios per parameter (the lecture's plot, read off), one colour per
    `hue`, over the guide line and the decent range."""
    figures.points(ax, frame, x="parameter", y="ratio", hue=hue, seeds=False)
    ratio_band(ax)
    ax.set(title=title, xlabel="parameter (C: embedding)", ylabel="log10 update:data")
    ax.tick_params(axis="x", labelsize=7)


def log_axis(ax: Axes, ticks: tuple[float, ...]) -> None:
    """A log x axis labelled at the swept values only."""
    ax.set_xscale("log")
    ax.set_xticks(ticks, [f"{t:.3g}" for t in ticks])
    ax.minorticks_off()


def final_losses_figure(fig: Figure, m: Measurement, column: str,
                        pairs: dict[str, str]) -> Axes:
    """Left: whole-split train and val losses per condition in `column`. Right: the per-seed
    samples of the paired val-loss differences named in `pairs` (label -> metric), over the
    band that two-decimal printouts hide. Returns the right panel."""
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    long = m.table.melt(id_vars=["seed", column], value_vars=["train_loss", "val_loss"],
                        var_name="split", value_name="loss")
    figures.points(left, long, x=column, y="loss", hue="split", seeds=False)
    left.set(title="Whole-split losses", xlabel="", ylabel="loss (nats)")
    left.tick_params(axis="x", labelsize=7)
    figures.legend(left)
    frame = pd.concat([pd.DataFrame({"change": label, "value": m.metrics[name].samples})
                       for label, name in pairs.items()])
    figures.points(right, frame, x="change", y="value")
    right.axhspan(-0.005, 0.005, color="0.9", zorder=0, label="within +-0.005 (two decimals)")
    right.set(title="Val loss, paired by seed", xlabel="", ylabel="val loss difference (nats)")
    figures.caption(fig, len(frame) // len(pairs))
    return right
