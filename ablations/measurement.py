"""The one data contract between an experiment and everything after it (checks, report,
regression check): a metric is its samples over seeds, with the mean and a 95% percentile
bootstrap CI derived from them (as rliable does). Samples keep the seed order of the run, so two
metrics of one run can be paired seed by seed, and a rerun with the same seeds can be compared
sample by sample.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from makemore.stats import mean_ci

SCIENCE = "science"  # a quantity the claim is about: compared within its seed spread
NUMERICS = "numerics"  # rounding residues, timings, byte counts: compared only with their bound
KINDS = (SCIENCE, NUMERICS)


@dataclass(frozen=True)
class Metric:
    """Samples of one quantity, one per seed (or per independent replicate). A deterministic
    quantity (a closed form, a count) has one sample and a zero-width interval. `dropped` counts
    samples left out as non-finite (a diverged member) by `Metric.finite`."""

    samples: tuple[float, ...]
    unit: str = ""
    kind: str = SCIENCE
    dropped: int = 0

    def __post_init__(self) -> None:
        if not self.samples:
            raise ValueError("a metric needs at least one sample")
        if self.kind not in KINDS:
            raise ValueError(f"metric kind must be one of {KINDS}, got {self.kind!r}")

    @classmethod
    def of(cls, values: Iterable[float], unit: str = "", kind: str = SCIENCE) -> Metric:
        """Samples as given; a non-finite sample makes the mean non-finite (an inf loss is a
        result, not an error)."""
        return cls(tuple(float(v) for v in np.asarray(list(values), dtype=float).ravel()), unit,
                   kind)

    @classmethod
    def finite(cls, values: Iterable[float], unit: str = "", kind: str = SCIENCE) -> Metric:
        """The finite samples only (diverged members dropped and counted); NaN if none."""
        data = np.asarray(list(values), dtype=float).ravel()
        kept = data[np.isfinite(data)]
        samples = tuple(float(v) for v in kept) or (math.nan,)
        return cls(samples, unit, kind, dropped=int(data.size - kept.size))

    @classmethod
    def exact(cls, value: float, unit: str = "", kind: str = SCIENCE) -> Metric:
        """A deterministic quantity: one sample."""
        return cls((float(value),), unit, kind)

    @cached_property
    def _estimate(self) -> tuple[float, float, float]:
        estimate = mean_ci(self.samples)
        return estimate.mean, estimate.ci_low, estimate.ci_high

    @property
    def mean(self) -> float:
        return self._estimate[0]

    @property
    def ci_low(self) -> float:
        return self._estimate[1]

    @property
    def ci_high(self) -> float:
        return self._estimate[2]

    @property
    def n(self) -> int:
        return len(self.samples)

    @property
    def sd(self) -> float:
        """Sample standard deviation over the samples (0 for one sample)."""
        return float(np.std(self.samples, ddof=1)) if self.n > 1 else 0.0

    @property
    def is_exact(self) -> bool:
        return self.n == 1

    def text(self, digits: int = 4) -> str:
        """'2.107 [2.105, 2.108] nats (n=16)', or '3.296 nats' for an exact value."""
        unit = f" {self.unit}" if self.unit else ""
        if self.is_exact or self.ci_low == self.ci_high:
            return f"{fmt(self.mean, digits)}{unit}"
        return (f"{fmt(self.mean, digits)} [{fmt(self.ci_low, digits)}, "
                f"{fmt(self.ci_high, digits)}]{unit} (n={self.n})")

    def __str__(self) -> str:
        return self.text()

    def to_json(self) -> dict[str, Any]:
        return {
            "mean": json_float(self.mean),
            "ci_low": json_float(self.ci_low),
            "ci_high": json_float(self.ci_high),
            "n": self.n,
            "unit": self.unit,
            "kind": self.kind,
            "dropped": self.dropped,
            "samples": [json_float(v) for v in self.samples],
        }


def fmt(value: float, digits: int = 4) -> str:
    """A number for a sentence: large whole numbers with thousands separators, others to `digits`
    significant digits (trailing zeros kept, so 2.600 shows its precision), tiny or huge ones
    in scientific notation."""
    if not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    if value == int(value) and 100 <= abs(value) < 1e9:
        return f"{int(value):,}"
    if 1e-3 <= abs(value) < 1e5:
        return f"{value:#.{digits}g}".rstrip(".")
    return f"{value:.{digits - 1}e}"


def json_float(value: float) -> float | str:
    """JSON has no inf/nan: they are written as the strings "inf", "-inf", "nan"."""
    return value if math.isfinite(value) else str(value)


def paired(a: Metric, b: Metric) -> np.ndarray:
    """a - b seed by seed. Both must hold one sample per seed of the same run."""
    if a.n != b.n or a.dropped or b.dropped:
        raise ValueError(f"cannot pair metrics of {a.n} and {b.n} samples (dropped "
                         f"{a.dropped}, {b.dropped}): pair metrics of the same seeds only")
    return np.asarray(a.samples) - np.asarray(b.samples)


@dataclass
class Measurement:
    """What an experiment returns. `table` is tidy (one row per condition and seed); `frames`
    holds more tidy data for the figure (curves, sweeps); `predictions` are theory's values of
    declared metrics; `steps` is the length of the training run the results come from (0: no
    training), read by the checks that need the lecture's training length; `answers` is for a
    row of questions (bias.todo) only."""

    table: pd.DataFrame
    metrics: dict[str, Metric]
    predictions: dict[str, float] = field(default_factory=dict)
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    steps: int = 0
    answers: dict[str, str] = field(default_factory=dict)


def per_seed(frame: pd.DataFrame, value: str, where: Mapping[str, Any] | None = None,
             unit: str = "", by: str = "seed") -> Metric:
    """The metric of `value` over seeds, from a tidy table with one or more rows per seed: rows
    matching `where` (column == value), averaged within each seed first so that the samples
    are seeds, not rows."""
    rows = frame
    for column, wanted in (where or {}).items():
        rows = rows[np.isclose(rows[column], wanted)] if isinstance(wanted, float) else \
            rows[rows[column] == wanted]
    if rows.empty:
        raise ValueError(f"no rows of {value} where {dict(where or {})}")
    return Metric.of(rows.groupby(by, sort=False)[value].mean(), unit)
