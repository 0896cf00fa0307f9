"""Training runs as claims declare them, trained once and shared through the run store.

A claim declares its runs as `RunTemplate`s: a network (the lecture's MLP or deep network, with
overrides), a length stated at the lecture's scale, a schedule, and optionally a grid of
conditions that vary per member (init scales, gains, learning rates, momenta). Resolved against a
context, a template becomes one member run per (condition, seed), each with a complete spec.

Member runs are the unit of storage: one (spec, seed) is trained once, whoever asks for it.
Training groups the missing member runs whose specs differ only in values the engine takes per
member, and trains each group as one ensemble. A member's numbers do not depend on its
companions or on the thread count (the engine is bitwise member-independent; tested in
tests/makemore), so any grouping gives the same runs.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import product
from typing import Any

import numpy as np
import pandas as pd
import torch

from ablations.context import LECTURE_DIAG_STEPS, LECTURE_STEPS, Context
from makemore.checkpoint import load_state_tensors, state_tensors
from makemore.diagnostics import UpdateRatios
from makemore.models import MLP_CONFIGS, DeepConfig, MLPConfig, deep, mlp
from makemore.modules import Module, Sequential, Streams
from makemore.store import RunStore, canonical, engine_version, run_key
from makemore.train import TrainConfig, evaluate, train

MODELS = ("mlp", "deep")
LECTURE_DECAY = {"mlp": 0.5, "deep": 0.75}  # lr 0.1 -> 0.01 at 100k (MLP), 150k (deep) of 200k
RECORDERS = ("update_ratios", "last_step")
# Spec fields the engine takes per member: runs differing only here train as one ensemble.
PER_MEMBER = {"mlp": ("w1", "b1", "w2", "b2", "bn_momentum"), "deep": ("gain", "bn_momentum")}
CHECKPOINT_EVERY = 10_000  # steps between checkpoints of a long ensemble


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
        unknown = set(self.record) - set(RECORDERS)
        if unknown:
            raise ValueError(f"unknown recorders {sorted(unknown)}; known: {RECORDERS}")

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
        return json_ready(dataclasses.asdict(self))

    def members(self, ctx: Context) -> pd.DataFrame:
        """One row per member: member, seed, the conditions; seeds vary fastest."""
        names = [n for n, _ in self.conditions]
        rows = [{"seed": seed, **dict(zip(names, values, strict=True))}
                for values in product(*(v for _, v in self.conditions)) for seed in ctx.seeds]
        frame = pd.DataFrame(rows) if rows else pd.DataFrame({"seed": ctx.seeds})
        frame.insert(0, "member", range(len(frame)))
        return frame

    def spec(self, ctx: Context, condition: dict[str, Any]) -> dict[str, Any]:
        """The complete spec of one member run (everything its numbers depend on but the seed,
        the data and the engine)."""
        overrides = {**dict(self.config), **{k: v for k, v in condition.items() if k != "lr"}}
        steps = self.resolved_steps(ctx)
        if self.model == "mlp":
            base = MLP_CONFIGS[overrides.pop("base", "kaiming")]
            config = dataclasses.replace(base, **overrides)
            config = dataclasses.replace(config, w1=config.w1_scale())
        else:
            config = dataclasses.replace(DeepConfig(), **overrides)
        fraction = LECTURE_DECAY[self.model] if self.decay == "lecture" else self.decay
        decay = None if self.steps == "diag" or fraction is None else round(steps * fraction)
        return json_ready({
            "model": self.model,
            "config": dataclasses.asdict(config),
            "train": {"steps": steps, "batch_size": self.batch_size,
                      "lr": condition.get("lr", self.lr), "decay_step": decay,
                      "lr_decay": 0.1, "optimizer": self.optimizer},
            "data": {"block_size": config.block_size, "subset": self.subset},
            "record": sorted(self.record),
            "device": ctx.device.type,
        })


def json_ready(value: Any) -> Any:
    """Tuples as lists, floats kept exactly (JSON round-trips a float's repr)."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [json_ready(v) for v in value]
    return value


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


@dataclass(frozen=True)
class MemberSpec:
    spec: dict[str, Any]
    seed: int
    key: str

    def group(self) -> str:
        """Specs equal but for per-member values train together."""
        spec = {**self.spec, "config": dict(self.spec["config"]), "train": dict(self.spec["train"])}
        for name in PER_MEMBER[spec["model"]]:
            value = spec["config"][name]
            if value is not None:
                spec["config"][name] = "*"
        spec["train"]["lr"] = "*"
        return canonical(spec)


def member_specs(template: RunTemplate, ctx: Context) -> list[MemberSpec]:
    frame = template.members(ctx)
    names = [n for n, _ in template.conditions]
    engine, data = engine_version(), ctx.data_sha256
    specs = []
    for row in frame.itertuples(index=False):
        spec = template.spec(ctx, {n: getattr(row, n) for n in names})
        specs.append(MemberSpec(spec, int(row.seed), run_key(spec, int(row.seed), data, engine)))
    return specs


def build(specs: Sequence[MemberSpec]) -> tuple[Module, Streams]:
    """A fresh ensemble for member specs of one group (per-member values as tuples)."""
    streams = Streams([m.seed for m in specs])
    first = specs[0].spec
    config = dict(first["config"])
    for name in PER_MEMBER[first["model"]]:
        values = [m.spec["config"][name] for m in specs]
        if values[0] is not None and len(set(values)) > 1:
            config[name] = tuple(values)
    if first["model"] == "mlp":
        return mlp(streams, MLPConfig(**config)), streams
    return deep(streams, DeepConfig(**config)), streams


def train_config(specs: Sequence[MemberSpec]) -> TrainConfig:
    settings = dict(specs[0].spec["train"])
    lrs = [m.spec["train"]["lr"] for m in specs]
    settings["lr"] = tuple(lrs) if len(set(lrs)) > 1 else lrs[0]
    return TrainConfig(**settings)


def training_data(ctx: Context, spec: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = ctx.splits(spec["data"]["block_size"]).train
    subset = spec["data"]["subset"]
    return (x[:subset], y[:subset]) if subset else (x, y)


def last_step_tensors(model: Module) -> dict[str, torch.Tensor]:
    """What the lecture inspects after its last step: each layer's output and its gradient,
    and each parameter's gradient."""
    tensors = {}
    for i, module in enumerate(model.modules()):
        out = getattr(module, "out", None)
        if out is not None and i > 0:
            tensors[f"out.{i}"] = out.detach()
            if out.grad is not None:
                tensors[f"out_grad.{i}"] = out.grad.detach()
    for name, p in model.named_parameters():
        if p.grad is not None:
            tensors[f"grad.{name}"] = p.grad.detach()
    return tensors


def restore_last_step(model: Module, tensors: dict[str, torch.Tensor]) -> None:
    """Put recorded outputs and gradients back where the diagnostics read them."""
    for i, module in enumerate(model.modules()):
        if f"out.{i}" in tensors:
            module.out = tensors[f"out.{i}"]
            if f"out_grad.{i}" in tensors:
                module.out.grad = tensors[f"out_grad.{i}"]
    for name, p in model.named_parameters():
        if f"grad.{name}" in tensors:
            p.grad = tensors[f"grad.{name}"]


@contextmanager
def group_lock(store: RunStore | None, group_key: str):
    """One process trains a group at a time; another asking for it waits, then reads it."""
    if store is None:
        yield
        return
    path = store.root / "locks" / f"{group_key}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def group_key(specs: Iterable[MemberSpec]) -> str:
    return hashlib.sha256("".join(m.key for m in specs).encode()).hexdigest()[:32]


def train_group(ctx: Context, specs: Sequence[MemberSpec]) -> dict[str, tuple]:
    """Train one group as an ensemble; returns key -> (tensors, results) per member, and keeps
    them in the store (or, without one, in the context's memo). ctx.progress hears of
    seed-steps."""
    model, streams = build(specs)
    model.to(ctx.device)
    spec = specs[0].spec
    callbacks = [UpdateRatios()] if "update_ratios" in spec["record"] else []
    checkpoint = None
    if ctx.store is not None and spec["train"]["steps"] > CHECKPOINT_EVERY:
        checkpoint = (ctx.store.checkpoint_path(group_key(specs)), CHECKPOINT_EVERY)
    report = None
    if ctx.progress is not None:
        progress, members = ctx.progress, len(specs)

        def report(steps: int) -> None:
            progress(steps * members)

    history = train(model, training_data(ctx, spec), train_config(specs), streams,
                    callbacks=callbacks, retain_activation_grads="last_step" in spec["record"],
                    progress=report, checkpoint=checkpoint)
    tensors = {f"param.{k}": v for k, v in state_tensors(model).items()}
    if "last_step" in spec["record"]:
        tensors.update({f"last.{k}": v for k, v in last_step_tensors(model).items()})
    if callbacks:
        tensors["record.update_ratios"] = callbacks[0].values.transpose(0, 1)  # (E, steps, P)
    splits = ctx.splits(spec["data"]["block_size"])
    train_loss = evaluate(model, splits.train).tolist()
    val_loss = evaluate(model, splits.dev).tolist()
    out = {}
    for e, member in enumerate(specs):
        own = {k: v[e] for k, v in tensors.items()}
        own["losses"] = history.losses[:, e]
        results = {"train_loss": train_loss[e], "val_loss": val_loss[e],
                   "steps": spec["train"]["steps"]}
        if callbacks:
            results["update_ratio_names"] = callbacks[0].names
        out[member.key] = (own, results)
        if ctx.store is not None:
            ctx.store.put(member.key, member.spec, member.seed, own, results)
        else:
            ctx._memo[member.key] = (own, results)
    if checkpoint is not None:
        checkpoint[0].unlink(missing_ok=True)
    return out


def missing_groups(ctx: Context, templates: Iterable[RunTemplate]) -> list[list[MemberSpec]]:
    """The member runs not yet in the store (or the memo), grouped for ensemble training, in a
    deterministic order."""
    missing: dict[str, MemberSpec] = {}
    for template in templates:
        for member in member_specs(template, ctx):
            if member.key not in ctx._memo and not (ctx.store and ctx.store.has(member.key)):
                missing.setdefault(member.key, member)
    groups: dict[str, list[MemberSpec]] = {}
    for member in missing.values():
        groups.setdefault(member.group(), []).append(member)
    return [sorted(g, key=lambda m: (m.key)) for _, g in sorted(groups.items())]


def ensure(ctx: Context, templates: Iterable[RunTemplate]) -> None:
    """Train whatever member runs the templates need and nobody has trained."""
    for specs in missing_groups(ctx, templates):
        with group_lock(ctx.store, group_key(specs)):
            if ctx.store is not None and all(ctx.store.has(m.key) for m in specs):
                continue  # another process trained it while we waited
            train_group(ctx, specs)


def trained(ctx: Context, template: RunTemplate) -> Trained:
    """The template's members, trained (from the store, else trained now)."""
    ensure(ctx, [template])
    specs = member_specs(template, ctx)
    stored = []
    for member in specs:
        found = ctx._memo.get(member.key)
        if found is None and ctx.store is not None:
            run = ctx.store.get(member.key)
            if run is None:  # removed as damaged: train it again
                ensure(ctx, [template])
                run = ctx.store.get(member.key)
            assert run is not None, f"run {member.key} missing after training"
            found = (run.tensors, run.results)
        stored.append(found)
    model, _ = build(specs)
    model.to(ctx.device)
    stack = {k[len("param."):]: torch.stack([s[0][k] for s in stored])
             for k in stored[0][0] if k.startswith("param.")}
    load_state_tensors(model, stack)
    last = {k[len("last."):]: torch.stack([s[0][k] for s in stored])
            for k in stored[0][0] if k.startswith("last.")}
    if last:
        restore_last_step(model, last)
    recorded = {k[len("record."):]: torch.stack([s[0][k] for s in stored])
                for k in stored[0][0] if k.startswith("record.")}
    return Trained(
        model=model,
        members=template.members(ctx),
        losses=torch.stack([s[0]["losses"] for s in stored], dim=1),
        train_loss=np.array([s[1]["train_loss"] for s in stored]),
        val_loss=np.array([s[1]["val_loss"] for s in stored]),
        steps=int(stored[0][1]["steps"]),
        keys=[m.key for m in specs],
        recorded=recorded,
    )
