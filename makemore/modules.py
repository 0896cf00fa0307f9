"""The lecture's hand-written layers, batched over a leading member dimension.

Every activation has shape (members, batch, features) and every parameter a leading member
dimension, so that E independent networks (an ensemble of seeds or of configurations with equal
shapes) train as one program; member e only ever touches slice e. With one member and the
notebook's generator the draws, and so the numbers, are the notebook's own. As in the lecture,
each layer keeps its last output in `.out` so that diagnostics can read it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Self

import torch
import torch.nn.functional as F

Scale = float | Sequence[float] | torch.Tensor


class Streams:
    """One CPU generator per member. Draws are made member by member and stacked, so member e's
    numbers do not depend on how many other members there are, nor on the device."""

    def __init__(self, seeds: Sequence[int]):
        if len(seeds) < 1:
            raise ValueError("an ensemble needs at least one seed")
        self.seeds = [int(s) for s in seeds]
        self.generators = [torch.Generator().manual_seed(s) for s in self.seeds]

    @property
    def members(self) -> int:
        return len(self.generators)

    def randn(self, *shape: int) -> torch.Tensor:
        return torch.stack([torch.randn(shape, generator=g) for g in self.generators])

    def randint(self, high: int, *shape: int) -> torch.Tensor:
        return torch.stack([torch.randint(0, high, shape, generator=g) for g in self.generators])


def per_member(value: Scale, members: int, ndim: int) -> torch.Tensor | float:
    """A scalar stays a scalar; a per-member sequence becomes a tensor shaped to broadcast
    against a (members, ...) tensor of `ndim` dimensions."""
    if isinstance(value, int | float):
        return float(value)
    values = torch.as_tensor(value, dtype=torch.float32).flatten()
    if values.numel() != members:
        raise ValueError(f"expected {members} per-member values, got {values.numel()}")
    return values.view(members, *([1] * (ndim - 1)))


class Module:
    """The small part of torch.nn.Module the lecture needs: parameters, buffers, train/eval."""

    param_names: tuple[str, ...] = ()
    buffer_names: tuple[str, ...] = ()
    constant_names: tuple[str, ...] = ()  # tensors that are neither, but must follow to()
    training = True
    out: torch.Tensor

    def children(self) -> list[Module]:
        return []

    def modules(self) -> Iterator[Module]:
        yield self
        for child in self.children():
            yield from child.modules()

    def named_parameters(self) -> list[tuple[str, torch.Tensor]]:
        named = []
        for i, module in enumerate(self.modules()):
            for name in module.param_names:
                tensor = getattr(module, name)
                if tensor is not None:
                    named.append((f"{i}.{type(module).__name__}.{name}", tensor))
        return named

    def parameters(self) -> list[torch.Tensor]:
        return [tensor for _, tensor in self.named_parameters()]

    def buffers(self) -> list[torch.Tensor]:
        return [getattr(m, n) for m in self.modules() for n in m.buffer_names]

    def train(self, mode: bool = True) -> Self:
        for module in self.modules():
            module.training = mode
        return self

    def eval(self) -> Self:
        return self.train(False)

    def to(self, device: torch.device | str) -> Self:
        for module in self.modules():
            for name in module.param_names + module.buffer_names:
                tensor = getattr(module, name)
                if tensor is not None:
                    moved = tensor.detach().to(device)
                    setattr(module, name, moved.requires_grad_(name in module.param_names))
            for name in module.constant_names:
                value = getattr(module, name)
                if isinstance(value, torch.Tensor):
                    setattr(module, name, value.to(device))
        return self

    def requires_grad_(self) -> Self:
        for p in self.parameters():
            p.requires_grad_(True)
        return self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class Linear(Module):
    """x @ W (+ b) with W of shape (fan_in, fan_out) as in the lecture. By default
    W = randn / sqrt(fan_in) and b = 0 (no draw); `weight_scale` replaces the 1/sqrt(fan_in)
    and `bias_scale` makes b = randn * bias_scale (drawn right after W, as in the notebook)."""

    param_names = ("weight", "bias")

    def __init__(
        self,
        fan_in: int,
        fan_out: int,
        bias: bool = True,
        *,
        streams: Streams,
        weight_scale: Scale | None = None,
        bias_scale: Scale | None = None,
    ):
        members = streams.members
        weight = streams.randn(fan_in, fan_out)
        if weight_scale is None:
            self.weight = weight / fan_in**0.5
        else:
            self.weight = weight * per_member(weight_scale, members, 3)
        self.bias: torch.Tensor | None = None
        if bias:
            if bias_scale is None:
                self.bias = torch.zeros(members, fan_out)
            else:
                self.bias = streams.randn(fan_out) * per_member(bias_scale, members, 2)
        self.requires_grad_()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.bias is None:
            self.out = torch.bmm(x, self.weight)
        else:
            self.out = torch.baddbmm(self.bias.unsqueeze(1), x, self.weight)
        return self.out


def batch_variance(x: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance over dim 1 (the batch), keeping the dim. Two passes over the data shifted by the
    batch's first example: torch.var's value to float32 rounding but about 20x faster on CPU,
    and exactly 0 for a constant batch, however the batch mean rounds."""
    shifted = x - x[:, :1]
    deviation = shifted - shifted.mean(1, keepdim=True)
    squares = (deviation * deviation).sum(1, keepdim=True)
    return squares / (x.shape[1] - 1 if unbiased else x.shape[1])


