"""The GPU checks in one command, sized for about 5 minutes on one GPU (`tox -e gpu`):

1. the CPU-vs-CUDA equality test (tests/makemore/test_train.py::test_cuda_equals_cpu);
2. the throughput table on the device: the MLP and the deep BatchNorm network at E = 1, 64,
   1,024 and 16,384 members, with the fraction of the device's sgemm-limited rate;
3. one claim at full fidelity on CUDA: `python -m ablations run --profile full --only
   kaiming.mlp --device cuda --out DIR`.

Without a CUDA device it says so in one line and exits 0. `--device cpu` runs the table on the
CPU (small settings make it a quick check of this script).
"""

from __future__ import annotations

import argparse
import functools
import subprocess
import sys
import tempfile

import torch

from makemore.data import load_splits
from makemore.models import NOTEBOOK_SEED
from makemore.modules import Streams
from makemore.throughput import (
    NETWORKS,
    Rate,
    best_seconds,
    matmul_flops,
    sgemm_flops_per_second,
    table,
)
from makemore.train import TrainConfig, train

BATCH = 32


def positive_ints(text: str) -> list[int]:
    """Comma-separated positive integers."""
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        values = []
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m makemore.gpucheck",
                                  description=__doc__.splitlines()[0])
    top.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    top.add_argument("--members", type=positive_ints, default=[1, 64, 1024, 16384],
                     help="comma-separated ensemble sizes for the table (default: 1,64,1024,16384)")
    top.add_argument("--steps", type=lambda t: positive_ints(t)[0], default=100,
                     help="steps per timed run (default: 100)")
    top.add_argument("--skip-tests", action="store_true", help="skip the CPU-vs-CUDA test")
    top.add_argument("--skip-claim", action="store_true", help="skip the full-fidelity claim")
    return top


def rates(device: torch.device, members: list[int], steps: int) -> list[Rate]:
    """Seed-steps per second of train() (the fast step) for each network and ensemble size."""
    data = load_splits(3).train
    config = TrainConfig(steps=steps, batch_size=BATCH, decay_step=None)
    measured = []
    for name, build in NETWORKS.items():
        flops = matmul_flops(build(Streams([0])), BATCH)
        for count in members:
            streams = Streams([NOTEBOOK_SEED + i for i in range(count)])
            model = build(streams).to(device)
            seconds = best_seconds(functools.partial(train, model, data, config, streams),
                                   device, rounds=3)
            measured.append(Rate(f"engine, {name}, E = {count:,}", name, count * steps / seconds,
                                 flops, sgemm_flops_per_second(device)))
            print(f"  {name}, E = {count:,}: {count * steps / seconds:,.0f} seed-steps/s",
                  flush=True)
    return measured


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpucheck: no CUDA device here; nothing to check (run it on a GPU machine)")
        return 0
    failed = []
    if device.type == "cuda" and not args.skip_tests:
        test = "tests/makemore/test_train.py::test_cuda_equals_cpu"
        if subprocess.call([sys.executable, "-m", "pytest", "-q", test]):
            failed.append("CPU-vs-CUDA test")
    print(f"throughput on {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}"
          f", {args.steps} steps per run:", flush=True)
    measured = rates(device, args.members, args.steps)
    print("\n".join(table(measured, measured[0].runner)))
    if device.type == "cuda" and not args.skip_claim:
        with tempfile.TemporaryDirectory() as out:
            command = [sys.executable, "-m", "ablations", "run", "--profile", "full", "--only",
                       "kaiming.mlp", "--device", "cuda", "--out", out]
            print(" ".join(command[1:]), flush=True)
            if subprocess.call(command):
                failed.append("kaiming.mlp at full fidelity")
    if failed:
        print(f"gpucheck: failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
