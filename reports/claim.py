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
    Line,
    Para,
    Quote,
    Section,
    Strong,
    Table,
    slug,
    verdict_css,
)
from reports.results import ANSWERED, ClaimResult, Metric
from reports.summary import meta
from reports.text import cell, citation, duration, fmt, given, measured, one_line

QUOTE_CHARS = 120  # the quote is cut here (result.json holds it whole)
TABLE_ROWS, TABLE_COLUMNS, CELL_CHARS = 2, 4, 14
STATEMENT_CHARS = 80
OUTCOME_CSS = {"pass": "o-pass", "fail": "o-fail", "straddle": "o-straddle", "short": "o-short"}
BORDERLINE = "borderline: a deciding check's CI still straddled its edge at the seed cap"


def opening(claim: ClaimResult) -> list[Block]:
    source = claim.source
    said = (f"— {citation(claim)}; tested as: {one_line(claim.statement, STATEMENT_CHARS)}",)
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
    return [Bullets(tuple((Badge(c.outcome, OUTCOME_CSS[c.outcome]), " " + c.sentence
                           + (" (partly)" if "partly" in c.roles else "")) for c in claim.checks))]


def metrics_table(claim: ClaimResult, metrics: list[Metric]) -> Table:
    """metric | source value | measured [95% CI] | predicted; a column of source values or of
    predictions that the claim has none of is left out."""
    sourced = any(m.name in claim.source_values for m in metrics)
    predicted = any(m.name in claim.predictions for m in metrics)
    rows: list[tuple[Line, ...]] = []
    for m in metrics:
        cells: list[Line] = [(Code(m.name),)]
        if sourced:
            cells.append((given(claim.source_values.get(m.name)),))
        cells.append((measured(m) + (f", {m.dropped} dropped" if m.dropped else ""),))
        if predicted:
            cells.append((fmt(claim.predictions.get(m.name)),))
        rows.append(tuple(cells))
    header = ("metric", *(["source value"] if sourced else []), "measured [95% CI]",
              *(["predicted"] if predicted else []))
    return Table(header, tuple(rows), (False,) + (True,) * (len(header) - 1))


def metric_line(claim: ClaimResult, m: Metric) -> tuple[str | Code, ...]:
    """A metric the checks do not read, on one line: its name, measurement, source value and
    prediction where it has them."""
    extra = [f"source {given(claim.source_values[m.name])}"] if m.name in claim.source_values \
        else []
    extra += [f"predicted {fmt(claim.predictions[m.name])}"] if m.name in claim.predictions \
        else []
    extra += [f"{m.dropped} dropped"] if m.dropped else []
    return (Code(m.name), " " + measured(m) + "".join(f"; {e}" for e in extra))


def excerpt(claim: ClaimResult) -> list[Block]:
    """The first rows of table.csv, a few columns, cells cut short."""
    where = Code(f"{claim.id}/{claim.table_file}")
    if not claim.table_path.is_file():
        return [Para(("No table was recorded (", where, " is missing).",))]
    with claim.table_path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if len(rows) < 2:
        return [Para(("The recorded table ", where, " is empty.",))]
    head, body = rows[0][:TABLE_COLUMNS], rows[1:]
    shown = body[:TABLE_ROWS]
    width = len(head)
    table = Table(tuple(one_line(h, CELL_CHARS) for h in head),
                  tuple(tuple((cell(r[i], CELL_CHARS) if i < len(r) else "",)
                              for i in range(width)) for r in shown), (False,) * width)
    cut = shown != body or width < len(rows[0])
    return [Para((where, f": {len(body)} rows × {len(rows[0])} columns"
                   + (f"; the first {len(shown)} rows, {width} columns:" if cut else ":"))),
            table]


def instead(claim: ClaimResult) -> str:
    """What holds instead, less the failed checks' sentences it repeats (listed above)."""
    text = claim.holds_instead
    for check in claim.checks:
        if not check.passed and check.sentence:
            text = text.replace(check.sentence, "")
    return "; ".join(p.strip() for p in text.split("; ") if p.strip())


def details(claim: ClaimResult, shown: list[Metric]) -> Details:
    blocks: list[Block] = []
    if claim.verdict not in ("reproduced", ANSWERED) and instead(claim):
        blocks.append(Para((Strong("What holds instead."), " " + instead(claim))))
    others = [m for m in claim.metrics if m not in shown]
    if others:
        blocks += [Para((Strong("Other metrics."),)), Bullets(tuple(metric_line(claim, m)
                                                                     for m in others))]
    blocks += excerpt(claim)
    members = ", ".join(f"{name} ×{len(keys)}" for name, keys in claim.runs.items())
    blocks.append(Para((Strong("Run."), f" {claim.profile}, {len(claim.seeds)} seed"
                        f"{'s' * (len(claim.seeds) != 1)}, {claim.steps:,} steps, "
                        f"{claim.device}, {duration(claim.duration_s)}"
                        + (f"; runs {members}" if members else "") + "; rules ",
                        Code(claim.rules_hash), ".")))
    return Details("More", tuple(blocks))


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

