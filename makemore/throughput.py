"""Throughput in seed-steps per second against the matmul limit of the device.

A seed-step is one training step of one member. Its matmul work is counted from the network's
shapes: each Linear costs 2 * batch * fan_in * fan_out FLOPs forward and twice that backward
(the weight's gradient and the input's). The limit is the rate a large single matmul reaches on
the same device (sgemm, 1024 x 1024) divided by that count: no engine can beat it by batching
the same matmuls, so the fraction of it reached says how much time goes elsewhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from makemore.models import deep, mlp
from makemore.modules import Linear, Module, Sequential, Streams

# the networks of the throughput tables: the lecture's MLP (kaiming config) and its deep
# network with BatchNorm before every tanh and after the output layer
NETWORKS: dict[str, Callable[[Streams], Sequential]] = {
    "MLP": lambda streams: mlp(streams, "kaiming"),
    "deep BN": lambda streams: deep(streams, batchnorm="before", batchnorm_last=True, gain=1.0),
}


def matmul_flops(model: Module, batch: int) -> int:
    """Forward and backward matmul FLOPs of one member's training step."""
    return sum(6 * batch * m.weight.shape[1] * m.weight.shape[2]
               for m in model.modules() if isinstance(m, Linear))


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_seconds(run: Callable[[], object], device: torch.device, rounds: int = 5) -> float:
    """The fastest of `rounds` timed calls, after one untimed warm-up call."""
    run()
    _synchronise(device)
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        _synchronise(device)
        best = min(best, time.perf_counter() - start)
    return best


def sgemm_flops_per_second(device: torch.device, size: int = 1024, repeats: int = 10) -> float:
    """float32 FLOP/s of a size x size matmul on `device` (best of 5 rounds)."""
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, size, generator=g).to(device) for _ in range(2))
    out = torch.empty(size, size, device=device)

    def run() -> None:
        for _ in range(repeats):
            torch.mm(a, b, out=out)

    return 2 * size**3 * repeats / best_seconds(run, device)


@dataclass(frozen=True)
class Rate:
    """One measured runner training `network`, whose matmul FLOPs per seed-step are `flops`."""

    runner: str
    network: str
    seed_steps_per_second: float
    flops: int


def table(rates: Sequence[Rate], sgemm: float, baseline: str) -> list[str]:
    """Markdown lines: seed-steps/s, ratio to the `baseline` runner, fraction of the limit."""
    base = {r.runner: r.seed_steps_per_second for r in rates}.get(baseline)
    lines = [f"| runner | seed-steps/s | vs {baseline} | fraction of the limit |",
             "|---|---:|---:|---:|"]
    for r in rates:
        ratio = f"{r.seed_steps_per_second / base:.2f}x" if base else "-"
        fraction = r.seed_steps_per_second * r.flops / sgemm
        lines.append(f"| {r.runner} | {r.seed_steps_per_second:,.0f} | {ratio} | {fraction:.0%} |")
    networks = {r.network: r.flops for r in rates}
    limits = "; ".join(f"{name}: {flops / 1e6:.2f} MFLOP, limit {sgemm / flops:,.0f} seed-steps/s"
                       for name, flops in networks.items())
    lines.append("")
    lines.append(f"sgemm (1024 x 1024, float32): {sgemm / 1e9:,.0f} GFLOP/s. Limit = sgemm FLOP/s "
                 f"/ matmul FLOPs per seed-step ({limits}).")
    return lines
