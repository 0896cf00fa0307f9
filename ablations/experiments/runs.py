"""Training runs as claims declare them, trained once and shared through the run store.

A claim declares its runs as `RunTemplate`s: a network (the lecture's MLP or deep network, with
overrides), a length stated at the lecture's scale, a schedule, and optionally a grid of
conditions that vary per member (init scales, gains, learning rates, momenta). Resolved against a
context, a template becomes one member run per (condition, seed), each with a complete spec
(makemore.runs). A member run is trained once, whoever asks for it, and kept in the run store.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import product
from typing import Any

import numpy as np
import pandas as pd
import torch

from ablations.context import LECTURE_DIAG_STEPS, LECTURE_STEPS, Context
from makemore.models import MLP_CONFIGS, DeepConfig
from makemore.modules import Sequential
from makemore.runs import (
    MemberSpec,
    Payload,
    assemble,
    group_key,
    group_lock,
    grouped,
    make_spec,
    train_members,
)
from makemore.train import TrainConfig

MODELS = ("mlp", "deep")
LECTURE_DECAY = {"mlp": 0.5, "deep": 0.75}  # lr 0.1 -> 0.01 at 100k (MLP), 150k (deep) of 200k


@dataclass(frozen=True)
class RunTemplate:
    """A training run as a claim declares it.

    steps: "lecture" (200,000, scaled by the profile), "diag" (the lecture's read after 1,000
    steps: the forward pass of step 1,001, never scaled) or a length stated at the lecture's
    scale for networks the lecture never trained (scaled by the profile). decay: the fraction of
    the run after which the lr drops 10x; None for a constant lr; default the lecture's.
    conditions: per-member grid, e.g. (("gain", (1.0, 5/3)),); a condition named "lr" sets the
    learning rate. subset: train on the first n training examples only.
    """

    model: str
    config: tuple[tuple[str, Any], ...] = ()
    steps: int | str = "lecture"
    lr: float = 0.1
    decay: float | None | str = "lecture"
    optimizer: str = "sgd"
    batch_size: int = 32
    subset: int | None = None
    conditions: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    record: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")

    def lecture_steps(self) -> int:
        if self.steps == "lecture":
            return LECTURE_STEPS
        if self.steps == "diag":
            return LECTURE_DIAG_STEPS + 1
        return int(self.steps)

    def resolved_steps(self, ctx: Context) -> int:
        return self.lecture_steps() if self.steps == "diag" else ctx.profile.steps(
            self.lecture_steps())

    def describe(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    def members(self, ctx: Context) -> pd.DataFrame:
        """One row per member: member, seed, the conditions; seeds vary fastest."""
        names = [n for n, _ in self.conditions]
        rows = [{"seed": seed, **dict(zip(names, values, strict=True))}
                for values in product(*(v for _, v in self.conditions)) for seed in ctx.seeds]
        frame = pd.DataFrame(rows) if rows else pd.DataFrame({"seed": ctx.seeds})
        frame.insert(0, "member", range(len(frame)))
        return frame

    def spec(self, ctx: Context, condition: dict[str, Any]) -> dict[str, Any]:
        """The complete spec of one member run."""
        overrides = {**dict(self.config), **{k: v for k, v in condition.items() if k != "lr"}}
        steps = self.resolved_steps(ctx)
        if self.model == "mlp":
            config = dataclasses.replace(MLP_CONFIGS[overrides.pop("base", "kaiming")],
                                         **overrides)
        else:
            config = dataclasses.replace(DeepConfig(), **overrides)
        fraction = LECTURE_DECAY[self.model] if self.decay == "lecture" else self.decay
        decay = None if self.steps == "diag" or fraction is None else round(steps * fraction)
        train = TrainConfig(steps=steps, batch_size=self.batch_size,
                            lr=condition.get("lr", self.lr), decay_step=decay,
                            optimizer=self.optimizer)
        return make_spec(config, train, subset=self.subset, record=self.record,
                         device=ctx.device.type)


def mlp_run(base: str = "kaiming", steps: int | str = "lecture", *,
            vary: dict[str, Sequence[Any]] | None = None, **options: Any) -> RunTemplate:
    """The one-hidden-layer MLP from a loss-log config; `options` are MLPConfig overrides or
    RunTemplate fields (lr, decay, optimizer, batch_size, subset, record)."""
    return _template("mlp", {"base": base}, steps, vary, options)


def deep_run(steps: int | str = "lecture", *, vary: dict[str, Sequence[Any]] | None = None,
             **options: Any) -> RunTemplate:
    """The lecture's deep network; `options` are DeepConfig overrides or RunTemplate fields."""
    return _template("deep", {}, steps, vary, options)


