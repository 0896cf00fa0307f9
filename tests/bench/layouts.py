"""Times the six matmuls of the MLP step in each of the 64 ways to store its operands (each of
x, W1, h, W2, the logits and dx row- or column-major) and prints the fastest, and autograd's
(all row-major): how float_step.py chose its layouts.

    OMP_NUM_THREADS=1 python -m tests.bench.layouts [--members 64]

A column-major matrix is the transpose of a contiguous one; a product into a column-major
result is computed as its transpose, C^T = B^T A^T; a weight's gradient is fused into its
update, W += -lr * (x^T g), as both steps do. Each matmul's time depends only on the layouts
of its own operands, so each of the 48 distinct cases is timed once.
"""

from __future__ import annotations

import argparse
import itertools

import torch

from makemore.throughput import best_seconds

BATCH, FAN_IN, HIDDEN, VOCAB = 32, 30, 200, 27
NAMES = ("x", "W1", "h", "W2", "logits", "dx")
REPEATS = 50  # calls per timed round: one call is a few hundred microseconds


def stored(members: int, rows: int, cols: int, layout: str) -> torch.Tensor:
    """A (members, rows, cols) matrix, row-major ('r') or the transpose of one ('c')."""
    if layout == "r":
        return torch.randn(members, rows, cols)
    return torch.randn(members, cols, rows).transpose(1, 2)


def product(a: torch.Tensor, b: torch.Tensor, out: torch.Tensor):
    if out.is_contiguous():
        return lambda: torch.bmm(a, b, out=out)
    return lambda: torch.bmm(b.transpose(1, 2), a.transpose(1, 2), out=out.transpose(1, 2))


def update(w: torch.Tensor, a: torch.Tensor, b: torch.Tensor):
    if w.is_contiguous():
        return lambda: w.baddbmm_(a, b, alpha=-1e-30)
    return lambda: w.transpose(1, 2).baddbmm_(b.transpose(1, 2), a.transpose(1, 2), alpha=-1e-30)


def step_seconds(members: int, layouts: dict[str, str], timed: dict) -> float:
    """The six matmuls' time for one choice of layouts; `timed` caches each case."""
    shapes = {"x": (BATCH, FAN_IN), "W1": (FAN_IN, HIDDEN), "h": (BATCH, HIDDEN),
              "W2": (HIDDEN, VOCAB), "logits": (BATCH, VOCAB), "dx": (BATCH, FAN_IN)}
    m = {name: stored(members, *shapes[name], layouts[name]) for name in NAMES}
    cases = {  # name: (the operands whose layouts matter, the call)
        "h = x W1": (("x", "W1", "h"), product(m["x"], m["W1"], m["h"])),
        "logits = h W2": (("h", "W2", "logits"), product(m["h"], m["W2"], m["logits"])),
        "W2 -= h^T dlogits": (("W2", "h", "logits"),
                              update(m["W2"], m["h"].transpose(1, 2), m["logits"])),
        "dh = dlogits W2^T": (("logits", "W2", "h"),
                              product(m["logits"], m["W2"].transpose(1, 2), m["h"])),
        "W1 -= x^T dh": (("W1", "x", "h"), update(m["W1"], m["x"].transpose(1, 2), m["h"])),
        "dx = dh W1^T": (("h", "W1", "dx"), product(m["h"], m["W1"].transpose(1, 2), m["dx"])),
    }
    total = 0.0
    for name, (operands, call) in cases.items():
        key = (name, *(layouts[o] for o in operands))
        if key not in timed:
            timed[key] = best_seconds(lambda: [call() for _ in range(REPEATS)],
                                      torch.device("cpu")) / REPEATS
        total += timed[key]
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=64)
    args = parser.parse_args(argv)
    timed: dict = {}
    ranked = sorted((step_seconds(args.members, dict(zip(NAMES, choice)), timed), choice)
                    for choice in itertools.product("rc", repeat=len(NAMES)))
    autograd = next(s for s, choice in ranked if set(choice) == {"r"})
    print(f"six matmuls at E = {args.members}, layouts of {', '.join(NAMES)} (r: row-major)")
    for seconds, choice in ranked[:5]:
        print(f"  {''.join(choice)}  {seconds * 1e6:7.0f} us")
    print(f"  rrrrrr  {autograd * 1e6:7.0f} us  (autograd's layouts, "
          f"rank {[c for _, c in ranked].index(tuple('rrrrrr')) + 1} of 64)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
