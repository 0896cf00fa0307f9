"""Builders for the lecture's networks: the one-hidden-layer MLP in its five loss-log
configurations, and the deep network of the "PyTorch-ifying" part with every knob the claims vary.

Parameters are drawn in the notebook's order from each member's generator, so a one-member
build with the notebook's seed holds the notebook's numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from makemore.modules import (
    ACTIVATIONS,
    BatchNorm1d,
    Embedding,
    Flatten,
    Linear,
    Module,
    Residual,
    Scale,
    Sequential,
    Streams,
    per_member,
)

NOTEBOOK_SEED = 2147483647
VOCAB_SIZE = 27

# Gains for std-preserving init, gain / sqrt(fan_in); the values of torch.nn.init.calculate_gain.
LEAKY_SLOPE = 0.01
GAINS = {
    "linear": 1.0,
    "sigmoid": 1.0,
    "tanh": 5.0 / 3.0,
    "relu": math.sqrt(2.0),
    "leaky_relu": math.sqrt(2.0 / (1.0 + LEAKY_SLOPE**2)),
}


def kaiming_std(nonlinearity: str, fan_in: int) -> float:
    """The std that Kaiming (He) init gives a weight: gain / sqrt(fan_in)."""
    if nonlinearity not in GAINS:
        raise ValueError(f"no gain for {nonlinearity!r}; known: {', '.join(GAINS)}")
    return GAINS[nonlinearity] / math.sqrt(fan_in)


@dataclass(frozen=True)
class MLPConfig:
    """The one-hidden-layer MLP of the loss log. A scale of None for a bias means no bias;
    "kaiming" for w1 means gain(nonlinearity) / sqrt(fan_in). bn_affine=False drops the
    BatchNorm's gain and bias (the hidden units stay standardised)."""

    w1: Scale | str = 1.0
    b1: Scale | None = 1.0
    w2: Scale = 1.0
    b2: Scale = 1.0
    batchnorm: bool = False
    n_embd: int = 10
    n_hidden: int = 200
    block_size: int = 3
    vocab_size: int = VOCAB_SIZE
    nonlinearity: str = "tanh"
    bn_momentum: float = 0.001
    bn_affine: bool = True
    bn_eps: float = 0.0  # the notebook's MLP divides by the batch std with no eps

    @property
    def fan_in(self) -> int:
        return self.n_embd * self.block_size

    def w1_scale(self) -> Scale:
        """The W1 scale: a number, one per member, or "kaiming" resolved to its value."""
        if self.w1 == "kaiming":
            return kaiming_std(self.nonlinearity, self.fan_in)
        if isinstance(self.w1, str):
            raise ValueError(f"w1 must be a number or 'kaiming', got {self.w1!r}")
        return self.w1 if isinstance(self.w1, tuple | list) else float(self.w1)


MLP_CONFIGS = {
    "original": MLPConfig(),
    "fix-softmax": MLPConfig(w2=0.01, b2=0.0),
    "fix-tanh": MLPConfig(w1=0.2, b1=0.01, w2=0.01, b2=0.0),
    "kaiming": MLPConfig(w1="kaiming", b1=0.01, w2=0.01, b2=0.0),
    "batchnorm": MLPConfig(w1="kaiming", b1=None, w2=0.01, b2=0.0, batchnorm=True),
}


def mlp(streams: Streams, config: MLPConfig | str = "kaiming", **overrides: object) -> Sequential:
    """C, W1, (b1), W2, b2 drawn in that order; BatchNorm as in the notebook's MLP (unbiased
    std, no eps, running std with momentum 0.001)."""
    if isinstance(config, str):
        if config not in MLP_CONFIGS:
            raise ValueError(f"unknown MLP config {config!r}; known: {', '.join(MLP_CONFIGS)}")
        config = MLP_CONFIGS[config]
    config = replace(config, **overrides)  # type: ignore[arg-type]
    layers: list[Module] = [
        Embedding(config.vocab_size, config.n_embd, streams=streams),
        Flatten(),
        Linear(
            config.fan_in,
            config.n_hidden,
            bias=config.b1 is not None,
            streams=streams,
            weight_scale=config.w1_scale(),
            bias_scale=config.b1,
        ),
    ]
    if config.batchnorm:
        layers.append(
            BatchNorm1d(
                config.n_hidden,
                eps=config.bn_eps,
                momentum=config.bn_momentum,
                members=streams.members,
                track="std",
                affine=config.bn_affine,
            )
        )
    layers.append(ACTIVATIONS[config.nonlinearity]())
    layers.append(
        Linear(
            config.n_hidden,
            config.vocab_size,
            streams=streams,
            weight_scale=config.w2,
            bias_scale=config.b2,
        )
    )
    return Sequential(layers)


BN_PLACEMENTS = ("none", "before", "after")


