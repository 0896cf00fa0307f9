"""python -m makemore train|sample: the lecture's networks from the command line.

Errors in what the user gave (a bad value, a missing or altered data file) end in one line on
stderr and exit code 2; Ctrl-C ends with exit code 130. Neither prints a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import NoReturn

import torch

from makemore.data import DataError, load_splits
from makemore.models import MLP_CONFIGS, NOTEBOOK_SEED, deep, mlp
from makemore.modules import Module, Streams
from makemore.progress import Progress
from makemore.stats import mean_ci
from makemore.train import TrainConfig, evaluate, sample, train

DEEP_CONFIGS = {"deep": {}, "deep-bn": {"batchnorm": "before", "batchnorm_last": True, "gain": 1.0}}
CONFIGS = [*MLP_CONFIGS, *DEEP_CONFIGS]
SAMPLE_SEED = NOTEBOOK_SEED + 10  # the notebook's sampling generator


class Parser(argparse.ArgumentParser):
    """Argument errors in one line (the usage is one --help away) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def device_arg(text: str) -> torch.device:
    if text not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"device must be cpu or cuda, got {text!r}")
    if text == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError("--device cuda: no CUDA device is available here")
    return torch.device(text)


def build(name: str, streams: Streams) -> Module:
    if name in DEEP_CONFIGS:
        return deep(streams, **DEEP_CONFIGS[name])  # type: ignore[arg-type]
    return mlp(streams, name)


def parser() -> argparse.ArgumentParser:
    top = Parser(
        prog="python -m makemore",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = top.add_subparsers(dest="command", required=True)
    common = Parser(add_help=False)
    common.add_argument(
        "--config",
        choices=CONFIGS,
        default="kaiming",
        help="network and init: the five loss-log MLPs, or the deep network "
        "without (deep) or with BatchNorm (deep-bn) (default: kaiming)",
    )
    common.add_argument(
        "--steps",
        type=positive_int,
        default=200_000,
        help="SGD steps (default: 200000, as in the notebook)",
    )
    common.add_argument("--batch-size", type=positive_int, default=32, help="default: 32")
    common.add_argument(
        "--lr",
        type=positive_float,
        default=0.1,
        help="learning rate, divided by 10 halfway (MLP) or at 3/4 (deep) of the run",
    )
    common.add_argument(
        "--device", type=device_arg, default="cpu", help="cpu or cuda (default: cpu)"
    )
    common.add_argument("--data", help="path to names.txt (default: see data/README.md)")
    common.add_argument(
        "--allow-other-data",
        action="store_true",
        help="accept a names file whose sha256 is not the lecture's",
    )
    tr = sub.add_parser("train", parents=[common], help="train seeds as one ensemble; print losses")
    tr.add_argument(
        "--seeds",
        type=positive_int,
        default=1,
        help="independent seeds, trained as one batched ensemble (default: 1)",
    )
    tr.add_argument(
        "--replay",
        action="store_true",
        help="one member with the notebook's seed 2147483647: its printed numbers",
    )
    tr.add_argument("--json", action="store_true", help="print the results as JSON")
    sa = sub.add_parser(
        "sample", parents=[common], help="train the notebook's seed, then sample names"
    )
    sa.add_argument("-n", type=positive_int, default=20, help="names to sample (default: 20)")
    return top


def run_training(args: argparse.Namespace, seeds: list[int]) -> tuple[Module, object, object]:
    splits = load_splits(3, args.data, args.allow_other_data)
    streams = Streams(seeds)
    model = build(args.config, streams).to(args.device)
    fraction = 0.75 if args.config in DEEP_CONFIGS else 0.5
    config = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        decay_step=int(args.steps * fraction),
    )
    bar = Progress(args.steps, f"{args.config} x{len(seeds)}", "steps")
    history = train(model, splits.train, config, streams, progress=bar)
    bar.close()
    return model, history, splits


def command_train(args: argparse.Namespace) -> int:
    seeds = [NOTEBOOK_SEED] if args.replay else [NOTEBOOK_SEED + i for i in range(args.seeds)]
    model, history, splits = run_training(args, seeds)
    step0 = history.initial.tolist()  # type: ignore[attr-defined]
    train_loss = evaluate(model, splits.train).tolist()  # type: ignore[attr-defined]
    val_loss = evaluate(model, splits.dev).tolist()  # type: ignore[attr-defined]
    summary = {
        name: mean_ci(values)
        for name, values in (("step0", step0), ("train", train_loss), ("val", val_loss))
    }
    if args.json:
        print(
            json.dumps(
                {
                    "config": args.config,
                    "steps": args.steps,
                    "seeds": seeds,
                    "data_sha256": splits.sha256,  # type: ignore[attr-defined]
                    "step0": step0,
                    "train": train_loss,
                    "val": val_loss,
                    "summary": {
                        k: {"mean": e.mean, "ci_low": e.ci_low, "ci_high": e.ci_high, "n": e.n}
                        for k, e in summary.items()
                    },
                },
                indent=2,
            )
        )
        return 0
    print(f"{'seed':>12} {'step-0':>8} {'train':>8} {'val':>8}")
    for seed, a, b, c in zip(seeds, step0, train_loss, val_loss, strict=True):
        print(f"{seed:>12} {a:>8.4f} {b:>8.4f} {c:>8.4f}")
    print(
        f"{'mean':>12} {summary['step0'].mean:>8.4f} {summary['train'].mean:>8.4f} "
        f"{summary['val'].mean:>8.4f}"
    )
    if len(seeds) > 1:
        for name, estimate in summary.items():
            print(
                f"  {name}: mean {estimate.mean:.4f}, 95% CI [{estimate.ci_low:.4f}, "
                f"{estimate.ci_high:.4f}] over {estimate.n} seeds"
            )
    return 0


def command_sample(args: argparse.Namespace) -> int:
    model, _, _ = run_training(args, [NOTEBOOK_SEED])
    for name in sample(model, args.n, block_size=3, seed=SAMPLE_SEED):
        print(name)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "train":
        return command_train(args)
    return command_sample(args)


def run_guarded(main_fn: Callable[[], int], extra_errors: tuple[type[Exception], ...] = ()) -> int:
    """Turn expected failures into one line and an exit code instead of a traceback."""
    expected: tuple[type[Exception], ...] = (DataError, ValueError, *extra_errors)
    try:
        return main_fn()
    except KeyboardInterrupt:
        print(
            "interrupted: finished results are kept and nothing half-written is left; "
            "run the same command again to resume",
            file=sys.stderr,
        )
        return 130
    except expected as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
