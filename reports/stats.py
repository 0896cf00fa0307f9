"""How far a metric may move before the regression check calls it a regression: two rules, for
two situations (reports/README.md states them with their numbers).

Same-seed (same seeds, same build): the run repeats the baseline's computation, so each sample
is compared with the baseline's sample of the same seed. What may differ is rounding only; a
code change that moves a metric is the signal. Allowed per sample:
    SAME_SEED_RELATIVE * max(|b_i|, |n_i|) + SAME_SEED_SPREAD * s + ABSOLUTE_FLOOR
- 1e-5 relative is about 84 float32 ulps (eps 1.19e-7). Measured: rounding-level noise put on
  every parameter at every one of 4,000 training steps of the MLP moved each seed's trained val
  loss by at most 1 float32 ulp (1.0e-7 relative; 6e-5 of the seed SD), so the margin is ~100x.
- 1% of the seed SD s (pooled over both sides) covers metrics formed by cancellation (a mean
  near 0 of terms near 1), whose rounding is relative to the terms, not to the value.

Seed-spread (other seeds, another build: versions, device, data or profile differ): the new
mean could come from the same distribution as the baseline's. Pooled two-sample t on the
samples' own SDs, critical value t_df(1 - 1e-5) for a family-wise false-alarm rate of 1% over
500 metrics (Bonferroni): 12.0 at 4 + 4 seeds, 5.05 at 16 + 16, 4.26 for many. Allowed:
    t * s_p * sqrt(1/n_b + 1/n_n) + RELATIVE_FLOOR * max(|mean_b|, |mean_n|) + ABSOLUTE_FLOOR.
The floor is all that is left for deterministic metrics (one sample, or all samples equal).

Non-finite values must match exactly in both rules (an inf loss is a result).
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Sequence

from reports.results import Metric

FAMILY_ALPHA = 0.01  # chance of at least one false alarm over the whole check
METRIC_BUDGET = 500  # metrics the family-wise rate is spread over (67 claims x a few metrics)
ALPHA = FAMILY_ALPHA / METRIC_BUDGET  # per metric, two-sided
MAX_DF = 1000
RELATIVE_FLOOR = 1e-6
ABSOLUTE_FLOOR = 1e-9
SAME_SEED_RELATIVE = 1e-5
SAME_SEED_SPREAD = 0.01


def student_two_sided(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with whole df, by the closed forms of Abramowitz & Stegun
    26.7.3-4 (finite sums in cos(theta)^2, theta = atan(t / sqrt(df)))."""
    theta = math.atan(t / math.sqrt(df))
    c2, s = math.cos(theta) ** 2, math.sin(theta)
    if df % 2 == 0:
        term = total = 1.0
        for j in range(1, df // 2):
            term *= c2 * (2 * j - 1) / (2 * j)
            total += term
        return s * total
    if df == 1:
        return 2 * theta / math.pi
    term = total = 1.0
    for j in range(1, (df - 1) // 2):
        term *= c2 * (2 * j) / (2 * j + 1)
        total += term
    return 2 / math.pi * (theta + s * math.cos(theta) * total)


@functools.cache
def student_critical(alpha: float, df: int) -> float:
    """t with P(|T| > t) = alpha (bisection on the exact distribution function)."""
    df = min(df, MAX_DF)
    low, high = 0.0, 1.0
    while 1 - student_two_sided(high, df) > alpha:
        low, high = high, high * 2
    for _ in range(100):
        mid = (low + high) / 2
        if 1 - student_two_sided(mid, df) > alpha:
            low = mid
        else:
            high = mid
    return high


def sample_sd(samples: Sequence[float]) -> float:
    """The samples' SD (n - 1); 0 for one sample or a non-finite one (nothing to pool)."""
    if len(samples) < 2 or not all(math.isfinite(v) for v in samples):
        return 0.0
    return statistics.stdev(samples)


def same_non_finite(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def spread_allowed(base: Metric, new: Metric, alpha: float = ALPHA) -> float:
    """How far the new mean may lie from the baseline's under "nothing changed"."""
    floor = RELATIVE_FLOOR * max(abs(base.mean), abs(new.mean)) + ABSOLUTE_FLOOR
    df = (base.n - 1) + (new.n - 1)
    pooled = (base.n - 1) * sample_sd(base.samples) ** 2 + (new.n - 1) * sample_sd(
        new.samples) ** 2
    if df == 0 or pooled == 0:
        return floor
    se = math.sqrt(pooled / df) * math.sqrt(1 / base.n + 1 / new.n)
    return student_critical(alpha, df) * se + floor


def within_spread(base: Metric, new: Metric, alpha: float = ALPHA) -> bool:
    if not (math.isfinite(base.mean) and math.isfinite(new.mean)):
        return same_non_finite(base.mean, new.mean)
    return abs(new.mean - base.mean) <= spread_allowed(base, new, alpha)


def same_seed_allowed(base: Metric, new: Metric) -> list[float]:
    """The allowed deviation of each sample, seed by seed (both hold one sample per seed)."""
    spread = math.hypot(sample_sd(base.samples), sample_sd(new.samples)) / math.sqrt(2)
    return [SAME_SEED_RELATIVE * max(abs(b), abs(n)) + SAME_SEED_SPREAD * spread
            + ABSOLUTE_FLOOR for b, n in zip(base.samples, new.samples, strict=True)]


def within_same_seed(base: Metric, new: Metric) -> bool:
    for b, n, allowed in zip(base.samples, new.samples, same_seed_allowed(base, new),
                             strict=True):
        if not (math.isfinite(b) and math.isfinite(n)):
            if not same_non_finite(b, n):
                return False
        elif abs(n - b) > allowed:
            return False
    return True