RUN_FIELDS = ("lr", "decay", "optimizer", "batch_size", "subset", "record")


def _template(model: str, config: dict[str, Any], steps: int | str,
              vary: dict[str, Sequence[Any]] | None, options: dict[str, Any]) -> RunTemplate:
    run = {k: options.pop(k) for k in RUN_FIELDS if k in options}
    if "record" in run:
        run["record"] = tuple(run["record"])
    config = {**config, **options}
    conditions = tuple((k, tuple(v)) for k, v in (vary or {}).items())
    return RunTemplate(model, tuple(sorted(config.items())), steps, conditions=conditions, **run)


# --- trained runs ------------------------------------------------------------------------------


@dataclass
class Trained:
    """A template's members, trained: the ensemble model (members in template order), the
    member table, every step's training loss, whole-split losses, and recorded series."""

    model: Sequential
    members: pd.DataFrame
    losses: torch.Tensor  # (steps, E)
    train_loss: np.ndarray
    val_loss: np.ndarray
    steps: int
    keys: list[str]
    recorded: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> (E, ...)
    diverged: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    def losses_frame(self) -> pd.DataFrame:
        """members + step0, train and val loss columns."""
        return self.members.assign(step0_loss=self.losses[0].numpy(), train_loss=self.train_loss,
                                   val_loss=self.val_loss)

    def where(self, **condition: Any) -> np.ndarray:
        """Member indices matching the condition values."""
        mask = np.ones(len(self.members), dtype=bool)
        for name, value in condition.items():
            mask &= np.isclose(self.members[name], value) if isinstance(value, float) else \
                (self.members[name] == value).to_numpy()
        return np.flatnonzero(mask)


def member_specs(template: RunTemplate, ctx: Context) -> list[MemberSpec]:
    frame = template.members(ctx)
    names = [n for n, _ in template.conditions]
    return [MemberSpec.of(template.spec(ctx, {n: getattr(row, n) for n in names}), row.seed,
                          ctx.data_sha256)
            for row in frame.itertuples(index=False)]


def have(ctx: Context, key: str) -> bool:
    return key in ctx._memo or bool(ctx.store and ctx.store.has(key))


def missing_groups(ctx: Context, templates: Iterable[RunTemplate]) -> list[list[MemberSpec]]:
    """The member runs nobody has trained, grouped for ensemble training, in a deterministic
    order."""
    members = [m for t in templates for m in member_specs(t, ctx) if not have(ctx, m.key)]
    return grouped(members)


def train_group(ctx: Context, specs: Sequence[MemberSpec]) -> dict[str, Payload]:
    """Train one group; keep it in the store, or without one in the context's memo."""
    spec = specs[0].spec
    payloads = train_members(specs, ctx.splits(spec["data"]["block_size"]), ctx.device,
                             ctx.store, ctx.progress)
    if ctx.store is None:
        ctx._memo.update(payloads)
    return payloads


def ensure(ctx: Context, templates: Iterable[RunTemplate]) -> None:
    """Train whatever member runs the templates need and nobody has trained."""
    for specs in missing_groups(ctx, templates):
        with group_lock(ctx.store, group_key(specs)):
            if all(have(ctx, m.key) for m in specs):
                continue  # another process trained it while we waited
            train_group(ctx, specs)


def payload(ctx: Context, template: RunTemplate, member: MemberSpec) -> Payload:
    found = ctx._memo.get(member.key)
    if found is not None:
        return found
    run = ctx.store.get(member.key) if ctx.store is not None else None
    if run is None:  # removed as damaged: train it again
        ensure(ctx, [template])
        run = ctx.store.get(member.key) if ctx.store is not None else None
        if run is None:
            return ctx._memo[member.key]
    return run.tensors, run.results


def trained(ctx: Context, template: RunTemplate) -> Trained:
    """The template's members, trained (from the store, else trained now)."""
    ensure(ctx, [template])
    specs = member_specs(template, ctx)
    built = assemble(specs, [payload(ctx, template, m) for m in specs], ctx.device)
    return Trained(
        model=built.model,  # type: ignore[arg-type]
        members=template.members(ctx),
        losses=built.losses,
        train_loss=np.array([r["train_loss"] for r in built.results]),
        val_loss=np.array([r["val_loss"] for r in built.results]),
        steps=int(built.results[0]["steps"]),
        keys=[m.key for m in specs],
        recorded=built.recorded,
        diverged=np.array([r.get("diverged", False) for r in built.results]),
    )
