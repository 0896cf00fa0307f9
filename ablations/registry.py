"""The claim record and the registry.

A claim is a declarative record: what the source says (statement, citation, source values), how
to measure it (`measure`, returning a Measurement with a tidy table and metrics over seeds), how
to judge it (`judge`, code over the measurements that returns a Judgement) and how to draw it
(`plot`). Claim modules in ablations/claims/ hold only what is particular to their family; one
runner and one result writer serve them all.
"""

from __future__ import annotations

import enum
import fnmatch
import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from makemore.stats import Estimate, mean_ci

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ablations.context import Context

SOURCE_FILES = {
    "L": "003_b07a7f28d9e70e42.txt",  # the lecture transcript
    "N": "000_66fc4d1181fbaa5f.txt",  # the notebook on the bias term
}


class Verdict(enum.StrEnum):
    REPRODUCED = "reproduced"
    PARTLY = "partly reproduced"
    NOT_REPRODUCED = "not reproduced"
    NOT_EVALUATED = "not evaluated"  # the profile's run cannot support the claim; says why


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


@dataclass(frozen=True)
class Metric:
    mean: float
    ci_low: float
    ci_high: float
    n: int
    unit: str = ""

    @classmethod
    def of(cls, values: Any, unit: str = "") -> Metric:
        """Mean and 95% bootstrap CI over seeds (or whatever the values are samples of)."""
        estimate = mean_ci(list(values))
        return cls(estimate.mean, estimate.ci_low, estimate.ci_high, estimate.n, unit)

    @classmethod
    def exact(cls, value: float, unit: str = "") -> Metric:
        """A deterministic quantity (a count, a closed form): zero-width interval, n = 1."""
        return cls(float(value), float(value), float(value), 1, unit)

    @property
    def estimate(self) -> Estimate:
        return Estimate(self.mean, self.ci_low, self.ci_high, self.n)

    def __str__(self) -> str:
        if self.n == 1 or self.ci_low == self.ci_high:
            return f"{self.mean:.4g}{(' ' + self.unit) if self.unit else ''}"
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.mean:.4g} [{self.ci_low:.4g}, {self.ci_high:.4g}]{unit} over {self.n}"


@dataclass
class Measurement:
    """What an experiment returns. `table` is tidy (one row per condition and seed, or per
    condition with mean and CI); `frames` holds extra tidy data for the plot (curves, sweeps)."""

    table: pd.DataFrame
    metrics: dict[str, Metric]
    predictions: dict[str, float] = field(default_factory=dict)
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    steps: int = 0  # the longest training run behind the claim (0: no training)


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    evidence: str  # generated from the numbers
    holds_instead: str = ""  # for any verdict but reproduced: what the measurement shows
    tolerance: str = ""  # one line: why the rule's tolerance is what it is


@dataclass(frozen=True)
class Claim:
    id: str
    statement: str
    source: Source
    measure: Callable[[Context], Measurement]
    judge: Callable[[Measurement, Context], Judgement]
    plot: Callable[[Measurement, Figure], None]
    source_values: Mapping[str, float] = field(default_factory=dict)

    @property
    def family(self) -> str:
        return self.id.split(".", 1)[0]


REGISTRY: dict[str, Claim] = {}


def register(claim: Claim) -> Claim:
    if claim.id in REGISTRY:
        raise ValueError(f"claim {claim.id} registered twice")
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
