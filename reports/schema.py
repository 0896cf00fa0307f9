"""Reading the result files that `python -m ablations run` writes (and nothing else).

`DIR/<id>/result.json` (schema 2), `DIR/<id>/table.csv`, `DIR/<id>/figure.png` and the optional
`DIR/summary.json`. Every problem with them (a file that is missing, not JSON, of another schema,
or lacking a field) is a `ResultError` whose message is one line that names the file, so the
commands can print it instead of a traceback.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from reports.results import (
    KINDS,
    OUTCOMES,
    VERDICTS,
    Check,
    Citation,
    ClaimResult,
    Metric,
    ResultSet,
    reading_order,
)

RESULT_FILE = "result.json"
SUMMARY_FILE = "summary.json"
CLAIM_FILES = (RESULT_FILE, "table.csv", "figure.png")  # any of them marks a claim folder
SCHEMA = 2
NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}
# IDs name folders and figure files: letters, digits, '.', '_' and '-' only, so they are safe
# as file names, Markdown anchors and HTML ids.
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class ResultError(ValueError):
    """A result file that is missing or does not follow the schema; the message names it."""


def number(value: Any, where: str) -> float:
    """A JSON number, or one of the strings the writer uses for inf, -inf and nan."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
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
            raise ResultError(f"{path}: {'field ' + prefix.rstrip('.') if prefix else 'the file'}"
                              " is not a JSON object")
        self.path, self.record, self.prefix = path, record, prefix

    def where(self, key: str) -> str:
        return f"{self.path}: field '{self.prefix}{key}'"

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        if key not in self.record:
            if default is not ...:
                return default
            raise ResultError(f"{self.where(key)} is missing")
        value = self.record[key]
        if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
            raise ResultError(f"{self.where(key)} has the wrong type ({type(value).__name__})")
        return value

    def number(self, key: str) -> float:
        if key not in self.record:
            raise ResultError(f"{self.where(key)} is missing")
        return number(self.record[key], self.where(key))

    def child(self, key: str) -> _Reader:
        return _Reader(self.path, self.get(key, dict), f"{self.prefix}{key}.")

    def numbers(self, key: str) -> dict[str, float]:
        child = self.child(key)
        return {name: child.number(name) for name in child.record}

    def strings(self, key: str) -> tuple[str, ...]:
        values = self.get(key, list)
        if not all(isinstance(v, str) for v in values):
            raise ResultError(f"{self.where(key)} must be a list of strings")
        return tuple(values)

    def choice(self, key: str, allowed: tuple[str, ...]) -> str:
        value = self.get(key, str)
        if value not in allowed:
            raise ResultError(f"{self.where(key)} is {value!r}, not one of {', '.join(allowed)}")
        return value


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


def _metric(r: _Reader, name: str) -> Metric:
    m = r.child(name)
    n = m.get("n", int)
    if n < 1:
        raise ResultError(f"{m.where('n')} must be at least 1")
    samples = m.get("samples", list)
    if len(samples) != n:
        raise ResultError(f"{m.where('samples')} holds {len(samples)} values, not n = {n}")
    values = tuple(number(v, m.where("samples")) for v in samples)
    return Metric(name, m.number("mean"), m.number("ci_low"), m.number("ci_high"), n,
                  m.get("unit", str), m.choice("kind", KINDS), m.get("dropped", int), values)


def _check(path: Path, item: Any, index: int) -> Check:
    c = _Reader(path, item, f"checks[{index}].")
    return Check(c.get("name", str), c.get("kind", str), c.strings("metrics"), c.get("rule", str),
                 c.strings("roles"), c.choice("outcome", OUTCOMES), c.get("sentence", str))


def _plain_name(reader: _Reader, key: str) -> str:
    name = reader.get(key, str)
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise ResultError(f"{reader.where(key)} must be a plain file name")
    return name


def _schema(path: Path, r: _Reader) -> None:
    schema = r.record.get("schema")
    if schema != SCHEMA:
        raise ResultError(f"{path}: schema {schema!r}, but this reader reads schema {SCHEMA} "
                          "only (regenerate the results with `python -m ablations run`)")


