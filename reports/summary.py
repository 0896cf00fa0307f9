"""The top of the report: how the results were made (the header) and one row per claim with its
declared headline metric beside the source value it is compared with (the summary), then the
verdict counts. The README carries the summary and the counts too."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from reports.blocks import (
    Badge,
    Block,
    Bullets,
    Code,
    Figure,
    Link,
    Para,
    RowMeta,
    Strong,
    Table,
    slug,
    verdict_css,
)
from reports.results import ANSWERED, JUDGED, ClaimResult, ResultSet
from reports.text import citation, duration, given, measured, one_line, setting

STATEMENT_CHARS = 80  # one-line statements in the summary table
DOCS = {"L": "the lecture transcript", "N": "the notebook on the bias term"}


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


def settings_text(claim: ClaimResult) -> str:
    """The profile's numbers on one line (its name is the profile already)."""
    return ", ".join(f"{k} {setting(v)}"
                     for k, v in claim.profile_settings.items() if k != "name") or "not recorded"


def header(results: ResultSet, date: str | None) -> list[Block]:
    claims = results.claims

    def each(read: Callable[[ClaimResult], str]) -> str:
        return agreed([read(c) for c in claims])

    time_text = f"{duration(sum(c.duration_s for c in claims))} summed over the claims"
    wall = (results.summary or {}).get("wall_s")
    if isinstance(wall, int | float) and not isinstance(wall, bool):
        time_text += f" (the last `ablations run` into this folder took {duration(wall)})"
    items: list[tuple[str, str]] = [
        ("Package version", each(lambda c: c.versions.get("package", "unknown"))),
        ("Git commit", each(lambda c: c.git_commit)),
        ("Python", each(lambda c: c.versions.get("python", "unknown"))),
        ("torch", each(lambda c: c.versions.get("torch", "unknown"))),
        ("Device", each(lambda c: c.device)),
        ("Profile", each(lambda c: f"{c.profile} ({settings_text(c)})")),
        ("Seeds", each(lambda c: seed_text(c.seeds))),
        ("Sources", "; ".join(sorted({f"{c.source.doc} = {DOCS.get(c.source.doc, c.source.doc)} "
                                      f"({c.source.file})" for c in claims}))),
        ("Data sha256", each(lambda c: c.data_sha256)),
        ("Date", date or "not recorded in the results (pass --date to state one)"),
        ("Run time", time_text),
        ("Uncertainty", "every measured value is the mean over seeds with its 95% percentile "
                        "bootstrap CI and number of samples: mean [low, high] (n=…)"),
    ]
    return [Bullets(tuple((Strong(f"{k}:"), " " + v) for k, v in items))]


SUMMARY_HEADER = ("ID", "claim", "source", "headline metric", "source value",
                  "measured [95% CI]", "verdict", "borderline")


def meta(claim: ClaimResult) -> RowMeta:
    figure = Figure(claim.figure_path, f"{claim.id}.png", claim.id) \
        if claim.figure_path.is_file() else None
    return RowMeta(slug(claim.id), claim.verdict, claim.family, claim.borderline, figure)


def summary_table(claims: tuple[ClaimResult, ...], link_prefix: str = "") -> Table:
    rows, keys = [], []
    for claim in claims:
        head = claim.headline()
        rows.append((
            (Link(claim.id, f"{link_prefix}#{slug(claim.id)}"),),
            (one_line(claim.statement, STATEMENT_CHARS),),
            (citation(claim),),
            (Code(claim.headline_metric),),
            (given(claim.headline_source_value),),
            (measured(head),),
            (Badge(claim.verdict, verdict_css(claim.verdict)),),
            ("yes" if claim.borderline else "no",),
        ))
        keys.append((None, None, None, None, claim.headline_source_value,
                     head.mean if head else None, None, None))
    return Table(SUMMARY_HEADER, tuple(rows), (False,) * 4 + (True,) * 2 + (False,) * 2,
                 tuple(keys), tuple(meta(c) for c in claims))


def counts(claims: tuple[ClaimResult, ...]) -> list[Block]:
    """The judged verdicts with their total; rows of questions ("answered") apart, since they
    carry no verdict; how many verdicts are borderline."""
    tally = Counter(c.verdict for c in claims)
    judged = sum(tally[v] for v in JUDGED)
    rows = tuple(((Badge(v, verdict_css(v)),), (str(tally[v]),)) for v in JUDGED)
    table = Table(("verdict", "claims"), rows + ((("judged claims",), (str(judged),)),),
                  (False, True))
    borderline = sum(c.borderline for c in claims)
    return [Para((Strong("Verdict counts."), f" {judged} judged claims, {borderline} of them "
                  "borderline (a deciding check's CI still straddled its edge at the seed cap).")),
            table,
            Para((f"Answered, not judged: {tally[ANSWERED]} row{'s' * (tally[ANSWERED] != 1)} "
                  "of questions (measured and answered, no verdict).",))]


def summary(results: ResultSet, link_prefix: str = "") -> list[Block]:
    """The summary table and the verdict counts (the README carries these too)."""
    return [summary_table(results.claims, link_prefix), *counts(results.claims)]
