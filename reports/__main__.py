"""python -m reports build|compare: the report and the regression check, from result files.

Exit codes: 0 done (compare: no regression); 1 compare found a regression; 2 bad arguments or
a result/README file that is missing or corrupt (one line on stderr, no traceback); 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path
from typing import NoReturn

from reports.build import ReadmeError, build
from reports.check import run as run_compare
from reports.schema import ResultError

PROG = "python -m reports"


class Parser(argparse.ArgumentParser):
    """Argument errors in one line (the usage is one --help away), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def date_arg(text: str) -> str:
    try:
        datetime.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO date like 2024-05-31, got {text!r}") \
            from None
    return text


def parser() -> Parser:
    top = Parser(prog=PROG, description=__doc__,
                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = top.add_subparsers(dest="command", required=True, parser_class=Parser)
    b = sub.add_parser("build", help="write REPORT.md, report.html and figures/ from DIR")
    b.add_argument("--results", type=Path, required=True, metavar="DIR",
                   help="the folder `python -m ablations run --out` wrote")
    b.add_argument("--out", type=Path, default=Path("reports"),
                   help="where REPORT.md, report.html and figures/ go (default: reports)")
    b.add_argument("--readme", type=Path, metavar="README.md",
                   help="also replace the summary between <!-- summary:start --> and "
                        "<!-- summary:end --> in this file")
    b.add_argument("--baseline", type=Path, metavar="DIR",
                   help="open the report with the verdict and rule changes against these "
                        "results (the rows of `compare`)")
    b.add_argument("--date", type=date_arg,
                   help="the date to state in the header (default: the newest time the "
                        "results record; none when they record none)")
    c = sub.add_parser("compare", help="check NEW_DIR against BASELINE_DIR; exit 1 on a "
                                       "regression")
    c.add_argument("baseline", type=Path, metavar="BASELINE_DIR")
    c.add_argument("new", type=Path, metavar="NEW_DIR")
    c.add_argument("--quiet", action="store_true", help="print only the rows that are not ok")
    c.add_argument("--accept-rule-changes", action="store_true",
                   help="RULE CHANGED does not fail: for a change whose commit regenerates the "
                        "baseline and says why the rule changed")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "compare":
            return run_compare(args.baseline, args.new, quiet=args.quiet,
                               accept_rule_changes=args.accept_rule_changes)
        built = build(args.results, args.out, date=args.date, readme=args.readme,
                      baseline=args.baseline)
    except (ResultError, ReadmeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: {err.filename or ''}: {err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    for warning in built.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    changed = ", ".join(str(p) for p in built.written) or "nothing (already up to date)"
    print(f"built the report of {args.results} in {args.out}; changed: {changed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