def read_claim(path: Path) -> ClaimResult:
    """Parse and check one result.json (its folder must be named by the claim's ID)."""
    r = _Reader(path, read_json(path))
    _schema(path, r)
    claim_id = r.get("id", str)
    if not ID_PATTERN.fullmatch(claim_id):
        raise ResultError(f"{path}: id {claim_id!r} is not a valid claim ID")
    if claim_id != path.parent.name:
        raise ResultError(f"{path}: id {claim_id!r} does not match its folder "
                          f"{path.parent.name!r}")
    source, headline, files = r.child("source"), r.child("headline"), r.child("files")
    metrics = r.child("metrics")
    seeds = r.get("seeds", list)
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ResultError(f"{r.where('seeds')} must be a list of whole numbers")
    runs = r.child("runs")
    answers = r.child("answers")
    head_value = headline.record.get("source_value")
    return ClaimResult(
        id=claim_id,
        statement=r.get("statement", str),
        source=Citation(source.get("doc", str), source.get("file", str),
                        source.get("lines", str), source.get("quote", str)),
        verdict=r.choice("verdict", VERDICTS),
        borderline=r.get("borderline", bool),
        finding=r.get("finding", str),
        headline_metric=headline.get("metric", str),
        headline_source_value=None if head_value is None else headline.number("source_value"),
        checks=tuple(_check(path, item, i) for i, item in enumerate(r.get("checks", list))),
        holds_instead=r.get("holds_instead", str),
        answers={q: answers.get(q, str) for q in answers.record},
        metrics=tuple(_metric(metrics, name) for name in metrics.record),
        source_values=r.numbers("source_values"),
        predictions=r.numbers("predictions"),
        declaration={key: r.record.get(key) for key in ("rules", "tolerances", "grid")},
        rules_hash=r.get("rules_hash", str),
        runs={name: runs.strings(name) for name in runs.record},
        profile=r.get("profile", str),
        profile_settings=r.get("profile_settings", dict),
        seeds=tuple(seeds),
        steps=r.get("steps", int),
        device=r.get("device", str),
        duration_s=r.number("duration_s"),
        versions={k: str(v) for k, v in r.child("versions").record.items()},
        data_sha256=r.get("data_sha256", str),
        git_commit=r.get("git_commit", str),
        folder=path.parent,
        table_file=_plain_name(files, "table"),
        figure_file=_plain_name(files, "figure"),
        finished_at=r.get("finished_at", str, None),
    )


def _check_summary(root: Path) -> dict[str, Any] | None:
    path = root / SUMMARY_FILE
    if not path.exists():
        return None
    summary = _Reader(path, read_json(path)).record
    listed = summary.get("claims", [])
    if not isinstance(listed, list):
        raise ResultError(f"{path}: field 'claims' is not a list")
    for entry in listed:
        claim_id = entry.get("id") if isinstance(entry, dict) else None
        if not isinstance(claim_id, str) or not ID_PATTERN.fullmatch(claim_id):
            raise ResultError(f"{path}: a claims entry has no valid 'id'")
        if not (root / claim_id / RESULT_FILE).exists():
            raise ResultError(f"{root / claim_id / RESULT_FILE}: missing (summary.json "
                              "lists the claim)")
    return summary


def load_results(root: Path) -> ResultSet:
    """Every claim folder under root (a folder holding any of result.json, table.csv or
    figure.png, not hidden: the runner's staging folders start with a dot) must hold a readable
    result.json, and so must every claim that summary.json lists."""
    root = Path(root)
    if not root.is_dir():
        raise ResultError(f"{root}: no such results folder")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                     and any((p / name).exists() for name in CLAIM_FILES))
    summary = _check_summary(root)
    if not folders:
        raise ResultError(f"{root}: no claim results (DIR/<id>/{RESULT_FILE}) in this folder")
    claims = [read_claim(folder / RESULT_FILE) for folder in folders]
    return ResultSet(root, tuple(reading_order(claims)), summary)
