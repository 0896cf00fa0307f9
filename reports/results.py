"""Reading the result files that `python -m ablations run` writes (and nothing else).

`DIR/<id>/result.json` (schema 1, see ablations/results.py), `DIR/<id>/table.csv`,
`DIR/<id>/figure.png` and the optional `DIR/summary.json`. Every problem with them (a file that
is missing, not JSON, or lacks a field of the schema) is a `ResultError` whose message is one line
that names the file, so the commands can print it instead of a traceback.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULT_FILE = "result.json"
SUMMARY_FILE = "summary.json"
CLAIM_FILES = (RESULT_FILE, "table.csv", "figure.png")  # any of them marks a claim folder
SCHEMAS = (1,)
VERDICTS = ("reproduced", "partly reproduced", "not reproduced", "not evaluated")
NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}
# IDs name folders and figure files: letters, digits, '.', '_' and '-' only, so they are safe
# as file names, Markdown anchors and HTML ids.
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
SOURCE_ORDER = {"L": 0, "N": 1}  # the lecture first, then the notebook on the bias term


class ResultError(ValueError):
    """A result file that is missing or does not follow the schema; the message names it."""


@dataclass(frozen=True)
class Metric:
    name: str
    mean: float
    ci_low: float
    ci_high: float
    n: int
    unit: str = ""


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
    evidence: str
    holds_instead: str
    tolerance: str
    metrics: tuple[Metric, ...]
    source_values: Mapping[str, float]
    predictions: Mapping[str, float]
    profile: str
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
    profile_settings: str = ""  # the profile's numbers, e.g. "seeds 16, train_steps 200,000"

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
        """The summary table's metric: the first with a source value, else the first."""
        with_source = [m for m in self.metrics if m.name in self.source_values]
        candidates = with_source or list(self.metrics)
        return candidates[0] if candidates else None


@dataclass(frozen=True)
class ResultSet:
    root: Path
    claims: tuple[ClaimResult, ...]  # in reading order (see `reading_order`)
    summary: Mapping[str, Any] | None = field(default=None)

    def by_id(self) -> dict[str, ClaimResult]:
        return {c.id: c for c in self.claims}


