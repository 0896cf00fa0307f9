"""Small building blocks for verdict rules. A rule is code over measured Metrics; these helpers
keep the evidence sentences uniform ("step-0 loss 27.9 [27.1, 28.6] over 16; source: 27")."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ablations.registry import Judgement, Metric, Verdict


def overlaps(metric: Metric, low: float, high: float) -> bool:
    """The metric's CI meets the band [low, high]."""
    return metric.ci_high >= low and metric.ci_low <= high


def within(metric: Metric, target: float, rel: float = 0.0, abs_tol: float = 0.0) -> bool:
    """The metric's CI meets target +- max(rel * |target|, abs_tol)."""
    band = max(rel * abs(target), abs_tol)
    return overlaps(metric, target - band, target + band)


def says(name: str, metric: Metric, source: float | str | None = None) -> str:
    text = f"{name} {metric}"
    return text if source is None else f"{text}; source: {source}"


def paired_difference(a: ArrayLike, b: ArrayLike, unit: str = "") -> Metric:
    """a - b seed by seed (same seeds in both conditions), with its bootstrap CI."""
    return Metric.of(np.asarray(a, dtype=float) - np.asarray(b, dtype=float), unit)


def not_evaluated(reason: str, evidence: str = "") -> Judgement:
    return Judgement(Verdict.NOT_EVALUATED, evidence, holds_instead=reason)
