"""The regression check: `python -m reports compare BASELINE_DIR NEW_DIR`.

It fails (exit 1) when a claim's verdict changed, a claim of the baseline is missing from NEW, a
metric disappeared or changed unit, or a metric moved further than its allowed deviation. A claim
or metric only in NEW is reported, not failed. A result file that is missing or corrupt ends the
check with a one-line error naming it (exit 2).

The allowed deviation of a metric comes from the metric's own uncertainty
---------------------------------------------------------------------------
Each metric is stored as a mean over n samples (seeds) with a 95% percentile-bootstrap CI.

1. Spread per sample. The bootstrap distribution of a mean has the plug-in standard deviation
   s * sqrt((n-1)/n) / sqrt(n), where s is the sample standard deviation (the bootstrap divides
   by n, not n - 1), so its 95% interval is about 2 * 1.96 of that wide. Hence
   s = (ci_high - ci_low) / (2 * 1.96) * n / sqrt(n - 1). This undoes the bootstrap's
   small-n shrinkage (a factor sqrt(n/(n-1)): 1.15 at n = 4). At n = 2 the percentile interval
   is exactly the range of the two values, so there s = (ci_high - ci_low) / sqrt(2).
   Simulated (normal and log-normal data, 2,000 draws each, the runner's bootstrap), E[s^2] of
   this recovery is 0.94-1.08 of the true one for n = 2..16.
2. Null hypothesis: the science did not change, so baseline and new values are draws from one
   distribution. Then the two sides share one spread, and the pooled two-sample t statistic is
   exact for normal data: s_p^2 = sum((n_i - 1) s_i^2) / df with df = n_b + n_n - 2, and
   se = s_p * sqrt(1/n_b + 1/n_n). Pooling also covers a side with n = 1 (a one-seed run) or a
   zero-width CI (every seed gave the same value): that side borrows the other side's spread.
3. Critical value. Some hundreds of metrics are checked at once; a false alarm on any of them
   fails the check. A family-wise false-alarm rate of 1% over a budget of 500 metrics gives,
   Bonferroni-style, a per-metric two-sided level alpha = 0.01 / 500 = 2e-5. Because s comes
   from few seeds, the critical value is Student's t quantile with df degrees of freedom, not
   the normal one: k = t_df(1 - alpha/2): 4.26 for large n (about the suggested k = 4), 12.0
   for 4 + 4 seeds (df = 6), 5.05 for 16 + 16 (df = 30). A normal k with a 4-seed spread
   estimate would raise false alarms about 250 times more often than intended (P(|t_6| > 4.26)
   is 5e-3, not 2e-5), because s itself is uncertain. The simulated false-alarm rates of the
   whole rule at levels 0.05 / 0.01 / 0.001 match the level (2,000 draws per setting).
   df is capped at 1000, where the quantile is within 1% of the normal one (on the wide side).
4. allowed = k * se + 1e-6 * max(|baseline|, |new|) + 1e-9. The floor is all that is left for
   deterministic metrics (n = 1 on both sides, or zero-width CIs with no spread to pool): the
   same CPU build reproduces them bit for bit, other builds may differ in the last bits.
5. Non-finite means (an inf loss is a result) must match exactly: inf == inf, nan == nan.
   Non-finite CI bounds around a finite mean count as zero width (strict).

Limits: the rule trusts a metric's CI to describe seed-to-seed variation. Values pooled over
non-independent samples (units of one network) understate it. Two one-seed runs (n = 1 on both
sides) count as deterministic, so compare them only when they used the same seed; so does a
`Metric.exact` value that depends on the seeds (a maximum over seeds), which a re-seeded run
then flags: such a value belongs in `Metric.of`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from reports.results import ClaimResult, Metric, ResultSet, load_results

FAMILY_ALPHA = 0.01  # chance of at least one false alarm over the whole check
METRIC_BUDGET = 500  # metrics the family-wise rate is spread over (55 claims x a few metrics)
ALPHA = FAMILY_ALPHA / METRIC_BUDGET  # per metric, two-sided
Z_95 = 1.959963984540054  # the bootstrap CI's level, 95%
MAX_DF = 1000
RELATIVE_FLOOR = 1e-6
ABSOLUTE_FLOOR = 1e-9


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


def sample_sd(metric: Metric) -> float:
    """Seed-to-seed standard deviation recovered from the bootstrap CI (rule, step 1)."""
    width = metric.ci_high - metric.ci_low
    if metric.n < 2 or not math.isfinite(width):
        return 0.0
    if metric.n == 2:
        return abs(width) / math.sqrt(2)
    return abs(width) / (2 * Z_95) * metric.n / math.sqrt(metric.n - 1)


def allowed_deviation(base: Metric, new: Metric, alpha: float = ALPHA) -> float:
    """How far the new mean may lie from the baseline's under "nothing changed" (rules 2-4)."""
    floor = RELATIVE_FLOOR * max(abs(base.mean), abs(new.mean)) + ABSOLUTE_FLOOR
    df = (base.n - 1) + (new.n - 1)
    pooled = ((base.n - 1) * sample_sd(base) ** 2 + (new.n - 1) * sample_sd(new) ** 2)
    if df == 0 or pooled == 0:
        return floor
    se = math.sqrt(pooled / df) * math.sqrt(1 / base.n + 1 / new.n)
    return student_critical(alpha, df) * se + floor


