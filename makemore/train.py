"""Training, evaluation, BatchNorm calibration and sampling for an ensemble of members.

One plain loop, as in the notebook: draw a batch per member from that member's generator,
forward, cross-entropy, backward, SGD step `p += -lr * grad`. Each member's loss depends only on
its own parameters and the summed loss has block-diagonal gradients, so members never influence
each other; a one-member ensemble is the notebook's single run.

The step runs on makemore.fast (hand-written backward, bit-identical) whenever it supports the
network and nobody watches the step; callbacks and retained activation gradients, which read
autograd's `.grad`, run the autograd step.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from makemore import checkpoint as checkpoints
from makemore import fast
from makemore.modules import (
    BatchNorm1d,
    Linear,
    Module,
    Sequential,
    Streams,
    member_cross_entropy,
    per_member,
)

INDEX_CHUNK = 1000  # batch indices are drawn this many steps at a time (same stream as per step)


@dataclass(frozen=True)
class TrainConfig:
    """The notebook's optimisation: plain SGD, lr dropped by `lr_decay` at `decay_step`."""

    steps: int = 200_000
    batch_size: int = 32
    lr: float | tuple[float, ...] = 0.1
    decay_step: int | None = 100_000
    lr_decay: float = 0.1
    optimizer: str = "sgd"

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be at least 1, got {self.steps}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        lrs = self.lr if isinstance(self.lr, tuple) else (self.lr,)
        if any(not lr > 0 for lr in lrs):
            raise ValueError(f"learning rates must be positive, got {self.lr}")

    def learning_rate(self, step: int) -> float | tuple[float, ...]:
        if self.decay_step is None or step < self.decay_step:
            return self.lr
        if isinstance(self.lr, tuple):
            return tuple(lr * self.lr_decay for lr in self.lr)
        return self.lr * self.lr_decay


@dataclass
class StepState:
    """What a callback sees after each update: gradients are still attached to parameters."""

    step: int
    model: Module
    losses: torch.Tensor  # (E,) this step's training losses
    lr: float | torch.Tensor  # scalar, or (E,) per member


Callback = Callable[[StepState], None]


@dataclass
class History:
    losses: torch.Tensor  # (steps, E) training loss of every step
    seeds: list[int] = field(default_factory=list)

    @property
    def initial(self) -> torch.Tensor:
        return self.losses[0]


def available_memory() -> int:
    """Bytes this machine can still give (MemAvailable), or its physical memory."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_memory(parameters: int, members: int, steps: int, batch_size: int = 32) -> None:
    """Refuse a run that cannot fit before allocating it: the per-step loss record (steps x
    members floats) and, per member, the parameters with their gradients and optimiser state
    (4 copies) plus a generous allowance for one step's activations."""
    needed = 4 * (steps * members + 4 * parameters * members + 64 * batch_size * 1024 * members)
    have = available_memory()
    if needed > have:
        raise ValueError(
            f"{steps:,} steps x {members:,} members need about {needed / 2**30:,.1f} GiB; this "
            f"machine has {have / 2**30:,.1f} GiB available: use fewer steps or seeds"
        )


def check_batchnorm_batch(model: Module, batch_size: int) -> None:
    if batch_size < 2 and any(isinstance(m, BatchNorm1d) for m in model.modules()):
        raise ValueError(
            "batch size 1 with BatchNorm in training mode: the batch variance is undefined"
        )


def _lr_tensor(
    lr: float | tuple[float, ...], members: int, device: torch.device
) -> float | torch.Tensor:
    if isinstance(lr, tuple):
        return torch.as_tensor(lr, dtype=torch.float32, device=device)
    return lr