class BatchNorm1d(Module):
    """Batch normalisation over dim 1 (the batch) of (members, batch, features).

    `convention="lecture"` normalises with the unbiased batch variance and stores it (the
    lecture's code); `convention="torch"` normalises with the biased variance and stores the
    unbiased one (torch.nn.BatchNorm1d). `track="std"` keeps a running std instead of a running
    variance (the lecture's one-hidden-layer MLP). Momentum may differ per member. With
    `affine=False` there is no gain gamma nor bias beta: the output is the standardised input
    (torch's affine=False); `gamma` and `beta` are then absent, not None.
    """

    param_names: tuple[str, ...] = ("gamma", "beta")
    buffer_names = ("running_mean", "running_var")
    constant_names = ("momentum",)  # a per-member momentum is a tensor
    gamma: torch.Tensor
    beta: torch.Tensor

    def __init__(
        self,
        dim: int,
        eps: float = 1e-5,
        momentum: Scale = 0.1,
        *,
        members: int = 1,
        convention: str = "lecture",
        track: str = "var",
        affine: bool = True,
    ):
        if convention not in ("lecture", "torch"):
            raise ValueError(f"convention must be 'lecture' or 'torch', got {convention!r}")
        if track not in ("var", "std"):
            raise ValueError(f"track must be 'var' or 'std', got {track!r}")
        self.eps = eps
        self.momentum = per_member(momentum, members, 2)
        self.convention = convention
        self.track = track
        self.affine = affine
        if affine:
            self.gamma = torch.ones(members, dim)
            self.beta = torch.zeros(members, dim)
        else:
            self.param_names = ()
        self.running_mean = torch.zeros(members, dim)
        self.running_var = torch.ones(members, dim)  # holds the running std when track="std"
        self.requires_grad_()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            if x.shape[1] < 2:
                raise ValueError("BatchNorm1d in training mode needs a batch of at least 2")
            mean = x.mean(1, keepdim=True)
            centred = x - mean
            unbiased = batch_variance(x)
            var = unbiased if self.convention == "lecture" else batch_variance(x, unbiased=False)
        else:
            mean = self.running_mean.unsqueeze(1)
            stored = self.running_var.unsqueeze(1)
            var = stored * stored if self.track == "std" else stored
            centred = x - mean
        xhat = centred / torch.sqrt(var + self.eps)
        if self.affine:
            self.out = self.gamma.unsqueeze(1) * xhat + self.beta.unsqueeze(1)
        else:
            self.out = xhat
        if self.training:
            with torch.no_grad():
                batch_stat = unbiased.sqrt() if self.track == "std" else unbiased
                m = self.momentum
                self.running_mean = (1 - m) * self.running_mean + m * mean.squeeze(1)
                self.running_var = (1 - m) * self.running_var + m * batch_stat.squeeze(1)
        return self.out

    def set_statistics(self, mean: torch.Tensor, var: torch.Tensor) -> None:
        """Install externally measured statistics (calibration); `var` is a variance."""
        self.running_mean = mean.to(self.running_mean)
        stored = var.sqrt() if self.track == "std" else var
        self.running_var = stored.to(self.running_var)


class Embedding(Module):
    """A lookup table C of shape (num, dim) per member, drawn N(0, 1) as in the lecture."""

    param_names = ("weight",)

    def __init__(self, num: int, dim: int, *, streams: Streams):
        self.num = num
        self.weight = streams.randn(num, dim)
        self.requires_grad_()

    def __call__(self, idx: torch.Tensor) -> torch.Tensor:
        members = self.weight.shape[0]
        offsets = torch.arange(members, device=idx.device).view(members, 1, 1) * self.num
        table = self.weight.reshape(members * self.num, -1)
        self.out = F.embedding(idx + offsets, table)
        return self.out


class Flatten(Module):
    """(members, batch, block, dim) -> (members, batch, block * dim)."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.out = x.reshape(x.shape[0], x.shape[1], -1)
        return self.out


class Activation(Module):
    """An element-wise nonlinearity; `name` is its key in the gain table."""

    name = ""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.out = self.apply(x)
        return self.out

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class Tanh(Activation):
    name = "tanh"

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x)


class ReLU(Activation):
    name = "relu"

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x)


class LeakyReLU(Activation):
    name = "leaky_relu"

    def __init__(self, negative_slope: float = 0.01):
        self.negative_slope = negative_slope

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x, self.negative_slope)


class Sigmoid(Activation):
    name = "sigmoid"

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x)


class ELU(Activation):
    name = "elu"

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return F.elu(x, self.alpha)


class Identity(Activation):
    """No nonlinearity: turns a network into a stack of linear layers."""

    name = "linear"

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return x


ACTIVATIONS: dict[str, type[Activation]] = {
    cls.name: cls for cls in (Tanh, ReLU, LeakyReLU, Sigmoid, ELU, Identity)
}


class Sequential(Module):
    def __init__(self, layers: Sequence[Module]):
        self.layers = list(layers)

    def children(self) -> list[Module]:
        return self.layers

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        self.out = x
        return x

    def input_of(self, x: torch.Tensor, target: Module) -> torch.Tensor | None:
        """What `target` receives when the network runs on x, computing no layer after it; None
        if target is not inside. Calibration uses it for BatchNorms nested in residual blocks."""
        for layer in self.layers:
            if layer is target:
                return x
            if isinstance(layer, Residual):
                found = layer.block.input_of(x, target)
                if found is not None:
                    return found
            x = layer(x)
        return None


class Residual(Module):
    """x + block(x): a skip connection around a block whose input and output widths agree, so
    the block only has to learn a correction to the identity."""

    def __init__(self, block: Sequential):
        self.block = block

    def children(self) -> list[Module]:
        return [self.block]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.out = x + self.block(x)
        return self.out


def member_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of each member: logits (E, B, V), targets (E, B) -> (E,)."""
    members, batch, vocab = logits.shape
    losses = F.cross_entropy(
        logits.reshape(members * batch, vocab), targets.reshape(-1), reduction="none"
    )
    return losses.view(members, batch).mean(1)
