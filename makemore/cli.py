"""python -m makemore train|sample: the lecture's networks from the command line.

Trained runs are kept in the run store when asked (`train --save`, and always by `sample`), and
any run already there is read instead of trained again: the same config, steps, lr, seed, data
and engine give the same bits.

Exit codes: 0 done; 2 an error in what the user gave (a bad value, a missing, altered or too
small data file, a run that cannot fit in memory, an unknown run ID), in one line on stderr;
3 training finished but a run diverged (its loss not finite, or worse than at step 0), said
on stderr and flagged in the table and the JSON; 130 Ctrl-C. None prints a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import NoReturn

import torch

from makemore.data import DataError, load_splits
from makemore.models import MLP_CONFIGS, NOTEBOOK_SEED, DeepConfig, MLPConfig, count_parameters
from makemore.progress import Progress
from makemore.runs import Assembled, MemberSpec, assemble, make_spec, train_members
from makemore.runs import build as build_members
from makemore.stats import mean_ci
from makemore.store import RunStore, StoreError
from makemore.train import TrainConfig, check_memory, sample

DEEP_CONFIGS = {"deep": {}, "deep-bn": {"batchnorm": "before", "batchnorm_last": True, "gain": 1.0}}
CONFIGS = [*MLP_CONFIGS, *DEEP_CONFIGS]
SAMPLE_SEED = NOTEBOOK_SEED + 10  # the notebook's sampling generator
EXIT_DIVERGED = 3  # training finished, but a run diverged


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


def model_config(name: str) -> MLPConfig | DeepConfig:
    if name in DEEP_CONFIGS:
        return replace(DeepConfig(), **DEEP_CONFIGS[name])  # type: ignore[arg-type]
    return MLP_CONFIGS[name]


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
    common.add_argument("--runs", help="run store folder (default: runs/, or $MAKEMORE_RUNS)")
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
    tr.add_argument("--save", action="store_true",
                    help="keep the trained runs in the run store and print their IDs")
    tr.add_argument("--json", action="store_true", help="print the results as JSON")
    sa = sub.add_parser(
        "sample", parents=[common],
        help="sample names from a stored run (trained and stored first if there is none)"
    )
    sa.add_argument("-n", type=positive_int, default=20, help="names to sample (default: 20)")
    sa.add_argument("--run", metavar="ID", help="the stored run to sample from (an ID printed "
                    "by train --save, or a unique prefix of it)")
    return top


def member_specs(args: argparse.Namespace, seeds: list[int], sha256: str) -> list[MemberSpec]:
    """The member runs the arguments describe, keyed as the run store keys them (the same runs
    the ablations train, when the settings agree)."""
    config = model_config(args.config)
    fraction = 0.75 if args.config in DEEP_CONFIGS else 0.5
    train_config = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                               decay_step=int(args.steps * fraction))
    spec = make_spec(config, train_config, device=args.device.type)
    return [MemberSpec.of(spec, seed, sha256) for seed in seeds]


def obtain(args: argparse.Namespace, seeds: list[int], save: bool) -> tuple[Assembled, list[str]]:
    """The runs: read from the store where they are, the rest trained (and stored if `save`).
    Returns them assembled, and what was done for each."""
    splits = load_splits(3, args.data, args.allow_other_data)
    store = RunStore(args.runs)
    specs = member_specs(args, seeds, splits.sha256)
    check_memory(count_parameters(build_members(specs[:1])[0]), len(specs), args.steps,
                 args.batch_size)
    found = {m.key: store.get(m.key) for m in specs}
    missing = [m for m in specs if found[m.key] is None]
    payloads = {k: (run.tensors, run.results) for k, run in found.items() if run is not None}
    if missing:
        bar = Progress(args.steps * len(missing), f"{args.config} x{len(missing)}", "seed-steps")
        payloads.update(train_members(missing, splits, args.device, store if save else None,
                                      progress=bar))
        bar.close()
    done = ["stored" if found[m.key] else "trained and stored" if save else "trained"
            for m in specs]
    return assemble(specs, [payloads[m.key] for m in specs], args.device), done


def command_train(args: argparse.Namespace) -> int:
    seeds = [NOTEBOOK_SEED] if args.replay else [NOTEBOOK_SEED + i for i in range(args.seeds)]
    runs, done = obtain(args, seeds, args.save)
    splits = load_splits(3, args.data, args.allow_other_data)
    keys = [m.key for m in member_specs(args, seeds, splits.sha256)]
    step0 = runs.losses[0].tolist()
    train_loss = [r["train_loss"] for r in runs.results]
    val_loss = [r["val_loss"] for r in runs.results]
    diverged = [bool(r["diverged"]) for r in runs.results]
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
                    "runs": keys,
                    "data_sha256": splits.sha256,
                    "step0": step0,
                    "train": [json_number(v) for v in train_loss],
                    "val": [json_number(v) for v in val_loss],
                    "diverged": diverged,
                    "summary": {
                        k: {"mean": json_number(e.mean), "ci_low": json_number(e.ci_low),
                            "ci_high": json_number(e.ci_high), "n": e.n}
                        for k, e in summary.items()
                    },
                },
                indent=2,
            )
        )
    else:
        print(f"{'seed':>12} {'step-0':>8} {'train':>8} {'val':>8}  run")
        for seed, a, b, c, bad, key, how in zip(seeds, step0, train_loss, val_loss, diverged,
                                                keys, done, strict=True):
            flag = "  DIVERGED" if bad else ""
            print(f"{seed:>12} {a:>8.4f} {b:>8.4f} {c:>8.4f}  {key} ({how}){flag}")
        if len(seeds) > 1:
            for name, estimate in summary.items():
                print(
                    f"  {name}: mean {estimate.mean:.4f}, 95% CI [{estimate.ci_low:.4f}, "
                    f"{estimate.ci_high:.4f}] over {estimate.n} seeds"
                )
    if any(diverged):
        print(f"warning: {sum(diverged)} of {len(seeds)} runs diverged (loss not finite, or "
              "worse than at step 0): lower --lr", file=sys.stderr)
        return EXIT_DIVERGED
    return 0


def json_number(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)


def command_sample(args: argparse.Namespace) -> int:
    if args.run:
        run = RunStore(args.runs).find(args.run)
        spec = MemberSpec(run.spec, run.seed, run.key)
        model = assemble([spec], [(run.tensors, run.results)], args.device).model
        how = f"run {run.key}"
        block = run.spec["data"]["block_size"]
    else:
        runs, done = obtain(args, [NOTEBOOK_SEED], save=True)
        model = runs.model
        how = f"the {done[0]} run of --config {args.config}, seed {NOTEBOOK_SEED}"
        block = 3
    print(f"# sampled from {how}", file=sys.stderr)
    for name in sample(model, args.n, block_size=block, seed=SAMPLE_SEED):
        print(name)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "train":
        return command_train(args)
    return command_sample(args)


def run_guarded(main_fn: Callable[[], int], extra_errors: tuple[type[Exception], ...] = ()) -> int:
    """Turn expected failures into one line and an exit code instead of a traceback."""
    expected: tuple[type[Exception], ...] = (DataError, ValueError, StoreError, *extra_errors)
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
