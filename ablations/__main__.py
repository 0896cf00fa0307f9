"""python -m ablations list|run|runs|status: the claims and their reproduction.

Errors in what the user gave end in one line on stderr and exit code 2; a claim that failed
while others finished, or `status` finding results stale or missing, exit 1; Ctrl-C exits 130
and loses no finished result.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ablations.cluster import SchedulerError
from ablations.context import PROFILES, Context
from ablations.registry import ClaimError, UnknownClaimError, load_all, select
from makemore.cli import Parser, device_arg, positive_int, run_guarded
from makemore.store import RunStore, StoreError

DEFAULT_OUT = Path("results")


def parser() -> argparse.ArgumentParser:
    top = Parser(prog="python -m ablations", description=__doc__,
                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = top.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="list the registered claims")
    listing.add_argument("--json", action="store_true", help="print the list as JSON")

    common = Parser(add_help=False)
    common.add_argument("--profile", choices=sorted(PROFILES), default="quick",
                        help="tiny: tests; quick: CI-sized; full: the lecture's lengths "
                             "(default: quick)")
    common.add_argument("--only", action="append", metavar="PATTERN",
                        help="claim ID, glob (e.g. 'bn.*') or family; repeatable")
    common.add_argument("--seeds", type=positive_int,
                        help="seeds per condition to start with (default: the profile's)")
    common.add_argument("--device", type=device_arg, default="cpu",
                        help="cpu or cuda (default: cpu)")
    common.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="results folder (default: results)")
    common.add_argument("--runs", type=Path, default=None,
                        help="run store folder (default: runs/, or $MAKEMORE_RUNS)")
    common.add_argument("--data", help="path to names.txt (see data/README.md)")
    common.add_argument("--allow-other-data", action="store_true",
                        help="accept a names file whose sha256 is not the lecture's")

    run = sub.add_parser("run", parents=[common], help="run the ablations and write "
                         "DIR/<id>/{result.json,table.csv,figure.png}")
    run.add_argument("--force", action="store_true", help="re-run claims whose results exist")
    run.add_argument("--workers", type=positive_int, default=0,
                     help="run on a local Dask cluster of N single-thread workers")
    run.add_argument("--scheduler", metavar="ADDRESS",
                     help="run on an existing Dask cluster (e.g. tcp://host:8786)")
    run.add_argument("--plan", action="store_true",
                     help="print what would be trained (ensembles, member runs, seed-steps) "
                          "and stop")

    sub.add_parser("status", parents=[common],
                   help="say which results are fresh, stale or missing (exit 1 unless all fresh)")

    runs = sub.add_parser("runs", help="list the run store, or prune it")
    runs.add_argument("--runs", type=Path, default=None,
                      help="run store folder (default: runs/, or $MAKEMORE_RUNS)")
    runs.add_argument("--profile", choices=sorted(PROFILES), default="full",
                      help="the profile whose claims count as users of a run (default: full)")
    runs.add_argument("--prune", action="store_true",
                      help="delete the runs no claim of --profile uses, and stale checkpoints")
    return top


def context(args: argparse.Namespace) -> Context:
    ctx = Context(PROFILES[args.profile], device=args.device, n_seeds=args.seeds,
                  data_path=args.data, allow_other_data=args.allow_other_data,
                  store=RunStore(args.runs))
    ctx.splits()  # fail on bad data before any work starts
    return ctx


def command_list(args: argparse.Namespace) -> int:
    rows = [{"id": c.id, "family": c.family, "statement": c.statement,
             "source": f"{c.source.doc}:{c.source.lines}", "headline": c.headline}
            for c in load_all().values()]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            print(f"{row['id']:<28} {row['source']:<16} {row['statement']}")
    return 0


def command_run(args: argparse.Namespace) -> int:
    from ablations.runner import ClaimsFailedError, run_all

    claims = select(args.only)
    ctx = context(args)
    if args.plan:
        from ablations.runner import describe_plan, plan

        print(describe_plan(plan(claims, ctx, args.out, force=args.force)))
        return 0
    try:
        result = run_all(claims, ctx, args.out, force=args.force, workers=args.workers,
                         scheduler=args.scheduler)
    except ClaimsFailedError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    counts: dict[str, int] = {}
    for verdict in result.outcomes.values():
        counts[verdict] = counts.get(verdict, 0) + 1
    print(f"trained {result.member_runs_trained} member runs in {result.groups_trained} "
          f"ensembles; {len(result.cached)} claims were already done")
    print("verdicts: " + ", ".join(f"{v}: {n}" for v, n in sorted(counts.items())))
    return 0


def command_status(args: argparse.Namespace) -> int:
    from ablations.status import status

    return status(select(args.only), context(args), args.out)


def command_runs(args: argparse.Namespace) -> int:
    from ablations.storeview import list_runs, prune

    store = RunStore(args.runs)
    if args.prune:
        return prune(store, PROFILES[args.profile])
    return list_runs(store, PROFILES[args.profile])


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    commands = {"list": command_list, "run": command_run, "status": command_status,
                "runs": command_runs}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(run_guarded(main, extra_errors=(UnknownClaimError, ClaimError, StoreError,
                                               SchedulerError)))
