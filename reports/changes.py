"""The change review at the top of a report built with `--baseline`: verdict, borderline and
rule changes (and claims that came or went) against the baseline, from the same rows as
`python -m reports compare`, with the count of every other regression."""

from __future__ import annotations

from collections import Counter

from reports.blocks import Block, Code, Heading, Para, Strong, Table
from reports.compare import (
    BORDERLINE_CHANGED,
    CLAIM_MISSING,
    NEW_CLAIM,
    RULE_CHANGED,
    VERDICT_CHANGED,
    Row,
)

LISTED = (VERDICT_CHANGED, RULE_CHANGED, BORDERLINE_CHANGED, CLAIM_MISSING, NEW_CLAIM)


def review(rows: list[Row], baseline: str) -> list[Block]:
    listed = [r for r in rows if r.status in LISTED]
    others = Counter(r.status for r in rows if r.failed() and r.status not in LISTED)
    tally = "; ".join(f"{status}: {n}" for status, n in sorted(others.items())) or "none"
    blocks: list[Block] = [
        Heading(2, "Changes against the baseline", "changes-against-the-baseline"),
        Para(("Compared with ", Code(baseline), " by the code of ", Code("python -m reports "
              "compare"), ": " + (f"{len(listed)} change(s) listed below" if listed else
                                  "no verdict, borderline or rule change, no claim came or went")
              + f". Other regressions of metrics: {tally}.")),
    ]
    if listed:
        blocks.append(Table(("claim", "change", "baseline", "new", "what changed"),
                            tuple(((r.claim,), (Strong(r.status),), (r.baseline,), (r.new,),
                                   ("; ".join(r.details) if r.status == RULE_CHANGED else "",))
                                  for r in listed), (False,) * 5))
    return blocks