@dataclass(frozen=True)
class DeepConfig:
    """The lecture's deep network: `depth` hidden blocks of Linear -> (BN) -> nonlinearity,
    then Linear to the vocabulary (and BN if `batchnorm_last`).

    batchnorm: "none", "before" the nonlinearity (the standard), or "after" it.
    gain multiplies the hidden Linear weights after the default randn / sqrt(fan_in); with
    fan_in_norm=False the weights are plain randn * gain. last_scale softens the output: it
    multiplies the last BN's gamma, or without a last BN the last Linear's weight (which then
    gets no gain), exactly as in the notebook. bias=None means: a bias unless BN follows.
    bn_affine=False gives every BN no gain and no bias (units stay standardised); then a last BN
    has no gamma to soften, so last_scale must be 1.

    residual=True turns each hidden block whose input and output widths agree (all but the
    first, 30 -> 100) into h + f(h), f being the block (Linear -> BN -> nonlinearity, in the
    order `batchnorm` gives). The first block and the output layer stay plain. Parameters and
    their draws are those of the plain network.

    bias_scale: biases start at 0 (None), or are drawn N(0, bias_scale^2) right after their
    layer's weights (the bias notebook's N(0, 1) biases).
    """

    depth: int = 5
    n_embd: int = 10
    n_hidden: int = 100
    block_size: int = 3
    vocab_size: int = VOCAB_SIZE
    nonlinearity: str = "tanh"
    gain: Scale = 5.0 / 3.0
    fan_in_norm: bool = True
    batchnorm: str = "none"
    batchnorm_last: bool = False
    bias: bool | None = None
    last_scale: float = 0.1
    bn_momentum: Scale = 0.1
    bn_eps: float = 1e-5
    bn_convention: str = "lecture"
    bn_affine: bool = True
    residual: bool = False
    bias_scale: float | None = None

    def __post_init__(self) -> None:
        if self.depth < 1:
            raise ValueError(f"depth must be at least 1, got {self.depth}")
        if self.batchnorm not in BN_PLACEMENTS:
            raise ValueError(f"batchnorm must be one of {BN_PLACEMENTS}, got {self.batchnorm!r}")
        if self.nonlinearity not in ACTIVATIONS:
            raise ValueError(
                f"unknown nonlinearity {self.nonlinearity!r}; known: {', '.join(ACTIVATIONS)}"
            )
        if self.batchnorm_last and not self.bn_affine and self.last_scale != 1.0:
            raise ValueError(
                "bn_affine=False leaves the last BatchNorm no gamma to scale: pass last_scale=1.0"
            )


def deep(streams: Streams, config: DeepConfig | None = None, **overrides: object) -> Sequential:
    config = replace(config or DeepConfig(), **overrides)  # type: ignore[arg-type]
    members = streams.members

    def linear(fan_in: int, fan_out: int, followed_by_bn: bool) -> Linear:
        bias = (not followed_by_bn) if config.bias is None else config.bias
        scale = None if config.fan_in_norm else 1.0
        return Linear(fan_in, fan_out, bias=bias, streams=streams, weight_scale=scale,
                      bias_scale=config.bias_scale)

    def batchnorm(dim: int) -> BatchNorm1d:
        return BatchNorm1d(
            dim,
            eps=config.bn_eps,
            momentum=config.bn_momentum,
            members=members,
            convention=config.bn_convention,
            affine=config.bn_affine,
        )

    layers: list[Module] = [Embedding(config.vocab_size, config.n_embd, streams=streams), Flatten()]
    hidden: list[Linear] = []
    fan_in = config.n_embd * config.block_size
    for _ in range(config.depth):
        hidden.append(linear(fan_in, config.n_hidden, config.batchnorm == "before"))
        block: list[Module] = [hidden[-1]]
        if config.batchnorm == "before":
            block.append(batchnorm(config.n_hidden))
        block.append(ACTIVATIONS[config.nonlinearity]())
        if config.batchnorm == "after":
            block.append(batchnorm(config.n_hidden))
        if config.residual and fan_in == config.n_hidden:
            layers.append(Residual(Sequential(block)))
        else:
            layers.extend(block)
        fan_in = config.n_hidden
    last = linear(fan_in, config.vocab_size, config.batchnorm_last)
    layers.append(last)
    if config.batchnorm_last:
        layers.append(batchnorm(config.vocab_size))
    with torch.no_grad():
        gain = per_member(config.gain, members, 3)
        for layer in hidden + ([last] if config.batchnorm_last else []):
            layer.weight *= gain
        if not config.batchnorm_last:
            last.weight *= config.last_scale
        elif config.bn_affine:
            layers[-1].gamma *= config.last_scale  # type: ignore[attr-defined]
    return Sequential(layers)


def count_parameters(model: Module) -> int:
    """Parameters of one member."""
    return sum(p[0].numel() for p in model.parameters())
