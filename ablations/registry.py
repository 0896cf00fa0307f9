"""The claim record and the registry.

A claim is a declaration: what the source says (statement, citation), how to measure it (a
`measure` function over the declared training runs and experiment grid, whose metric names are
declared with `@measures`), how the verdict is decided (`Rules` of named checks), which metric is
the headline, one plain-language finding, and the figure. Everything a verdict depends on is
validated here, when the claim registers, so that a misspelt metric name fails
`python -m ablations list` and the fast tests instead of a run after an hour of training.
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib
import inspect
import json
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ablations.checks import Near
from ablations.measurement import Measurement
from ablations.verdicts import Questions, Rules, placeholders

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SOURCE_FILES = {
    "L": "003_b07a7f28d9e70e42.txt",  # the lecture transcript
    "N": "000_66fc4d1181fbaa5f.txt",  # the notebook on the bias term
}
FINDING_LIMIT = 200  # characters of the rendered finding


@dataclass(frozen=True)
class Source:
    """A citation: `doc` is "L" or "N", `lines` like "22-23" or "22-23, 41"."""

    doc: str
    lines: str

    @property
    def file(self) -> str:
        return SOURCE_FILES[self.doc]

    def line_numbers(self) -> list[int]:
        numbers: list[int] = []
        for part in self.lines.split(","):
            lo, _, hi = part.strip().partition("-")
            numbers.extend(range(int(lo), int(hi or lo) + 1))
        return numbers


def measures(**units: str) -> Callable[[Callable[..., Measurement]], Callable[..., Measurement]]:
    """Declare the metrics a measure function returns, name = unit. The runner refuses a
    measurement whose metrics are not exactly these."""

    def declare(fn: Callable[..., Measurement]) -> Callable[..., Measurement]:
        fn.metric_units = dict(units)  # type: ignore[attr-defined]
        return fn

    return declare


class ClaimError(ValueError):
    """A claim declaration that cannot work: the message names the claim and the fix."""


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str
    source: Source
    measure: Callable[..., Measurement]
    figure: Callable[[Measurement, Figure], None]
    headline: str
    finding: str
    rules: Rules | None = None  # None only for a row of questions
    questions: Questions | None = None
    grid: Mapping[str, Any] = field(default_factory=dict)  # experiment settings, pre-registered
    runs: Mapping[str, Any] = field(default_factory=dict)  # name -> experiments.RunTemplate

    @property
    def family(self) -> str:
        return self.id.split(".", 1)[0]

    @property
    def metric_units(self) -> dict[str, str]:
        return dict(getattr(self.measure, "metric_units", {}))

    @property
    def source_values(self) -> dict[str, float]:
        """The source's numbers, by the metric compared with them (from the Near checks)."""
        if self.rules is None:
            return {}
        return {c.metric: c.source().value for c in self.rules.checks() if isinstance(c, Near)}

    def declaration(self) -> dict[str, Any]:
        """Everything the verdict depends on besides the code and the data: checks, named
        tolerances, the grid and the runs. It goes into result.json and the cache key, so a
        rule changed after a run shows up as RULE CHANGED in review."""
        tolerances: dict[str, Any] = {}
        for check in self.rules.checks() if self.rules else []:
            tolerances.update({n: t.params() for n, t in check.tolerances().items()})
        return json.loads(json.dumps({
            "rules": self.rules.record() if self.rules else None,
            "questions": dict(self.questions.answers) if self.questions else None,
            "tolerances": dict(sorted(tolerances.items())),
            "grid": {k: _plain(v) for k, v in sorted(self.grid.items())},
            "runs": {k: _plain(v) for k, v in sorted(self.runs.items())},
            "headline": self.headline,
            "finding": self.finding,
        }, sort_keys=True, default=str))

    def rules_hash(self) -> str:
        text = json.dumps(self.declaration(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def validate(self) -> None:
        """Refuse a declaration whose names do not resolve."""
        def fail(message: str) -> None:
            raise ClaimError(f"claim {self.id}: {message}")

        declared = self.metric_units
        if not declared:
            fail("its measure function declares no metrics (decorate it with @measures)")
        odd = sorted(n for n in declared if not n or n.startswith("@"))
        if odd:
            fail(f"metric names may not be empty or start with '@': {odd}")
        if (self.rules is None) == (self.questions is None):
            fail("declare either rules (a claim) or questions (a row of questions)")
        named: dict[str, set[str]] = {"headline": {self.headline},
                                      "finding": placeholders(self.finding)}
        if self.rules is not None:
            checks = self.rules.checks()
            if not self.rules.reproduced:
                fail("Rules.reproduced is empty")
            for check in checks:
                try:
                    check.tolerances()
                except (KeyError, TypeError) as err:
                    fail(f"check {check.name!r}: {err}")
                named[f"check {check.name!r}"] = set(check.reads()) | set(
                    check.predictions_read())
            named["instead"] = placeholders(self.rules.instead)
            named["partly_means"] = placeholders(self.rules.partly_means)
        if self.questions is not None:
            for question, answer in self.questions.answers.items():
                named[f"answer to {question!r}"] = placeholders(answer)
        for where, names in named.items():
            unknown = sorted(names - set(declared))
            if unknown:
                fail(f"{where} names {', '.join(unknown)}, which the measure does not declare "
                     f"(declared: {', '.join(sorted(declared))})")
        parameters = inspect.signature(self.measure).parameters
        accepted = {n for n in parameters if n not in ("ctx", "runs")}
        if set(self.grid) != accepted:
            fail(f"the grid gives {sorted(self.grid)} but the measure takes {sorted(accepted)}")
        if bool(self.runs) != ("runs" in parameters):
            fail("declared runs and a 'runs' parameter of the measure go together")

    def check_measurement(self, m: Measurement) -> None:
        """The measurement holds exactly the declared metrics, in the declared units."""
        declared = self.metric_units
        missing, extra = set(declared) - set(m.metrics), set(m.metrics) - set(declared)
        if missing or extra:
            raise ClaimError(f"claim {self.id}: measure returned metrics missing "
                             f"{sorted(missing)} and undeclared {sorted(extra)}")
        for name, metric in m.metrics.items():
            if metric.unit != declared[name]:
                raise ClaimError(f"claim {self.id}: metric {name} has unit {metric.unit!r}, "
                                 f"declared {declared[name]!r}")
        unknown = set(m.predictions) - set(declared)
        if unknown:
            raise ClaimError(f"claim {self.id}: predictions of undeclared metrics "
                             f"{sorted(unknown)}")


def _plain(value: Any) -> Any:
    """Grid values and run templates as JSON-able data."""
    if hasattr(value, "describe"):
        return value.describe()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


REGISTRY: dict[str, Claim] = {}


def register(claim: Claim) -> Claim:
    if claim.id in REGISTRY:
        raise ClaimError(f"claim {claim.id} registered twice")
    claim.validate()
    REGISTRY[claim.id] = claim
    return claim


def load_all() -> dict[str, Claim]:
    """Import every module of ablations.claims (each registers its family) and return them."""
    import ablations.claims as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        importlib.import_module(f"{package.__name__}.{info.name}")
    return dict(sorted(REGISTRY.items()))


class UnknownClaimError(ValueError):
    pass


def select(patterns: list[str] | None) -> list[Claim]:
    """Claims whose ID matches any glob pattern (or is a family name); all when none given."""
    claims = load_all()
    if not patterns:
        return list(claims.values())
    chosen = [
        claim
        for claim_id, claim in claims.items()
        if any(fnmatch.fnmatchcase(claim_id, p) or claim.family == p for p in patterns)
    ]
    if not chosen:
        raise UnknownClaimError(
            f"no claim matches {', '.join(patterns)}; valid IDs: {', '.join(claims)}"
        )
    return chosen
