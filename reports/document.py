"""The report as a small document model, built from the results alone.

`report(results, date)` returns a list of blocks (headings, paragraphs, tables, figures) that
`reports.markdown` and `reports.html` render; the content is decided once, here, so the two
formats cannot drift apart. Nothing here reads a clock: the same results (and date) give the
same document.
"""

from __future__ import annotations

import csv
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reports.results import VERDICTS, ClaimResult, Metric, ResultSet

TITLE = "Reproduction report: makemore part 3"
DOCS = {"L": "lecture transcript", "N": "notebook on the bias term"}
STATEMENT_CHARS = 110  # one-line statements in the summary table
TABLE_HEAD, TABLE_TAIL = 12, 4  # rows shown of a long table
TABLE_MAX_ROWS = TABLE_HEAD + TABLE_TAIL + 4  # up to this many, a table is shown whole
TABLE_MAX_COLUMNS = 12
CELL_CHARS = 60
DIGITS = 5  # significant digits of numbers in tables


# --- the model ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Code:
    text: str


@dataclass(frozen=True)
class Strong:
    text: str


@dataclass(frozen=True)
class Link:
    text: str
    target: str  # "#anchor" or a relative path


Inline = str | Code | Strong | Link
Line = tuple[Inline, ...]


@dataclass(frozen=True)
class Heading:
    level: int
    text: str
    anchor: str


@dataclass(frozen=True)
class Para:
    parts: Line


@dataclass(frozen=True)
class Quote:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[Line, ...]


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[Line, ...], ...]
    numeric: tuple[bool, ...]  # right-aligned columns
    sort_keys: tuple[tuple[float | None, ...], ...] | None = None  # per row and column (HTML)
    sortable: bool = False


@dataclass(frozen=True)
class Figure:
    path: Path  # the results' figure.png
    name: str  # its name under figures/
    alt: str


Block = Heading | Para | Quote | Bullets | Table | Figure


def slug(text: str) -> str:
    """The anchor a code-hosting site gives a heading: lower case, punctuation other than '-'
    and '_' dropped, spaces to '-' (GitHub's rule); HTML ids use the same, so links agree."""
    kept = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return kept.replace(" ", "-")


# --- numbers --------------------------------------------------------------------------------

def fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{DIGITS}g}"


def measured(metric: Metric | None, unit: bool = True) -> str:
    """mean [ci_low, ci_high] unit (n=...), or the bare value of a deterministic metric."""
    if metric is None:
        return "—"
    tail = f" {metric.unit}" if unit and metric.unit else ""
    if metric.n == 1 or metric.ci_low == metric.ci_high:
        return f"{fmt(metric.mean)}{tail}" + (f" (n={metric.n})" if metric.n > 1 else "")
    return f"{fmt(metric.mean)} [{fmt(metric.ci_low)}, {fmt(metric.ci_high)}]{tail} " \
           f"(n={metric.n})"


def duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return (f"{hours} h " if hours else "") + f"{minutes} min {rest:02d} s"


