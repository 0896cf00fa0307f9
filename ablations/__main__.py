"""python -m ablations list|run: the claims and their reproduction."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ablations.context import PROFILES, Context
from ablations.registry import UnknownClaimError, load_all, select
from makemore.cli import Parser, device_arg, positive_int, run_guarded

DEFAULT_OUT = Path("results")


def parser() -> argparse.ArgumentParser:
    top = Parser(prog="python -m ablations", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="list the registered claims")
    listing.add_argument("--json", action="store_true", help="print the list as JSON")
    run = sub.add_parser(
        "run", help="run the ablations and write DIR/<id>/{result.json,table.csv,figure.png}"
    )
    run.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default="quick",
        help="quick: CI-sized; full: lecture-faithful (default: quick)",
    )
    run.add_argument(
        "--only",
        action="append",
        metavar="PATTERN",
        help="claim ID, glob (e.g. 'bn.*') or family; repeatable",
    )
    run.add_argument(
        "--seeds", type=positive_int, help="seeds per condition (default: the profile's)"
    )
    run.add_argument("--device", type=device_arg, default="cpu", help="cpu or cuda (default: cpu)")
    run.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="results folder (default: results)"
    )
    run.add_argument("--force", action="store_true", help="re-run claims whose results are cached")
    run.add_argument("--data", help="path to names.txt (see data/README.md)")
    run.add_argument(
        "--allow-other-data",
        action="store_true",
        help="accept a names file whose sha256 is not the lecture's",
    )
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "list":
        rows = [
            {
                "id": c.id,
                "family": c.family,
                "statement": c.statement,
                "source": f"{c.source.doc}:{c.source.lines}",
            }
            for c in load_all().values()
        ]
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            for row in rows:
                print(f"{row['id']:<28} {row['source']:<14} {row['statement']}")
        return 0
    from ablations.runner import ClaimsFailedError, run_all

    claims = select(args.only)
    context = Context(
        PROFILES[args.profile],
        device=args.device,
        n_seeds=args.seeds,
        data_path=args.data,
        allow_other_data=args.allow_other_data,
    )
    context.splits()  # fail on bad data before any work starts
    try:
        outcomes = run_all(claims, context, args.out, force=args.force)
    except ClaimsFailedError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    counts: dict[str, int] = {}
    for outcome in outcomes:
        counts[outcome.verdict] = counts.get(outcome.verdict, 0) + 1
    print("verdicts: " + ", ".join(f"{v}: {n}" for v, n in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    sys.exit(run_guarded(main, extra_errors=(UnknownClaimError,)))
