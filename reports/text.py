"""Numbers and short texts, in the one convention the checks' sentences use (ablations'
`Metric.text`): 4 significant digits, '2.600 [2.577, 2.623] nats (n=2)' for a mean with its
95% CI and number of samples, the bare value for a deterministic one."""

from __future__ import annotations

import math
import re

from reports.results import ClaimResult, Metric

DIGITS = 4


def fmt(value: float | None, digits: int = DIGITS) -> str:
    """Large whole numbers with thousands separators, others to `digits` significant digits
    (trailing zeros kept: 2.600 shows its precision), tiny or huge ones in scientific notation."""
    if value is None:
        return "—"
    if not math.isfinite(value):
        return str(value)
    if value == int(value) and 100 <= abs(value) < 1e15:
        return f"{int(value):,}"
    if value == 0:
        return "0"
    if 1e-3 <= abs(value) < 1e5:
        return f"{value:#.{digits}g}".rstrip(".")
    return f"{value:.{digits - 1}e}"


def given(value: float | None) -> str:
    """A number of the source as it wrote it (3.29 stays 3.29, not 3.290)."""
    return "—" if value is None else f"{value:.6g}"


def setting(value: object) -> str:
    """A profile setting: whole numbers with separators, others as written."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return f"{value:g}" if isinstance(value, float) else str(value)


def measured(metric: Metric | None, unit: bool = True) -> str:
    if metric is None:
        return "—"
    tail = f" {metric.unit}" if unit and metric.unit else ""
    if metric.n == 1 or metric.ci_low == metric.ci_high:
        return f"{fmt(metric.mean)}{tail}" + (f" (n={metric.n})" if metric.n > 1 else "")
    return f"{fmt(metric.mean)} [{fmt(metric.ci_low)}, {fmt(metric.ci_high)}]{tail} (n={metric.n})"


def duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return (f"{hours} h " if hours else "") + f"{minutes} min {rest:02d} s"


def one_line(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def citation(claim: ClaimResult) -> str:
    return f"{claim.source.doc}:{claim.source.lines}"


def cell(text: str, limit: int) -> str:
    """A CSV cell for display: a whole number as written (a seed such as 2147483647, also when
    the writer gave it a '.0'), other numbers to DIGITS significant digits, long text cut."""
    try:
        value = float(text)
    except ValueError:
        return one_line(text, limit)
    if math.isfinite(value) and value == int(value) and re.fullmatch(r"\s*[+-]?\d+(\.0*)?\s*",
                                                                     text):
        return str(int(value))
    return fmt(value)