def within(base: Metric, new: Metric, alpha: float = ALPHA) -> bool:
    if not (math.isfinite(base.mean) and math.isfinite(new.mean)):
        return _same_non_finite(base.mean, new.mean)
    return abs(new.mean - base.mean) <= allowed_deviation(base, new, alpha)


def _same_non_finite(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


# --- the check ------------------------------------------------------------------------------

OK, NEW_CLAIM, NEW_METRIC = "ok", "new claim", "new metric"
MOVED, VERDICT_CHANGED, CLAIM_MISSING = "MOVED", "VERDICT CHANGED", "CLAIM MISSING"
METRIC_MISSING, UNIT_CHANGED = "METRIC MISSING", "UNIT CHANGED"
FAILURES = (MOVED, VERDICT_CHANGED, CLAIM_MISSING, METRIC_MISSING, UNIT_CHANGED)


@dataclass(frozen=True)
class Row:
    claim: str
    metric: str
    baseline: str
    new: str
    allowed: str
    status: str

    @property
    def failed(self) -> bool:
        return self.status in FAILURES


def show(metric: Metric | None) -> str:
    if metric is None:
        return "-"
    if metric.n == 1 or metric.ci_low == metric.ci_high:
        return f"{metric.mean:.6g} (n={metric.n})"
    return f"{metric.mean:.6g} [{metric.ci_low:.4g}, {metric.ci_high:.4g}] (n={metric.n})"


def compare_metric(claim: str, base: Metric | None, new: Metric | None) -> Row:
    name = (base or new).name  # type: ignore[union-attr]
    if base is None or new is None:
        return Row(claim, name, show(base), show(new), "-", NEW_METRIC if base is None
                   else METRIC_MISSING)
    if base.unit != new.unit:
        return Row(claim, name, f"{show(base)} {base.unit}", f"{show(new)} {new.unit}", "-",
                   UNIT_CHANGED)
    finite = math.isfinite(base.mean) and math.isfinite(new.mean)
    allowed = f"±{allowed_deviation(base, new):.3g}" if finite else "exact"
    return Row(claim, name, show(base), show(new), allowed, OK if within(base, new) else MOVED)


def compare_claim(base: ClaimResult | None, new: ClaimResult | None) -> list[Row]:
    claim = (base or new).id  # type: ignore[union-attr]
    if base is None:
        return [Row(claim, "-", "-", new.verdict, "-", NEW_CLAIM)]  # type: ignore[union-attr]
    if new is None:
        return [Row(claim, "-", base.verdict, "-", "-", CLAIM_MISSING)]
    status = OK if base.verdict == new.verdict else VERDICT_CHANGED
    rows = [Row(claim, "verdict", base.verdict, new.verdict, "same", status)]
    names = [m.name for m in base.metrics]
    names += [m.name for m in new.metrics if m.name not in names]
    rows += [compare_metric(claim, base.metric(n), new.metric(n)) for n in names]
    return rows


def compare(base: ResultSet, new: ResultSet) -> list[Row]:
    """Rows for every claim of the baseline (in its order), then the claims only in NEW."""
    new_by_id, base_ids = new.by_id(), {c.id for c in base.claims}
    rows = [r for c in base.claims for r in compare_claim(c, new_by_id.get(c.id))]
    rows += [r for c in new.claims if c.id not in base_ids for r in compare_claim(None, c)]
    return rows


HEADER = ("claim", "metric", "baseline", "new", "allowed", "status")


def format_table(rows: Iterable[Row]) -> str:
    cells = [HEADER] + [(r.claim, r.metric, r.baseline, r.new, r.allowed, r.status)
                        for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(HEADER))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def notes(base: ResultSet, new: ResultSet) -> list[str]:
    """Differences in how the two sets were run: worth knowing, not failures by themselves."""
    found = []
    for label, attribute in (("profile", "profile"), ("device", "device"),
                             ("data sha256", "data_sha256")):
        before = sorted({getattr(c, attribute) for c in base.claims})
        after = sorted({getattr(c, attribute) for c in new.claims})
        if before != after:
            found.append(f"note: {label} differs: baseline {', '.join(before)}; "
                         f"new {', '.join(after)}")
    return found


def run(baseline_dir: Path, new_dir: Path, quiet: bool = False) -> int:
    """Print the comparison; 0 when nothing regressed, 1 otherwise (ResultError propagates)."""
    base, new = load_results(baseline_dir), load_results(new_dir)
    rows = compare(base, new)
    failed = [r for r in rows if r.failed]
    shown = [r for r in rows if r.status != OK] if quiet else rows
    if shown:
        print(format_table(shown))
    for line in notes(base, new):
        print(line)
    metrics = sum(1 for r in rows if r.metric not in ("-", "verdict") and r.status != NEW_METRIC)
    print(f"{len(base.claims)} baseline claims, {metrics} metrics compared "
          f"(per-metric two-sided level {ALPHA:.0e}; family-wise false-alarm rate <= "
          f"{min(1.0, metrics * ALPHA):.1g}): "
          + (f"{len(failed)} regression(s)" if failed else "no regression"))
    return 1 if failed else 0
