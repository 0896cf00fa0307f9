"""Aggregation over seeds: the mean with a percentile-bootstrap confidence interval (as rliable
does), deterministic through a fixed resampling seed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RESAMPLES = 10_000
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class Estimate:
    mean: float
    ci_low: float
    ci_high: float
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.4g} [{self.ci_low:.4g}, {self.ci_high:.4g}]"


def mean_ci(values: Sequence[float] | np.ndarray, level: float = 0.95) -> Estimate:
    """Mean and bootstrap CI of the mean. One value gives a zero-width interval; non-finite
    values propagate (an inf loss is a result, not an error)."""
    data = np.asarray(values, dtype=np.float64).ravel()
    if data.size == 0:
        raise ValueError("mean_ci needs at least one value")
    mean = float(data.mean())
    if data.size == 1 or not np.isfinite(data).all():
        return Estimate(mean, mean, mean, int(data.size))
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    picks = rng.integers(0, data.size, size=(RESAMPLES, data.size))
    means = data[picks].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return Estimate(mean, float(low), float(high), int(data.size))