def number(value: Any, where: str) -> float:
    """A JSON number, or one of the strings the writer uses for inf, -inf and nan."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ResultError(f"{where} is {value!r}, not a number")
    if isinstance(value, str):
        if value not in NON_FINITE:
            raise ResultError(f"{where} is {value!r}, not a number")
        return NON_FINITE[value]
    return float(value)


class _Reader:
    """Typed access to one decoded JSON object, with errors that name the file and field."""

    def __init__(self, path: Path, record: Any, prefix: str = "") -> None:
        if not isinstance(record, dict):
            raise ResultError(f"{path}: {'field ' + prefix if prefix else 'the file'} "
                              "is not a JSON object")
        self.path, self.record, self.prefix = path, record, prefix

    def _where(self, key: str) -> str:
        return f"{self.path}: field '{self.prefix}{key}'"

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        if key not in self.record:
            if default is not ...:
                return default
            raise ResultError(f"{self._where(key)} is missing")
        value = self.record[key]
        if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
            raise ResultError(f"{self._where(key)} has the wrong type ({type(value).__name__})")
        return value

    def number(self, key: str) -> float:
        if key not in self.record:
            raise ResultError(f"{self._where(key)} is missing")
        return number(self.record[key], self._where(key))

    def child(self, key: str) -> _Reader:
        return _Reader(self.path, self.get(key, dict), f"{self.prefix}{key}.")

    def numbers(self, key: str) -> dict[str, float]:
        child = self.child(key)
        return {name: child.number(name) for name in child.record}


def read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ResultError(f"{path}: missing") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ResultError(f"{path}: cannot be read ({err})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ResultError(f"{path}: not valid JSON ({err})") from None


def _plain_name(reader: _Reader, key: str, default: str) -> str:
    name = reader.get(key, str, default)
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise ResultError(f"{reader.path}: field 'files.{key}' must be a plain file name")
    return name


def read_claim(path: Path) -> ClaimResult:
    """Parse and check one result.json (its folder must be named by the claim's ID)."""
    r = _Reader(path, read_json(path))
    schema = r.get("schema", int)
    if schema not in SCHEMAS:
        raise ResultError(f"{path}: schema {schema} is not one this reader knows ({SCHEMAS})")
    claim_id = r.get("id", str)
    if not ID_PATTERN.fullmatch(claim_id):
        raise ResultError(f"{path}: id {claim_id!r} is not a valid claim ID")
    if claim_id != path.parent.name:
        raise ResultError(f"{path}: id {claim_id!r} does not match its folder "
                          f"{path.parent.name!r}")
    verdict = r.get("verdict", str)
    if verdict not in VERDICTS:
        raise ResultError(f"{path}: verdict {verdict!r} is not one of {', '.join(VERDICTS)}")
    source = r.child("source")
    metrics_reader = r.child("metrics")
    metrics = []
    for name in metrics_reader.record:
        m = metrics_reader.child(name)
        n = m.get("n", int)
        if n < 1:
            raise ResultError(f"{path}: field 'metrics.{name}.n' must be at least 1")
        metrics.append(Metric(name, m.number("mean"), m.number("ci_low"), m.number("ci_high"),
                              n, m.get("unit", str, "")))
    seeds = r.get("seeds", list)
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ResultError(f"{path}: field 'seeds' must be a list of whole numbers")
    versions = r.child("versions")
    files = r.child("files") if "files" in r.record else _Reader(path, {}, "files.")
    return ClaimResult(
        id=claim_id,
        statement=r.get("statement", str),
        source=Citation(source.get("doc", str), source.get("file", str),
                        source.get("lines", str), source.get("quote", str, "")),
        verdict=verdict,
        evidence=r.get("evidence", str),
        holds_instead=r.get("holds_instead", str, ""),
        tolerance=r.get("tolerance", str, ""),
        metrics=tuple(metrics),
        source_values=r.numbers("source_values"),
        predictions=r.numbers("predictions"),
        profile=r.get("profile", str),
        seeds=tuple(seeds),
        steps=r.get("steps", int, 0),
        device=r.get("device", str),
        duration_s=r.number("duration_s"),
        versions={k: str(v) for k, v in versions.record.items()},
        data_sha256=r.get("data_sha256", str),
        git_commit=r.get("git_commit", str, "unknown"),
        folder=path.parent,
        table_file=_plain_name(files, "table", "table.csv"),
        figure_file=_plain_name(files, "figure", "figure.png"),
        finished_at=r.get("finished_at", str, None),
        profile_settings=_settings_text(r.record.get("profile_settings")),
    )


def _settings_text(settings: object) -> str:
    """The profile's settings as one line (the name is the profile field already)."""
    if not isinstance(settings, dict):
        return ""
    return ", ".join(f"{key} {value:,}" if isinstance(value, int) else f"{key} {value}"
                     for key, value in settings.items() if key != "name")


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


def load_results(root: Path) -> ResultSet:
    """Every claim folder under root (a folder holding any of result.json, table.csv or
    figure.png, not hidden: the runner's staging folders start with a dot) must hold a readable
    result.json, and so must every claim that summary.json lists."""
    root = Path(root)
    if not root.is_dir():
        raise ResultError(f"{root}: no such results folder")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                     and any((p / name).exists() for name in CLAIM_FILES))
    summary = None
    if (root / SUMMARY_FILE).exists():
        summary = _Reader(root / SUMMARY_FILE, read_json(root / SUMMARY_FILE)).record
        listed = summary.get("claims", [])
        if not isinstance(listed, list):
            raise ResultError(f"{root / SUMMARY_FILE}: field 'claims' is not a list")
        for entry in listed:
            claim_id = entry.get("id") if isinstance(entry, dict) else None
            if not isinstance(claim_id, str) or not ID_PATTERN.fullmatch(claim_id):
                raise ResultError(f"{root / SUMMARY_FILE}: a claims entry has no valid 'id'")
            if not (root / claim_id / RESULT_FILE).exists():
                raise ResultError(f"{root / claim_id / RESULT_FILE}: missing (summary.json "
                                  "lists the claim)")
    if not folders:
        raise ResultError(f"{root}: no claim results (DIR/<id>/{RESULT_FILE}) in this folder")
    claims = [read_claim(folder / RESULT_FILE) for folder in folders]
    return ResultSet(root, tuple(reading_order(claims)), summary)
