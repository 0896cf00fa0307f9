"""What the result files say, as plain data: one `ClaimResult` per `DIR/<id>/result.json`
(schema 2, written by ablations/results.py `result_record`), gathered in a `ResultSet` in the
order the sources discuss the claims. `reports.schema` reads the files into these."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

JUDGED = ("reproduced", "partly reproduced", "not reproduced", "not evaluated")
ANSWERED = "answered"  # a row of questions: measured, not judged, not counted among verdicts
VERDICTS = (*JUDGED, ANSWERED)
SCIENCE, NUMERICS = "science", "numerics"
KINDS = (SCIENCE, NUMERICS)
OUTCOMES = ("pass", "fail", "straddle", "short")
SOURCE_ORDER = {"L": 0, "N": 1}  # the lecture first, then the notebook on the bias term


@dataclass(frozen=True)
class Metric:
    """Samples over seeds (in the order of the claim's seeds) with their mean and 95% bootstrap
    CI. `kind` says how a regression check compares it: "science" within its seed spread,
    "numerics" (rounding residues, timings) only against the bound its check states."""

    name: str
    mean: float
    ci_low: float
    ci_high: float
    n: int
    unit: str = ""
    kind: str = SCIENCE
    dropped: int = 0
    samples: tuple[float, ...] = ()


@dataclass(frozen=True)
class Check:
    """One declared check and how it came out."""

    name: str
    kind: str
    metrics: tuple[str, ...]
    rule: str
    roles: tuple[str, ...]  # "reproduced", "partly": the verdicts that need it
    outcome: str  # pass, fail, straddle, short
    sentence: str

    @property
    def passed(self) -> bool:
        return self.outcome == "pass"


@dataclass(frozen=True)
class Citation:
    doc: str
    file: str
    lines: str
    quote: str

    def first_line(self) -> int:
        match = re.match(r"\s*(\d+)", self.lines)
        return int(match.group(1)) if match else 0


@dataclass(frozen=True)
class ClaimResult:
    id: str
    statement: str
    source: Citation
    verdict: str
    borderline: bool
    finding: str
    headline_metric: str
    headline_source_value: float | None
    checks: tuple[Check, ...]
    holds_instead: str
    answers: Mapping[str, str]
    metrics: tuple[Metric, ...]
    source_values: Mapping[str, float]
    predictions: Mapping[str, float]
    declaration: Mapping[str, Any]  # the pre-registered rules, tolerances and grid
    rules_hash: str
    runs: Mapping[str, tuple[str, ...]]  # run template -> member run keys
    profile: str
    profile_settings: Mapping[str, Any]
    seeds: tuple[int, ...]
    steps: int
    device: str
    duration_s: float
    versions: Mapping[str, str]
    data_sha256: str
    git_commit: str
    folder: Path
    table_file: str
    figure_file: str
    finished_at: str | None = None  # when the runner finished this claim (UTC)

    @property
    def family(self) -> str:
        return self.id.split(".", 1)[0]

    @property
    def table_path(self) -> Path:
        return self.folder / self.table_file

    @property
    def figure_path(self) -> Path:
        return self.folder / self.figure_file

    def metric(self, name: str) -> Metric | None:
        return next((m for m in self.metrics if m.name == name), None)

    def headline(self) -> Metric | None:
        """The metric the claim declares as its headline (None if it recorded no such metric)."""
        return self.metric(self.headline_metric)

    def checked_metrics(self) -> list[Metric]:
        """The metrics the checks read, in the order the checks read them."""
        names = dict.fromkeys(n for c in self.checks for n in c.metrics)
        return [m for m in (self.metric(n) for n in names) if m is not None]


@dataclass(frozen=True)
class ResultSet:
    root: Path
    claims: tuple[ClaimResult, ...]  # in reading order (see `reading_order`)
    summary: Mapping[str, Any] | None = field(default=None)

    def by_id(self) -> dict[str, ClaimResult]:
        return {c.id: c for c in self.claims}


def reading_order(claims: list[ClaimResult]) -> list[ClaimResult]:
    """The report reads like the sources: a family where its claims are discussed (the median of
    their first cited lines, so one early aside does not move it), the lecture before the
    notebook; within a family, claims by first cited line. Ties fall back to the ID."""

    def position(claim: ClaimResult) -> tuple[int, int, str]:
        return (SOURCE_ORDER.get(claim.source.doc, len(SOURCE_ORDER)), claim.source.first_line(),
                claim.id)

    members: dict[str, list[tuple[int, int, str]]] = {}
    for claim in claims:
        members.setdefault(claim.family, []).append(position(claim))
    place = {family: sorted(p)[(len(p) - 1) // 2][:2] + (family,)
             for family, p in members.items()}
    return sorted(claims, key=lambda c: (place[c.family], position(c)))
