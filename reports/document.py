"""The whole report as blocks: the header, the change review (with a baseline), the summary
with the verdict counts, then a section per claim grouped by family. Nothing here reads a
clock: the same results (and arguments) give the same document."""

from __future__ import annotations

from reports import claim, summary
from reports.blocks import Block, Heading, Para, slug
from reports.results import ResultSet

TITLE = "Reproduction report: makemore part 3"


def report(results: ResultSet, date: str | None,
           review: list[Block] | None = None) -> list[Block]:
    blocks: list[Block] = [Heading(1, TITLE, slug(TITLE)), *summary.header(results, date)]
    blocks += review or []
    blocks += [Heading(2, "Summary", "summary"),
               Para(("Each claim's declared headline metric beside the source value it is "
                     "compared with. A verdict follows from the claim's declared checks: "
                     "reproduced when all pass; partly reproduced when those marked (partly) "
                     "pass; not evaluated when the run was shorter than the claim needs.",))]
    blocks += summary.summary(results)
    family = None
    for result in results.claims:
        if result.family != family:
            family = result.family
            blocks.append(Heading(2, f"Family {family}", slug(f"Family {family}")))
        blocks.append(claim.section(result))
    return blocks
