"""The lecture's deep network: its diagnostics as tidy frames, and the deep sweeps that several
families share.

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

from typing import Any

import numpy as np
import pandas as pd

from ablations.experiments.runs import RunTemplate, Trained, deep_run
from makemore.diagnostics import activation_stats, per_member_std
from makemore.modules import Activation, Module

SATURATED = 0.97  # the lecture's threshold for the deep network (L:279)
SWEEP_STEPS = 10_000  # networks the lecture never trained: long enough to rank them
CONTROL_STEPS = 2 * SWEEP_STEPS  # the convergence control: the conclusion must not change
KAIMING = {"tanh": 5 / 3, "relu": 2**0.5, "linear": 1.0}


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


# --- diagnostics ---------------------------------------------------------------------------------


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
