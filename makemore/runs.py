"""Member runs: the unit the run store keeps. A member run is one seed of one complete spec
(network config, training settings, data selection, recorders, device type); its key adds the
data's sha256 and the engine's version. Specs that differ only in values the engine takes per
member (init scales, gains, learning rates, momenta) train together as one ensemble; a member's
numbers do not depend on its companions, so any grouping gives the same runs.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from makemore.checkpoint import load_state_tensors, state_tensors
from makemore.data import Splits
from makemore.diagnostics import UpdateRatios
from makemore.models import DeepConfig, MLPConfig, deep, mlp
from makemore.modules import Module, Streams
from makemore.store import RunStore, canonical, engine_version, run_key
from makemore.train import TrainConfig, evaluate, train

MODELS = ("mlp", "deep")
RECORDERS = ("update_ratios", "last_step")
PER_MEMBER = {"mlp": ("w1", "b1", "w2", "b2", "bn_momentum"), "deep": ("gain", "bn_momentum")}
CHECKPOINT_ENV = "MAKEMORE_CHECKPOINT_EVERY"  # steps between checkpoints (default 10,000)


def checkpoint_every() -> int:
    """Steps between checkpoints of a long ensemble: 10,000 (a few minutes of the lecture's
    networks on a CPU), or $MAKEMORE_CHECKPOINT_EVERY (a multiple of train.INDEX_CHUNK)."""
    return int(os.environ.get(CHECKPOINT_ENV, "10000"))


def json_ready(value: Any) -> Any:
    """Tuples as lists, floats kept exactly (JSON round-trips a float's repr)."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [json_ready(v) for v in value]
    return value


def make_spec(config: MLPConfig | DeepConfig, train: TrainConfig, *, subset: int | None = None,
              record: Iterable[str] = (), device: str = "cpu") -> dict[str, Any]:
    """The complete spec of one member run: everything its numbers depend on but the seed, the
    data and the engine."""
    if isinstance(config, MLPConfig):
        model, config = "mlp", dataclasses.replace(config, w1=config.w1_scale())
    else:
        model = "deep"
    unknown = set(record) - set(RECORDERS)
    if unknown:
        raise ValueError(f"unknown recorders {sorted(unknown)}; known: {RECORDERS}")
    return json_ready({
        "model": model,
        "config": dataclasses.asdict(config),
        "train": dataclasses.asdict(train),
        "data": {"block_size": config.block_size, "subset": subset},
        "record": sorted(record),
        "device": device,
    })


@dataclass(frozen=True)
class MemberSpec:
    spec: dict[str, Any]
    seed: int
    key: str

    @classmethod
    def of(cls, spec: dict[str, Any], seed: int, data_sha256: str) -> MemberSpec:
        return cls(spec, int(seed), run_key(spec, int(seed), data_sha256, engine_version()))

    @property
    def steps(self) -> int:
        return int(self.spec["train"]["steps"])

    def group(self) -> str:
        """Specs equal but for per-member values train together."""
        spec = {**self.spec, "config": dict(self.spec["config"]), "train": dict(self.spec["train"])}
        for name in PER_MEMBER[spec["model"]]:
            if spec["config"][name] is not None:
                spec["config"][name] = "*"
        spec["train"]["lr"] = "*"
        return canonical(spec)


def group_key(specs: Iterable[MemberSpec]) -> str:
    return hashlib.sha256("".join(m.key for m in specs).encode()).hexdigest()[:32]


def grouped(members: Iterable[MemberSpec]) -> list[list[MemberSpec]]:
    """Members (duplicates dropped) as ensembles to train, in a deterministic order."""
    unique = {m.key: m for m in members}
    groups: dict[str, list[MemberSpec]] = {}
    for member in unique.values():
        groups.setdefault(member.group(), []).append(member)
    return [sorted(g, key=lambda m: m.key) for _, g in sorted(groups.items())]


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


def training_data(splits: Splits, spec: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = splits.train
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
def group_lock(store: RunStore | None, key: str) -> Iterator[None]:
    """One process trains a group at a time; another asking for it waits, then reads it."""
    if store is None:
        yield
        return
    path = store.root / "locks" / f"{key}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


Payload = tuple[dict[str, torch.Tensor], dict[str, Any]]  # a member's tensors and results


def diverged(losses: torch.Tensor, final_train: float) -> bool:
    """A run diverged when its loss is not finite, or when training left it worse than it
    started (its whole-split loss above its step-0 loss)."""
    return not (torch.isfinite(losses).all() and final_train == final_train
                and final_train < float(losses[0]))


def train_members(specs: Sequence[MemberSpec], splits: Splits, device: torch.device,
                  store: RunStore | None,
                  progress: Callable[[int], None] | None = None) -> dict[str, Payload]:
    """Train one group as an ensemble and return each member's payload; with a store, each
    member is also saved there and a long run checkpoints into it. `progress` hears of
    seed-steps."""
    model, streams = build(specs)
    model.to(device)
    spec = specs[0].spec
    callbacks = [UpdateRatios()] if "update_ratios" in spec["record"] else []
    checkpoint = None
    every = checkpoint_every()
    if store is not None and specs[0].steps > every and not callbacks:
        checkpoint = (store.checkpoint_path(group_key(specs)), every)
    report = None
    if progress is not None:
        members = len(specs)

        def report(steps: int) -> None:
            progress(steps * members)

    history = train(model, training_data(splits, spec), train_config(specs), streams,
                    callbacks=callbacks, retain_activation_grads="last_step" in spec["record"],
                    progress=report, checkpoint=checkpoint)
    tensors = {f"param.{k}": v for k, v in state_tensors(model).items()}
    if "last_step" in spec["record"]:
        tensors.update({f"last.{k}": v for k, v in last_step_tensors(model).items()})
    if callbacks:
        tensors["record.update_ratios"] = callbacks[0].values.transpose(0, 1)  # (E, steps, P)
    train_loss = evaluate(model, splits.train).tolist()
    val_loss = evaluate(model, splits.dev).tolist()
    out: dict[str, Payload] = {}
    for e, member in enumerate(specs):
        own = {k: v[e] for k, v in tensors.items()}
        own["losses"] = history.losses[:, e]
        results = {"train_loss": train_loss[e], "val_loss": val_loss[e], "steps": member.steps,
                   "diverged": diverged(own["losses"], train_loss[e])}
        out[member.key] = (own, results)
        if store is not None:
            store.put(member.key, member.spec, member.seed, own, results)
    if checkpoint is not None:
        checkpoint[0].unlink(missing_ok=True)
    return out


@dataclass
class Assembled:
    """Member runs put back together as one ensemble, in the order asked for."""

    model: Module
    losses: torch.Tensor  # (steps, E)
    results: list[dict[str, Any]]
    recorded: dict[str, torch.Tensor]  # name -> (E, ...)


def assemble(specs: Sequence[MemberSpec], payloads: Sequence[Payload],
             device: torch.device) -> Assembled:
    """An ensemble built fresh for the specs, holding the stored parameters, buffers and any
    recorded last step."""
    model, _ = build(specs)
    model.to(device)

    def stacked(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix):]: torch.stack([p[0][k] for p in payloads])
                for k in payloads[0][0] if k.startswith(prefix)}

    load_state_tensors(model, stacked("param."))
    last = stacked("last.")
    if last:
        restore_last_step(model, last)
    return Assembled(model, torch.stack([p[0]["losses"] for p in payloads], dim=1),
                     [p[1] for p in payloads], stacked("record."))
