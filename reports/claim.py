"""One claim's section. It opens with what a reader checks first, in this order: the quoted
source lines, the verdict (and whether it is borderline), the plain-language finding, the checks
one line each, the figure, and the metrics the checks read. Everything else (what holds instead,
every other metric, an excerpt of the table, the run) is collapsed in a `<details>`."""

from __future__ import annotations

import csv

from reports.blocks import (
    Badge,
    Block,
    Bullets,
    Code,
    Details,
    Heading,
    Para,
    Quote,
    Section,
    Strong,
    Table,
    slug,
    verdict_css,
)
from reports.results import ANSWERED, ClaimResult, Metric
from reports.summary import meta, settings_text
from reports.text import cell, citation, duration, fmt, given, measured, one_line

DOCS = {"L": "lecture transcript", "N": "notebook on the bias term"}
QUOTE_CHARS = 280  # the quote is cut here (result.json holds it whole)
TABLE_HEAD, TABLE_TAIL, TABLE_COLUMNS, CELL_CHARS = 3, 1, 8, 24
OUTCOME_CSS = {"pass": "o-pass", "fail": "o-fail", "straddle": "o-straddle", "short": "o-short"}
BORDERLINE = "borderline: a deciding check's CI still straddled its edge at the seed cap"


def opening(claim: ClaimResult) -> list[Block]:
    source = claim.source
    said = (f"— {citation(claim)}, {DOCS.get(source.doc, source.doc)}; "
            f"tested as: {claim.statement}",)
    quote = Quote(((one_line(source.quote, QUOTE_CHARS),), said)) if source.quote else \
        Para(("(No quote recorded: the sources were not beside the checkout.) ", *said))
    verdict: list[str | Strong | Badge] = [Strong("Verdict:"), " ",
                                           Badge(claim.verdict, verdict_css(claim.verdict))]
    if claim.borderline:
        verdict.append(f" ({BORDERLINE})")
    return [quote, Para(tuple(verdict)),
            Para((Strong("Finding."), " " + (claim.finding or "(none recorded)")))]


def checks(claim: ClaimResult) -> list[Block]:
    if claim.verdict == ANSWERED or not claim.checks:
        return [Bullets(tuple((Strong(q), " " + a) for q, a in claim.answers.items()))] \
            if claim.answers else []
    return [Bullets(tuple((Badge(c.outcome, OUTCOME_CSS[c.outcome]), " " + c.sentence)
                          for c in claim.checks))]


def metrics_table(claim: ClaimResult, metrics: list[Metric]) -> Table:
    rows = tuple(((Code(m.name),), (given(claim.source_values.get(m.name)),),
                  (measured(m) + (f", {m.dropped} dropped" if m.dropped else ""),),
                  (fmt(claim.predictions.get(m.name)),)) for m in metrics)
    return Table(("metric", "source value", "measured [95% CI]", "predicted"), rows,
                 (False, True, True, True))


def excerpt(claim: ClaimResult) -> list[Block]:
    """The first and last rows of table.csv, a few columns, cells cut short."""
    where = Code(f"{claim.id}/{claim.table_file}")
    if not claim.table_path.is_file():
        return [Para(("No table was recorded (", where, " is missing).",))]
    with claim.table_path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if len(rows) < 2:
        return [Para(("The recorded table ", where, " is empty.",))]
    head, body = rows[0][:TABLE_COLUMNS], rows[1:]
    shown = body if len(body) <= TABLE_HEAD + TABLE_TAIL + 1 else \
        body[:TABLE_HEAD] + [["…"]] + body[-TABLE_TAIL:]
    width = len(head)
    table = Table(tuple(one_line(h, CELL_CHARS) for h in head),
                  tuple(tuple((cell(r[i], CELL_CHARS) if i < len(r) else "",)
                              for i in range(width)) for r in shown), (False,) * width)
    what = f"{len(body)} rows, {len(rows[0])} columns" + (", excerpt" if shown != body or
                                                          width < len(rows[0]) else "")
    return [Para((f"Table ({what}): ", where, " in the results.")), table]


def details(claim: ClaimResult, shown: list[Metric]) -> Details:
    blocks: list[Block] = []
    if claim.holds_instead and claim.verdict not in ("reproduced", ANSWERED):
        blocks.append(Para((Strong("What holds instead."), " " + claim.holds_instead)))
    partly = [c.name for c in claim.checks if "partly" in c.roles]
    if partly:
        blocks.append(Para((Strong("Partly reproduced"), " needs only: " + "; ".join(partly)
                            + ".")))
    others = [m for m in claim.metrics if m not in shown]
    if others:
        blocks += [Para((Strong("Other metrics."),)), metrics_table(claim, others)]
    blocks += excerpt(claim)
    members = ", ".join(f"{name} {len(keys)}" for name, keys in claim.runs.items())
    blocks.append(Para((Strong("Run."), f" profile {claim.profile} ({settings_text(claim)}); "
                        f"{len(claim.seeds)} seed{'s' * (len(claim.seeds) != 1)}; "
                        f"{claim.steps:,} training steps; {claim.device}; "
                        f"{duration(claim.duration_s)}"
                        + (f"; member runs: {members}" if members else "") + "; rules ",
                        Code(claim.rules_hash), " (each rule in full in result.json).")))
    return Details("More: other metrics, table, run", tuple(blocks))


def section(claim: ClaimResult) -> Section:
    shown = claim.checked_metrics() or [m for m in (claim.headline(),) if m is not None]
    blocks: list[Block] = [Heading(3, claim.id, slug(claim.id)), *opening(claim),
                           *checks(claim)]
    figure = meta(claim).figure
    blocks.append(figure if figure is not None else
                  Para(("No figure was recorded (", Code(f"{claim.id}/{claim.figure_file}"),
                        " is missing).",)))
    if shown:
        blocks.append(metrics_table(claim, shown))
    blocks.append(details(claim, shown))
    return Section(meta(claim), tuple(blocks))