def train(
    model: Module,
    data: tuple[torch.Tensor, torch.Tensor],
    config: TrainConfig,
    streams: Streams,
    *,
    callbacks: Sequence[Callback] = (),
    retain_activation_grads: bool = False,
    progress: Callable[[int], None] | None = None,
    checkpoint: tuple[Path, int] | None = None,
) -> History:
    """Train in place. Batch indices continue each member's generator after its init draws, as
    the notebook's single generator does. `progress(n)` is told of every n finished steps.
    `checkpoint=(path, every)` saves the whole state every `every` steps (a multiple of
    INDEX_CHUNK) and resumes from the file if it exists. Without callbacks and retained
    activation gradients, a network that makemore.fast supports trains there, which leaves no
    `.grad` on the parameters."""
    check_batchnorm_batch(model, config.batch_size)
    params = model.parameters()
    check_memory(sum(p[0].numel() for p in params), streams.members, config.steps,
                 config.batch_size)
    x_all, y_all = data
    device = params[0].device
    members = streams.members
    x_all, y_all = x_all.to(device), y_all.to(device)
    losses = torch.empty(config.steps, members, device=device)
    adam = _Adam(params) if config.optimizer == "adam" else None
    model.train()
    start = 0
    if checkpoint is not None:
        path, every = checkpoint
        if every % INDEX_CHUNK or callbacks:
            raise ValueError("checkpoints need a multiple of INDEX_CHUNK steps and no callbacks")
        start, saved = checkpoints.load(path, model, streams, losses)
        if adam is not None and saved:
            adam.load(saved)
        if progress is not None and start:
            progress(start)
    fast_step = None  # planned after a resume: it takes the restored buffers as they are
    if not callbacks and not retain_activation_grads:
        fast_step = fast.plan(model, members, config.batch_size, x_all.shape[1],
                              config.optimizer, scalar_lr=not isinstance(config.lr, tuple))
    chunk = torch.empty(0)
    for step in range(start, config.steps):
        offset = step % INDEX_CHUNK
        if offset == 0:
            size = min(INDEX_CHUNK, config.steps - step)
            chunk = streams.randint(x_all.shape[0], size, config.batch_size).to(device)
        ix = chunk[:, offset]
        lr = _lr_tensor(config.learning_rate(step), members, device)
        if fast_step is not None:
            fast_step((x_all, y_all), ix, lr, losses[step], adam)
        else:
            loss = _autograd_step(model, x_all[ix], y_all[ix], lr, adam, retain_activation_grads)
            losses[step] = loss
            if callbacks:
                state = StepState(step, model, loss, lr)
                for callback in callbacks:
                    callback(state)
        if progress is not None and (step + 1) % INDEX_CHUNK == 0:
            progress(INDEX_CHUNK)
        if checkpoint is not None and (step + 1) % checkpoint[1] == 0 and step + 1 < config.steps:
            state = adam.state() if adam is not None else {}
            checkpoints.save(checkpoint[0], step + 1, model, streams, losses, state)
    if progress is not None and config.steps % INDEX_CHUNK:
        progress(config.steps % INDEX_CHUNK)
    if fast_step is not None:
        fast_step.finish()
    return History(losses.cpu(), streams.seeds)


def _autograd_step(
    model: Module,
    x: torch.Tensor,
    y: torch.Tensor,
    lr: float | torch.Tensor,
    adam: _Adam | None,
    retain_activation_grads: bool,
) -> torch.Tensor:
    """One step with autograd, leaving gradients on the parameters: the members' losses."""
    params = model.parameters()
    members = params[0].shape[0]
    loss = member_cross_entropy(model(x), y)
    if retain_activation_grads:
        for layer in model.modules():
            if hasattr(layer, "out") and layer.out.requires_grad:
                layer.out.retain_grad()
    for p in params:
        p.grad = None
    loss.sum().backward()
    with torch.no_grad():
        if adam is not None:
            adam.step(params, lr)
        else:
            for p in params:
                p.data += -per_member(lr, members, p.dim()) * p.grad  # type: ignore[operator]
    return loss.detach()


class _Adam:
    """Adam (beta 0.9/0.999, eps 1e-8), element-wise and so independent across members."""

    def __init__(self, params: list[torch.Tensor]):
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params]
        self.t = 0

    def state(self) -> dict[str, torch.Tensor]:
        tensors = {f"m.{i}": m for i, m in enumerate(self.m)}
        tensors.update({f"v.{i}": v for i, v in enumerate(self.v)})
        return {**tensors, "t": torch.tensor([self.t])}

    def load(self, state: dict[str, torch.Tensor]) -> None:
        for i, (m, v) in enumerate(zip(self.m, self.v, strict=True)):
            m.copy_(state[f"m.{i}"])
            v.copy_(state[f"v.{i}"])
        self.t = int(state["t"][0])

    def step(self, params: list[torch.Tensor], lr: float | torch.Tensor) -> None:
        self.t += 1
        for p, m, v in zip(params, self.m, self.v, strict=True):
            grad = p.grad
            assert grad is not None, "Adam step before backward"
            m.mul_(0.9).add_(grad, alpha=0.1)
            v.mul_(0.999).addcmul_(grad, grad, value=0.001)
            m_hat = m / (1 - 0.9**self.t)
            v_hat = v / (1 - 0.999**self.t)
            step_lr = per_member(lr, p.shape[0], p.dim()) if isinstance(lr, torch.Tensor) else lr
            p.data += -step_lr * m_hat / (v_hat.sqrt() + 1e-8)


