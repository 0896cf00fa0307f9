"""Checkpoints of an ensemble in training, so that a long run killed at any moment resumes and
ends bit-identical to an uninterrupted one (same build, same thread count).

A checkpoint holds everything the loop's future depends on: parameters and buffers, the
optimizer's state, each member's generator state, the losses so far and the step. It is taken at
a boundary of the batch-index chunks (train.INDEX_CHUNK), where the generators have drawn exactly
the chunks before it, and written atomically as safetensors with a checksum in its metadata; a
damaged checkpoint is reported and ignored (the run starts over).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save as save_tensors

from makemore.modules import Module, Streams


def state_tensors(model: Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer of a model by a stable name ("3.BatchNorm1d.running_mean")."""
    named = dict(model.named_parameters())
    for i, module in enumerate(model.modules()):
        for name in module.buffer_names:
            named[f"{i}.{type(module).__name__}.{name}"] = getattr(module, name)
    return named


def load_state_tensors(model: Module, tensors: dict[str, torch.Tensor]) -> None:
    """Install tensors named as by state_tensors into a model of the same shapes."""
    with torch.no_grad():
        for i, module in enumerate(model.modules()):
            for name in (*module.param_names, *module.buffer_names):
                current = getattr(module, name, None)
                if current is None:
                    continue
                stored = tensors[f"{i}.{type(module).__name__}.{name}"].to(current.device)
                if name in module.param_names:
                    current.copy_(stored)
                else:
                    setattr(module, name, stored.clone().to(current.dtype))


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(tensors[name].contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def save(path: Path, step: int, model: Module, streams: Streams, losses: torch.Tensor,
         optimizer: dict[str, torch.Tensor]) -> None:
    """Write the state after `step` steps (a multiple of the index chunk)."""
    from makemore.store import write_atomic

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in
               state_tensors(model).items()}
    tensors.update({f"optim.{k}": v.detach().cpu().contiguous() for k, v in optimizer.items()})
    for e, generator in enumerate(streams.generators):
        tensors[f"generator.{e}"] = generator.get_state()
    tensors["losses"] = losses[:step].detach().cpu().contiguous()
    tensors["step"] = torch.tensor([step])
    write_atomic(path, save_tensors(tensors, metadata={"sha256": _digest(tensors)}))


def load(path: Path, model: Module, streams: Streams,
         losses: torch.Tensor) -> tuple[int, dict[str, torch.Tensor]]:
    """Restore a checkpoint into the live model, generators and losses; returns the step to
    continue from and the optimizer's saved state (0 and {} if there is none, or it is
    damaged)."""
    if not path.is_file():
        return 0, {}
    try:
        with safe_open(str(path), "pt") as handle:
            expected = (handle.metadata() or {}).get("sha256")
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
        if expected != _digest(tensors):
            raise ValueError("its checksum does not match")
        step = int(tensors["step"][0])
        if len(streams.generators) != sum(k.startswith("generator.") for k in tensors):
            raise ValueError("it holds another number of members")
    except Exception as err:  # safetensors raises its own error types for a truncated file
        print(f"checkpoint {path.name} is damaged ({err}); starting the run over",
              file=sys.stderr)
        path.unlink(missing_ok=True)
        return 0, {}
    load_state_tensors(model, {k[len("model."):]: v for k, v in tensors.items()
                               if k.startswith("model.")})
    for e, generator in enumerate(streams.generators):
        generator.set_state(tensors[f"generator.{e}"])
    losses[:step] = tensors["losses"].to(losses.device)
    return step, {k[len("optim."):]: v for k, v in tensors.items() if k.startswith("optim.")}
