"""`python -m reports compare`: the comparison printed as a table, with why each claim was
compared in the mode it was, and the exit code (0 no regression, 1 a regression)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from reports.compare import OK, SAME_SEED, Row, compare, failures
from reports.schema import load_results
from reports.stats import ALPHA

HEADER = ("claim", "metric", "mode", "baseline", "new", "allowed", "status")


def format_table(rows: Iterable[Row]) -> str:
    cells = [HEADER] + [(r.claim, r.metric, r.mode, r.baseline, r.new, r.allowed, r.status)
                        for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def mode_lines(rows: list[Row]) -> list[str]:
    """Which claims were compared seed by seed, and why the others were not."""
    verdicts = [r for r in rows if r.metric == "verdict"]
    same = [r.claim for r in verdicts if r.mode == SAME_SEED]
    lines = [f"mode: {len(same)} claim(s) same-seed (same seeds, same build: each sample "
             "against the baseline's sample of its seed)"]
    lines += [f"mode: {r.claim} seed-spread ({'; '.join(r.details)}): means within the pooled "
              "seed spread" for r in verdicts if r.mode != SAME_SEED]
    return lines


def run(baseline_dir: Path, new_dir: Path, quiet: bool = False,
        accept_rule_changes: bool = False) -> int:
    """Print the comparison; 0 when nothing regressed, 1 otherwise (ResultError propagates)."""
    base, new = load_results(baseline_dir), load_results(new_dir)
    rows = compare(base, new)
    failed = failures(rows, accept_rule_changes)
    shown = [r for r in rows if r.status != OK] if quiet else rows
    if shown:
        print(format_table(shown))
    for row in shown:
        for detail in row.details if row.metric != "verdict" else ():
            print(f"  {row.claim} {row.metric}: {detail}")
    print("\n".join(mode_lines(rows)))
    accepted = [r for r in rows if r.status == "RULE CHANGED" and accept_rule_changes]
    if accepted:
        print(f"{len(accepted)} rule change(s) accepted (--accept-rule-changes)")
    metrics = sum(1 for r in rows if r.metric not in ("-", "verdict", "borderline", "rules"))
    print(f"{len(base.claims)} baseline claims, {metrics} metrics compared (seed-spread: "
          f"per-metric two-sided level {ALPHA:.0e}): "
          + (f"{len(failed)} regression(s)" if failed else "no regression"))
    return 1 if failed else 0
