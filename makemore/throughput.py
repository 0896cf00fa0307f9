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
    """One measured runner training `network` (matmul FLOPs per seed-step: `flops`), and the
    sgemm FLOP/s measured right after it, under the same load."""

    runner: str
    network: str
    seed_steps_per_second: float
    flops: int
    sgemm: float

    @property
    def fraction(self) -> float:
        """Of the limit: sgemm FLOP/s / FLOPs per seed-step."""
        return self.seed_steps_per_second * self.flops / self.sgemm


def table(rates: Sequence[Rate], baseline: str) -> list[str]:
    """Markdown lines: seed-steps/s, ratio to the `baseline` runner, fraction of the limit."""
    base = {r.runner: r.seed_steps_per_second for r in rates}.get(baseline)
    lines = [f"| runner | seed-steps/s | vs {baseline} | sgemm GFLOP/s | fraction of the limit |",
             "|---|---:|---:|---:|---:|"]
    for r in rates:
        ratio = f"{r.seed_steps_per_second / base:.2f}x" if base else "-"
        lines.append(f"| {r.runner} | {r.seed_steps_per_second:,.0f} | {ratio} | "
                     f"{r.sgemm / 1e9:,.0f} | {r.fraction:.0%} |")
    flops = "; ".join(f"{name} {count / 1e6:.2f} MFLOP"
                      for name, count in {r.network: r.flops for r in rates}.items())
    lines.append("")
    lines.append("Limit = sgemm FLOP/s (1024 x 1024, float32, measured right after each runner) / "
                 f"matmul FLOPs per seed-step ({flops}).")
    return lines
