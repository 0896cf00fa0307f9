"""Training runs that several claims share, memoised per process through Context.shared so that
a family (or the whole run) trains each configuration once.

Every run is an ensemble: one member per seed (ctx.seeds), or seeds x conditions where the
conditions have equal shapes (gains, learning rates, momenta); see `grid`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import Any

import numpy as np
import pandas as pd

from ablations.context import Context
from makemore.diagnostics import UpdateRatios, activation_stats, grad_data_ratios
from makemore.models import DeepConfig, deep, mlp
from makemore.modules import Sequential, Streams
from makemore.train import History, TrainConfig, evaluate, train


def grid(ctx: Context, **conditions: Sequence[Any]) -> pd.DataFrame:
    """Members of an ensemble over seeds x conditions: one row per member with columns
    `member`, `seed` and one per condition, seeds varying fastest. Pass a column as a
    per-member value (e.g. gain=tuple(frame.gain)) to the builders."""
    names = list(conditions)
    rows = []
    for values in product(*(conditions[n] for n in names)):
        for seed in ctx.seeds:
            rows.append({"seed": seed, **dict(zip(names, values, strict=True))})
    frame = pd.DataFrame(rows)
    frame.insert(0, "member", range(len(frame)))
    return frame


@dataclass
class Trained:
    """A trained ensemble and its whole-split losses, member by member."""

    model: Sequential
    history: History
    members: pd.DataFrame  # one row per member: member, seed, conditions...
    train_loss: np.ndarray = field(default_factory=lambda: np.zeros(0))
    val_loss: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def losses(self) -> pd.DataFrame:
        """members + step0, train and val loss columns."""
        frame = self.members.copy()
        frame["step0_loss"] = self.history.initial.numpy()
        frame["train_loss"] = self.train_loss
        frame["val_loss"] = self.val_loss
        return frame


def train_config(ctx: Context, steps: int | None = None, **overrides: Any) -> TrainConfig:
    """The notebook's schedule scaled to the profile: lr 0.1, then 0.01 from decay_step."""
    steps = steps or ctx.profile.train_steps
    decay = ctx.profile.decay_step if steps == ctx.profile.train_steps else steps // 2
    return TrainConfig(**{"steps": steps, "decay_step": decay, **overrides})


def mlp_run(ctx: Context, config: str, steps: int | None = None, **overrides: Any) -> Trained:
    """The one-hidden-layer MLP (a loss-log config plus overrides) over ctx.seeds, evaluated on
    train and dev. Memoised: claims asking for the same run share it."""
    key = ("mlp", config, steps, tuple(sorted(overrides.items())))

    def compute() -> Trained:
        streams = Streams(ctx.seeds)
        model = mlp(streams, config, **overrides).to(ctx.device)
        splits = ctx.splits()
        history = train(
            model, splits.train, train_config(ctx, steps), streams, progress=ctx.progress
        )
        return Trained(
            model,
            history,
            grid(ctx),
            evaluate(model, splits.train).numpy(),
            evaluate(model, splits.dev).numpy(),
        )

    return ctx.shared(key, compute)


@dataclass
class Diagnosed:
    """The deep network after a short run, with the lecture's diagnostics read at its last step
    (the notebook reads them after 1,000 steps)."""

    trained: Trained
    activations: pd.DataFrame  # per nonlinearity layer x member: mean, std, saturated, grad_std
    grad_data: pd.DataFrame  # per 2-D parameter x member: grad:data ratio
    update_ratios: np.ndarray  # (steps, members, 2-D parameters): log10 update:data
    update_names: list[str]


def deep_diagnostics(
    ctx: Context,
    members: pd.DataFrame | None = None,
    steps: int | None = None,
    lr: float | tuple[float, ...] = 0.1,
    saturation_threshold: float = 0.97,
    **config: Any,
) -> Diagnosed:
    """Train the deep network (DeepConfig fields in `config`, per-member values allowed) for
    `steps` (default: the profile's diag_steps) at a constant lr, recording update ratios every
    step and reading activation, gradient and grad:data statistics at the last step."""
    members = grid(ctx) if members is None else members
    # The notebook's loop runs i = 0..1000 and breaks after the update of i = 1000: the layers'
    # outputs it inspects come from the forward pass after 1,000 updates, i.e. step 1,001.
    steps = steps or ctx.profile.diag_steps + 1
    key = (
        "deep",
        steps,
        lr,
        saturation_threshold,
        tuple(sorted(config.items())),
        tuple(members.itertuples(index=False)),
    )

    def compute() -> Diagnosed:
        streams = Streams(list(members.seed))
        model = deep(streams, DeepConfig(), **config).to(ctx.device)
        ratios = UpdateRatios()
        history = train(
            model,
            ctx.splits().train,
            TrainConfig(steps=steps, lr=lr, decay_step=None),
            streams,
            callbacks=[ratios],
            retain_activation_grads=True,
            progress=ctx.progress,
        )
        activations = _with_members(
            pd.DataFrame(activation_stats(model, saturation_threshold)), members
        )
        grads = _with_members(pd.DataFrame(grad_data_ratios(model)), members)
        return Diagnosed(
            Trained(model, history, members),
            activations,
            grads,
            ratios.values.numpy(),
            ratios.names,
        )

    return ctx.shared(key, compute)


def _with_members(frame: pd.DataFrame, members: pd.DataFrame) -> pd.DataFrame:
    """Attach each member's seed and conditions to per-member rows."""
    return frame.merge(members, on="member", how="left")