def one_line(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def citation(claim: ClaimResult) -> str:
    return f"{claim.source.doc}:{claim.source.lines}"


# --- the run header -------------------------------------------------------------------------

def agreed(values: list[str]) -> str:
    """The one value all claims share, or each value with its count of claims."""
    counts = Counter(values)
    if len(counts) == 1:
        return values[0]
    return "mixed: " + "; ".join(f"{v} ({n} claim{'s' * (n != 1)})"
                                 for v, n in sorted(counts.items()))


def seed_text(seeds: tuple[int, ...]) -> str:
    if not seeds:
        return "none"
    if len(seeds) > 2 and list(seeds) == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{len(seeds)} ({seeds[0]}…{seeds[-1]})"
    return f"{len(seeds)} ({', '.join(map(str, seeds))})"


def header(results: ResultSet, date: str | None) -> list[Block]:
    claims = results.claims

    def each(read: Callable[[ClaimResult], str]) -> str:
        return agreed([read(c) for c in claims])

    total = sum(c.duration_s for c in claims)
    time_text = f"{duration(total)} summed over the claims' own measurements"
    wall = (results.summary or {}).get("wall_s")
    if isinstance(wall, (int, float)) and not isinstance(wall, bool):
        time_text += f" (the last run of the ablations into this folder took {duration(wall)})"
    items: list[tuple[str, str]] = [
        ("Package version", each(lambda c: c.versions.get("package", "unknown"))),
        ("Git commit", each(lambda c: c.git_commit)),
        ("Python", each(lambda c: c.versions.get("python", "unknown"))),
        ("torch", each(lambda c: c.versions.get("torch", "unknown"))),
        ("Device", each(lambda c: c.device)),
        ("Profile", each(lambda c: c.profile)),
        ("Profile settings", each(lambda c: c.profile_settings or "not recorded")),
        ("Seeds", each(lambda c: seed_text(c.seeds))),
        ("Data sha256", each(lambda c: c.data_sha256)),
        ("Date", date or "not recorded in the results (pass --date to state one)"),
        ("Run time", time_text),
        ("Claims", str(len(claims))),
    ]
    return [Bullets(tuple((Strong(f"{k}:"), " " + v) for k, v in items))]


# --- the summary ----------------------------------------------------------------------------

SUMMARY_HEADER = ("ID", "claim", "source", "metric", "source value", "measured [95% CI]",
                  "predicted", "verdict")


def summary_table(claims: tuple[ClaimResult, ...], link_prefix: str = "") -> Table:
    rows, keys = [], []
    for claim in claims:
        head = claim.headline()
        name = head.name if head else None
        source = claim.source_values.get(name) if name else None
        predicted = claim.predictions.get(name) if name else None
        rows.append((
            (Link(claim.id, f"{link_prefix}#{slug(claim.id)}"),),
            (one_line(claim.statement, STATEMENT_CHARS),),
            (citation(claim),),
            (Code(name),) if name else ("—",),
            (fmt(source),),
            (measured(head),),
            (fmt(predicted),),
            (claim.verdict,),
        ))
        keys.append((None, None, None, None, source, head.mean if head else None, predicted,
                     None))
    return Table(SUMMARY_HEADER, tuple(rows), (False,) * 4 + (True,) * 3 + (False,),
                 tuple(keys), sortable=True)


def verdict_counts(claims: tuple[ClaimResult, ...]) -> Table:
    counts = Counter(c.verdict for c in claims)
    rows = tuple(((v,), (str(counts[v]),)) for v in VERDICTS)
    return Table(("verdict", "claims"), rows + ((("total",), (str(len(claims)),)),),
                 (False, True))


def summary(results: ResultSet, link_prefix: str = "") -> list[Block]:
    """The summary table and the verdict counts (the README carries these too)."""
    return [summary_table(results.claims, link_prefix), Para((Strong("Verdict counts."),)),
            verdict_counts(results.claims)]


# --- one claim ------------------------------------------------------------------------------

def values_table(claim: ClaimResult) -> Table:
    """Every metric with its source value and prediction, then any source value or prediction
    that names no metric."""
    names = [m.name for m in claim.metrics]
    names += [n for n in (*claim.source_values, *claim.predictions) if n not in names]
    rows = []
    for name in dict.fromkeys(names):
        metric = claim.metric(name)
        rows.append(((Code(name),), (metric.unit if metric else "",),
                     (fmt(claim.source_values.get(name)),), (measured(metric, unit=False),),
                     (fmt(claim.predictions.get(name)),)))
    return Table(("metric", "unit", "source", "measured [95% CI]", "predicted"), tuple(rows),
                 (False, False, True, True, True))


def cell(text: str) -> str:
    """A CSV cell for display: numbers to DIGITS significant digits, long text shortened."""
    try:
        value = float(text)
    except ValueError:
        return one_line(text, CELL_CHARS)
    if re.fullmatch(r"[+-]?\d+", text.strip()):
        return text.strip()
    return fmt(value)


def data_table(claim: ClaimResult) -> list[Block]:
    path = claim.table_path
    if not path.is_file():
        return [Para(("No table was recorded (", Code(f"{claim.id}/{claim.table_file}"),
                      " is missing).",))]
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return [Para(("The recorded table is empty.",))]
    head, body = rows[0], rows[1:]
    notes = []
    if len(head) > TABLE_MAX_COLUMNS:
        notes.append(f"the first {TABLE_MAX_COLUMNS} of {len(head)} columns")
    shown: list[list[str]] = body
    if len(body) > TABLE_MAX_ROWS:
        skipped = len(body) - TABLE_HEAD - TABLE_TAIL
        gap = [f"… {skipped} rows …"] + [""] * (len(head) - 1)
        shown = body[:TABLE_HEAD] + [gap] + body[-TABLE_TAIL:]
        notes.append(f"the first {TABLE_HEAD} and last {TABLE_TAIL} of {len(body)} rows")
    width = min(len(head), TABLE_MAX_COLUMNS)
    numeric = tuple(all(_is_number(r[i]) for r in body if i < len(r) and r[i]) and bool(body)
                    for i in range(width))
    table = Table(tuple(one_line(h, CELL_CHARS) for h in head[:width]),
                  tuple(tuple((cell(r[i]) if i < len(r) else "",) for i in range(width))
                        for r in shown), numeric)
    note = (f"Table: {len(body)} row{'s' * (len(body) != 1)}; numbers to {DIGITS} "
            "significant digits" + (f"; showing {' and '.join(notes)}" if notes else "")
            + ". The full table is ")
    return [Para((note, Code(f"{claim.id}/{claim.table_file}"), " in the results folder.")),
            table]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def claim_section(claim: ClaimResult) -> list[Block]:
    source = claim.source
    blocks: list[Block] = [
        Heading(3, claim.id, slug(claim.id)),
        Para((Strong("Claim."), " " + claim.statement)),
        Para((Strong("Verdict:"), " ", Strong(claim.verdict))),
        Para((Strong("Source."), f" {citation(claim)}: {DOCS.get(source.doc, source.doc)} ",
              Code(source.file), f", lines {source.lines}.")),
        Quote(source.quote) if source.quote else
        Para(("(No quote recorded: the sources were not beside the checkout when it ran.)",)),
        values_table(claim),
        Para((Strong("Evidence."), " " + claim.evidence)),
    ]
    if claim.tolerance:
        blocks.append(Para((Strong("Tolerance."), " " + claim.tolerance)))
    if claim.verdict != "reproduced":
        blocks.append(Para((Strong("What holds instead."),
                            " " + (claim.holds_instead or "(not stated in the result)"))))
    blocks.append(Para((Strong("Run."), f" profile {claim.profile}, "
                        f"{len(claim.seeds)} seed{'s' * (len(claim.seeds) != 1)}, "
                        f"{claim.steps:,} training steps, {claim.device}, "
                        f"{duration(claim.duration_s)}.")))
    blocks += data_table(claim)
    if claim.figure_path.is_file():
        blocks.append(Figure(claim.figure_path, f"{claim.id}.png", f"Figure of {claim.id}"))
    else:
        blocks.append(Para(("No figure was recorded (", Code(f"{claim.id}/{claim.figure_file}"),
                            " is missing).",)))
    return blocks


def report(results: ResultSet, date: str | None) -> list[Block]:
    blocks: list[Block] = [Heading(1, TITLE, slug(TITLE))]
    blocks += header(results, date)
    blocks += [Heading(2, "Summary", "summary"),
               Para(("Each claim's headline metric: the first with a source value, else the "
                     "first. Verdicts are computed from the measurements by each claim's "
                     "judge.",))]
    blocks += summary(results)
    family = None
    for claim in results.claims:
        if claim.family != family:
            family = claim.family
            blocks.append(Heading(2, f"Family {family}", slug(f"Family {family}")))
        blocks += claim_section(claim)
    return blocks