EVAL_BYTES = 1 << 29  # what one evaluation chunk's layer outputs may hold (512 MiB)


def _eval_chunk(model: Module, members: int, n: int) -> int:
    """Examples per evaluation chunk. Every layer keeps its last output, so a chunk costs about
    members x rows x (3 floats per unit of every Linear: its output, a BatchNorm's, the
    nonlinearity's); the chunk is sized so that this stays under EVAL_BYTES at any depth."""
    units = sum(m.weight.shape[-1] for m in model.modules() if isinstance(m, Linear))
    per_row = 4 * (3 * units + 64)
    return max(1, min(n, EVAL_BYTES // (per_row * members)))


@torch.no_grad()
def evaluate(model: Module, data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Mean loss of each member over a whole split, in eval mode: (E,) float64."""
    x_all, y_all = data
    device = model.parameters()[0].device
    members = model.parameters()[0].shape[0]
    was_training = model.training
    model.eval()
    total = torch.zeros(members, dtype=torch.float64, device=device)
    step = _eval_chunk(model, members, x_all.shape[0])
    for start in range(0, x_all.shape[0], step):
        xb = x_all[start : start + step].to(device)
        yb = y_all[start : start + step].to(device)
        logits = model(xb.unsqueeze(0).expand(members, *xb.shape))
        batch_loss = member_cross_entropy(logits, yb.unsqueeze(0).expand(members, -1))
        total += batch_loss.double() * xb.shape[0]
    model.train(was_training)
    return (total / x_all.shape[0]).cpu()


@torch.no_grad()
def calibrate(model: Module, x_all: torch.Tensor) -> None:
    """Set every BatchNorm's running statistics to the exact mean and unbiased variance of its
    input over `x_all` (the lecture's post-training calibration), one layer after another so
    that each sees the calibrated layers before it."""
    device = model.parameters()[0].device
    members = model.parameters()[0].shape[0]
    was_training = model.training
    model.eval()
    step = _eval_chunk(model, members, x_all.shape[0])
    if not isinstance(model, Sequential):
        raise TypeError(f"calibrate needs a Sequential network, got {type(model).__name__}")
    for norm in [m for m in model.modules() if isinstance(m, BatchNorm1d)]:
        width = norm.running_mean.shape[1]
        total = torch.zeros(2, members, width, dtype=torch.float64, device=device)
        for start in range(0, x_all.shape[0], step):
            x = x_all[start : start + step].to(device)
            found = model.input_of(x.unsqueeze(0).expand(members, *x.shape), norm)
            assert found is not None, "every BatchNorm of the network is inside it"
            x = found.double()
            total += torch.stack([x.sum(1), (x * x).sum(1)])
        n = x_all.shape[0]
        mean = total[0] / n
        var = (total[1] - n * mean * mean) / (n - 1)
        norm.set_statistics(mean.float(), var.float())
    model.train(was_training)


@torch.no_grad()
def sample(
    model: Module,
    count: int,
    block_size: int,
    seed: int,
    member: int = 0,
    max_length: int = 50,
) -> list[str]:
    """Names drawn one character at a time, as in the notebook: context reset to [0]*block_size,
    torch.multinomial with one generator, stop at '.'."""
    from makemore.data import VOCAB

    device = model.parameters()[0].device
    members = model.parameters()[0].shape[0]
    generator = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    names = []
    for _ in range(count):
        context = [0] * block_size
        chars = []
        for _ in range(max_length):
            x = torch.tensor(context, device=device).view(1, 1, block_size).expand(members, 1, -1)
            probs = torch.softmax(model(x)[member, 0], dim=-1).cpu()
            index = int(torch.multinomial(probs, 1, generator=generator).item())
            if index == 0:
                break
            chars.append(VOCAB[index])
            context = context[1:] + [index]
        names.append("".join(chars))
    model.train(was_training)
    return names
