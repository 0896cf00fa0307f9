"""The vocabulary of checks. A check is a small declarative record: it reads named metrics of a
Measurement, decides, and says one sentence. Its rule sentence is generated from its own
parameters and the named tolerances it uses, so prose and constants cannot drift apart.

Every check decides on the 95% CI of what it reads, in three states:
- PASS: the whole CI lies where the claim needs it;
- FAIL: the whole CI lies outside;
- STRADDLE: the CI crosses the edge; the runner adds seeds and decides again (ablations.verdicts).
A deterministic metric (one sample) has a zero-width CI and never straddles. NeedsSteps says
SHORT when the run behind the measurement is shorter than the claim needs.

Each check can also build metrics that drive it to a given outcome (`complete`): the verdict
tests use this to reach every verdict a claim declares through constructed measurements.

A reference to a metric is its name, or a pair (a, b) for the seed-by-seed difference a - b of
two metrics of the same run.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ablations.measurement import Measurement, Metric, fmt, paired
from ablations.tolerances import Reading, Tolerance, reading, scale

Ref = str | tuple[str, str]
# A partial measurement built by `complete`: metric name -> Metric, "@prediction:<name>" -> float,
# "@steps" -> int (no metric name starts with "@").
Assignment = dict[str, Any]


class Outcome(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    STRADDLE = "straddle"
    SHORT = "short"


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    sentence: str


def ref_name(ref: Ref) -> str:
    return ref if isinstance(ref, str) else f"{ref[0]} - {ref[1]}"


def ref_metrics(ref: Ref) -> tuple[str, ...]:
    return (ref,) if isinstance(ref, str) else ref


def value_of(ref: Ref, metrics: Mapping[str, Metric]) -> Metric:
    if isinstance(ref, str):
        return metrics[ref]
    a, b = metrics[ref[0]], metrics[ref[1]]
    return Metric.of(paired(a, b), a.unit, a.kind)


def interval(metric: Metric) -> tuple[float, float]:
    return metric.ci_low, metric.ci_high


# Constructed samples: mean 0, sample SD 1, symmetric, 16 seeds (the full profile's count).
PATTERN = np.linspace(-1.0, 1.0, 16)
PATTERN = PATTERN / PATTERN.std(ddof=1)


def constructed(mean: float, spread: float = 0.0, unit: str = "") -> Metric:
    """A metric of 16 seeds with the given mean and sample SD (0: every seed equal)."""
    return Metric.of(mean + spread * PATTERN, unit)


def assign(ref: Ref, target: float, spread: float, assigned: Assignment) -> Assignment:
    """Metrics that give `ref` the value `target`: the metric itself, or for a pair (a, b) the
    free side set seed by seed from the other (both free: b a constructed base)."""
    if isinstance(ref, str):
        return {ref: constructed(target, spread)}
    a, b = ref
    if a in assigned:
        return {b: Metric.of(np.asarray(assigned[a].samples) - target)}
    if b in assigned:
        return {a: Metric.of(np.asarray(assigned[b].samples) + target)}
    base = constructed(1.0, 0.01)
    return {a: Metric.of(np.asarray(base.samples) + target), b: base}


def place(lo: float, hi: float, where: str) -> float:
    """A value inside [lo, hi] ("in"), or clearly below or above it."""
    width = hi - lo if math.isfinite(hi - lo) and hi > lo else 1.0
    if where == "in":
        return 0.5 * (lo + hi) if math.isfinite(lo + hi) else (lo if math.isfinite(lo) else hi)
    return lo - 4 * width - 1 if where == "below" else hi + 4 * width + 1


@dataclass(frozen=True)
class Check:
    """The shared part: an optional label (else generated) and the reason the rule is what it
    is, beyond what its tolerances already say."""

    kind: ClassVar[str] = ""
    label: str = field(default="", kw_only=True)
    why: str = field(default="", kw_only=True)

    # --- what a check declares ---
    def reads(self) -> tuple[str, ...]:
        """Metric names read."""
        raise NotImplementedError

    def predictions_read(self) -> tuple[str, ...]:
        return ()

    def tolerances(self) -> dict[str, Tolerance]:
        return {}

    def params(self) -> dict[str, Any]:
        """The check's parameters, for pre-registration (result.json and the cache key)."""
        raise NotImplementedError

    def describe(self) -> str:
        """The rule in words, generated from the parameters."""
        raise NotImplementedError

    # --- what a check does ---
    def decide(self, m: Measurement) -> Decision:
        raise NotImplementedError

    def complete(self, outcome: Outcome, assigned: Assignment) -> Iterator[Assignment]:
        """Assignments of the still-free metrics (and predictions, steps) that, with `assigned`,
        give `outcome`. The default handles a fully assigned check by deciding it."""
        if all(name in assigned for name in self.reads()):
            if self.decide(measurement_of(assigned)).outcome == outcome:
                yield {}

    # --- derived ---
    @property
    def name(self) -> str:
        return self.label or self.default_label()

    def default_label(self) -> str:
        raise NotImplementedError

    def rule(self) -> str:
        return self.describe() + (f" ({self.why})" if self.why else "")

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "metrics": list(self.reads()),
                "params": self.params(), "rule": self.rule()}


def measurement_of(assigned: Assignment) -> Measurement:
    import pandas as pd

    metrics = {k: v for k, v in assigned.items() if isinstance(v, Metric)}
    predictions = {k.removeprefix("@prediction:"): v for k, v in assigned.items()
                   if k.startswith("@prediction:")}
    return Measurement(pd.DataFrame(), metrics, predictions, steps=assigned.get("@steps", 0))


def three_state(inside: bool, outside: bool) -> Outcome:
    return Outcome.PASS if inside else Outcome.FAIL if outside else Outcome.STRADDLE


def _finite_ci(metric: Metric) -> bool:
    return not (math.isnan(metric.ci_low) or math.isnan(metric.ci_high))


@dataclass(frozen=True)
class Near(Check):
    """The metric agrees with a number of the source under the reading the tolerance table
    names. A mean reading needs the CI of the mean inside the source's interval. A single-run
    reading needs the interval to meet the band where single runs fall, mean +- 2 SD over seeds
    (about 95% of runs): PASS if it meets the band even at the CI's far ends, FAIL if it misses
    it even at the near ends."""

    kind: ClassVar[str] = "near"
    metric: str
    reading: str

    def reads(self) -> tuple[str, ...]:
        return (self.metric,)

    def source(self) -> Reading:
        return reading(self.reading)

    def tolerances(self) -> dict[str, Tolerance]:
        return {self.reading: self.source()}

    def params(self) -> dict[str, Any]:
        return {"metric": self.metric, "reading": self.reading}

    def default_label(self) -> str:
        return f"{self.metric} matches the source's {self.source().value:g}"

    def describe(self) -> str:
        src = self.source()
        target = ("the band of single runs (mean +- 2 SD) must meet"
                  if src.single_run else "the 95% CI must lie inside")
        return f"{target} the source's {src.describe()} [{self.reading}: {src.why}]"

    def bands(self, metric: Metric) -> tuple[tuple[float, float], tuple[float, float]]:
        """Single runs: (band at the CI's near ends, band at its far ends)."""
        spread = 2.0 * metric.sd
        return ((metric.ci_high - spread, metric.ci_low + spread),
                (metric.ci_low - spread, metric.ci_high + spread))

    def decide(self, m: Measurement) -> Decision:
        metric = m.metrics[self.metric]
        src = self.source()
        lo, hi = src.bounds()
        if not _finite_ci(metric):
            return Decision(Outcome.FAIL, f"{self.metric} is {metric.text()}: not a number")
        if src.single_run:
            inner, outer = self.bands(metric)
            meets_inner = inner[0] <= inner[1] and hi >= inner[0] and lo <= inner[1]
            misses_outer = hi < outer[0] or lo > outer[1]
            outcome = three_state(meets_inner, misses_outer)
            where = (f"single runs fall in [{fmt(metric.mean - 2 * metric.sd)}, "
                     f"{fmt(metric.mean + 2 * metric.sd)}], which")
            verb = {Outcome.PASS: "meets", Outcome.FAIL: "misses",
                    Outcome.STRADDLE: "may meet"}[outcome]
        else:
            outcome = three_state(metric.ci_low >= lo and metric.ci_high <= hi,
                                  metric.ci_high < lo or metric.ci_low > hi)
            where = "its CI"
            verb = {Outcome.PASS: "lies inside", Outcome.FAIL: "lies outside",
                    Outcome.STRADDLE: "straddles"}[outcome]
        return Decision(outcome, f"{self.metric} {metric.text()}; {where} {verb} the source's "
                                 f"{src.value:g} [{fmt(lo)}, {fmt(hi)}]")

    def complete(self, outcome: Outcome, assigned: Assignment) -> Iterator[Assignment]:
        if self.metric in assigned:
            yield from super().complete(outcome, assigned)
            return
        lo, hi = self.source().bounds()
        width = hi - lo
        if outcome == Outcome.PASS:
            yield {self.metric: constructed(place(lo, hi, "in"), width / 100)}
        elif outcome == Outcome.FAIL:
            yield {self.metric: constructed(place(lo, hi, "above"), width / 100)}
            yield {self.metric: constructed(place(lo, hi, "below"), width / 100)}


def _bound_value(bound: float | str) -> tuple[float, str]:
    if isinstance(bound, str):
        entry = scale(bound)
        return entry.value, f"{entry.describe()} [{bound}: {entry.why}]"
    return float(bound), f"{bound:g}"


@dataclass(frozen=True)
class Above(Check):
    """The whole CI of the metric (or of a paired difference) lies above a bound: a number or a
    named Scale. `Above(("a", "b"), 0)` is the sign of a paired difference."""

    kind: ClassVar[str] = "above"
    ref: Ref
    bound: float | str = 0.0
    direction: ClassVar[int] = 1

    def reads(self) -> tuple[str, ...]:
        return ref_metrics(self.ref)

    def tolerances(self) -> dict[str, Tolerance]:
        return {self.bound: scale(self.bound)} if isinstance(self.bound, str) else {}

    def params(self) -> dict[str, Any]:
        return {"ref": list(ref_metrics(self.ref)), "paired": not isinstance(self.ref, str),
                "bound": self.bound}

    def word(self) -> str:
        return "above" if self.direction > 0 else "below"

    def default_label(self) -> str:
        value, _ = _bound_value(self.bound)
        return f"{ref_name(self.ref)} {self.word()} {value:g}"

    def describe(self) -> str:
        _, text = _bound_value(self.bound)
        what = "the paired difference's" if not isinstance(self.ref, str) else "the"
        return f"{what} 95% CI of {ref_name(self.ref)} must lie {self.word()} {text}"

    def decide(self, m: Measurement) -> Decision:
        metric = value_of(self.ref, m.metrics)
        value, _ = _bound_value(self.bound)
        if not _finite_ci(metric):
            return Decision(Outcome.FAIL, f"{ref_name(self.ref)} is {metric.text()}: not a number")
        lo, hi = interval(metric)
        if self.direction > 0:
            outcome = three_state(lo > value, hi <= value)
        else:
            outcome = three_state(hi < value, lo >= value)
        verb = {Outcome.PASS: f"lies {self.word()}", Outcome.FAIL: f"is not {self.word()}",
                Outcome.STRADDLE: "straddles"}[outcome]
        return Decision(outcome, f"{ref_name(self.ref)} {metric.text()}: its CI {verb} "
                                 f"{fmt(value)}")

    def complete(self, outcome: Outcome, assigned: Assignment) -> Iterator[Assignment]:
        value, _ = _bound_value(self.bound)
        names = ref_metrics(self.ref)
        free = [n for n in names if n not in assigned]
        if outcome not in (Outcome.PASS, Outcome.FAIL) or not free:
            yield from super().complete(outcome, assigned)
            return
        side = self.direction if outcome == Outcome.PASS else -self.direction
        scale = max(abs(value), 1.0)
        for step in (scale, scale / 10, scale / 1000):  # near and far, for other checks' sake
            yield assign(self.ref, value + side * step, step / 100, assigned)


@dataclass(frozen=True)
class Below(Above):
    kind: ClassVar[str] = "below"
    direction: ClassVar[int] = -1


@dataclass(frozen=True)
class Negligible(Check):
    """The effect is negligible against a named scale: the whole CI inside [-s, s]. With
    `negate`, the opposite: the effect is real, the whole CI outside [-s, s]."""

    kind: ClassVar[str] = "negligible"
    ref: Ref
    scale: str
    negate: bool = False

    def reads(self) -> tuple[str, ...]:
        return ref_metrics(self.ref)

    def tolerances(self) -> dict[str, Tolerance]:
        return {self.scale: scale(self.scale)}

    def params(self) -> dict[str, Any]:
        return {"ref": list(ref_metrics(self.ref)), "paired": not isinstance(self.ref, str),
                "scale": self.scale, "negate": self.negate}

    def default_label(self) -> str:
        return f"{ref_name(self.ref)} {'not ' if self.negate else ''}negligible"

    def describe(self) -> str:
        entry = scale(self.scale)
        where = "outside" if self.negate else "inside"
        return (f"the 95% CI of {ref_name(self.ref)} must lie {where} +-{entry.describe()} "
                f"[{self.scale}: {entry.why}]")

    def decide(self, m: Measurement) -> Decision:
        metric = value_of(self.ref, m.metrics)
        s = scale(self.scale).value
        if not _finite_ci(metric):
            return Decision(Outcome.FAIL, f"{ref_name(self.ref)} is {metric.text()}: not a number")
        lo, hi = interval(metric)
        inside, outside = (lo >= -s and hi <= s), (hi < -s or lo > s)
        outcome = three_state(outside, inside) if self.negate else three_state(inside, outside)
        state = "within" if inside else "beyond" if outside else "straddling"
        return Decision(outcome, f"{ref_name(self.ref)} {metric.text()}: {state} +-{s:g}")

    def complete(self, outcome: Outcome, assigned: Assignment) -> Iterator[Assignment]:
        s = scale(self.scale).value
        small, large = 0.0, 5.0 * s
        if outcome not in (Outcome.PASS, Outcome.FAIL):
            yield from super().complete(outcome, assigned)
            return
        want_small = (outcome == Outcome.PASS) != self.negate
        if not [n for n in ref_metrics(self.ref) if n not in assigned]:
            yield from super().complete(outcome, assigned)
            return
        for target in ((small,) if want_small else (large, -large)):
            yield assign(self.ref, target, s / 100, assigned)


@dataclass(frozen=True)
class Exact(Check):
    """A rounding-level quantity stays within its bound in every sample (the worst one, not the
    mean: exactness is a worst-case property). The metric is an error in the bound's unit, e.g.
    ulps."""

    kind: ClassVar[str] = "exact"
    metric: str
    bound: str  # a named Scale

    def reads(self) -> tuple[str, ...]:
        return (self.metric,)

    def tolerances(self) -> dict[str, Tolerance]:
        return {self.bound: scale(self.bound)}

    def params(self) -> dict[str, Any]:
        return {"metric": self.metric, "bound": self.bound}

    def default_label(self) -> str:
        return f"{self.metric} within {scale(self.bound).describe()}"

    def describe(self) -> str:
        entry = scale(self.bound)
        return (f"every sample of {self.metric} must be at most {entry.describe()} "
                f"[{self.bound}: {entry.why}]")

    def decide(self, m: Measurement) -> Decision:
        metric = m.metrics[self.metric]
        worst = max(abs(v) for v in metric.samples)
        limit = scale(self.bound).value
        ok = worst <= limit  # NaN compares false: fails
        return Decision(Outcome.PASS if ok else Outcome.FAIL,
                        f"{self.metric}: worst {worst:.4g} {'<=' if ok else 'exceeds'} {limit:g} "
                        f"{scale(self.bound).unit}".rstrip())

    def complete(self, outcome: Outcome, assigned: Assignment) -> Iterator[Assignment]:
        if self.metric in assigned or outcome not in (Outcome.PASS, Outcome.FAIL):
            yield from super().complete(outcome, assigned)
            return
        limit = scale(self.bound).value
        yield {self.metric: Metric.exact(0.0 if outcome == Outcome.PASS else 10 * limit + 1)}


@dataclass(frozen=True)
class Monotone(Check):
    """Across a sweep (metrics in sweep order) every step moves the stated way: the paired
    difference of each neighbouring pair has its whole CI on that side of 0. A step whose CI
    lies on the other side fails; with `allow_flat`, only such a reversal fails and a step that
    cannot be told from flat passes."""

    kind: ClassVar[str] = "monotone"
    metrics: tuple[str, ...]
    increasing: bool = True
    allow_flat: bool = False

    def reads(self) -> tuple[str, ...]:
        return self.metrics

    def params(self) -> dict[str, Any]:
        return {"metrics": list(self.metrics), "increasing": self.increasing,
                "allow_flat": self.allow_flat}

    def word(self) -> str:
        return "rises" if self.increasing else "falls"

    def default_label(self) -> str:
        return f"{self.metrics[0]} .. {self.metrics[-1]} {self.word()} step by step"

    def describe(self) -> str:
        flat = "; a step that cannot be told from flat is allowed" if self.allow_flat else ""
        return (f"each of the {len(self.metrics) - 1} steps {self.metrics[0]} -> ... -> "
                f"{self.metrics[-1]} {self.word()}: the paired difference's 95% CI on that side "
                f"of 0{flat}")

    def decide(self, m: Measurement) -> Decision:
        sign = 1.0 if self.increasing else -1.0
        states = []
        for a, b in zip(self.metrics, self.metrics[1:], strict=False):
            step = value_of((b, a), m.metrics)
            lo, hi = sign * step.ci_low, sign * step.ci_high
            lo, hi = min(lo, hi), max(lo, hi)
            if math.isnan(lo) or math.isnan(hi):
                states.append(Outcome.FAIL)
            elif lo > 0:
                states.append(Outcome.PASS)
            elif hi < 0:
                states.append(Outcome.FAIL)
            else:
                states.append(Outcome.PASS if self.allow_flat else Outcome.STRADDLE)
        outcome = (Outcome.FAIL if Outcome.FAIL in states else
                   Outcome.STRADDLE if Outcome.STRADDLE in states else Outcome.PASS)
        bad = [f"{a} -> {b}" for (a, b), s in zip(zip(self.metrics, self.metrics[1:],
                                                      strict=False), states, strict=True)
               if s != Outcome.PASS]
        means = ", ".join(f"{m.metrics[n].mean:.4g}" for n in self.metrics)
        tail = f"; not at {', '.join(bad)}" if bad else ""
        return Decision(outcome, f"{self.metrics[0]} .. {self.metrics[-1]}: {means}{tail}")

    def complete(self, outcome: Outcome, assigned: Assignment) -> Iterator[Assignment]:
        free = [n for n in self.metrics if n not in assigned]
        if not free or outcome not in (Outcome.PASS, Outcome.FAIL):
            yield from super().complete(outcome, assigned)
            return
        sign = 1.0 if self.increasing == (outcome == Outcome.PASS) else -1.0
        base = constructed(1.0, 0.01)
        values = {n: Metric.of(np.asarray(base.samples) + sign * i)
                  for i, n in enumerate(self.metrics)}
        if all(n in free for n in self.metrics):
            yield values


@dataclass(frozen=True)
class Predicted(Check):
    """The metric agrees with theory's prediction (measurement.predictions[metric]) within k
    standard errors of its mean, plus an optional named floor for what the theory leaves out
    (finite width, float rounding)."""

    kind: ClassVar[str] = "predicted"
    metric: str
    k: float = 3.0
    floor: str = ""

    def reads(self) -> tuple[str, ...]:
        return (self.metric,)

    def predictions_read(self) -> tuple[str, ...]:
        return (self.metric,)

    def tolerances(self) -> dict[str, Tolerance]:
        return {self.floor: scale(self.floor)} if self.floor else {}

    def params(self) -> dict[str, Any]:
        return {"metric": self.metric, "k": self.k, "floor": self.floor}

    def default_label(self) -> str:
        return f"{self.metric} agrees with the prediction"

    def describe(self) -> str:
        floor = ""
        if self.floor:
            entry = scale(self.floor)
            floor = f" + {entry.describe()} [{self.floor}: {entry.why}]"
        return f"|mean - prediction| of {self.metric} at most {self.k:g} standard errors{floor}"

    def decide(self, m: Measurement) -> Decision:
        metric = m.metrics[self.metric]
        predicted = m.predictions[self.metric]
        se = metric.sd / math.sqrt(metric.n)
        allowed = self.k * se + (scale(self.floor).value if self.floor else 0.0)
        gap = abs(metric.mean - predicted)
        ok = gap <= allowed
        return Decision(Outcome.PASS if ok else Outcome.FAIL,
                        f"{self.metric} {metric.text()} vs predicted {predicted:.5g}: off by "
                        f"{gap:.3g}, allowed {allowed:.3g}")

    def complete(self, outcome: Outcome, assigned: Assignment) -> Iterator[Assignment]:
        key = f"@prediction:{self.metric}"
        if key in assigned or outcome not in (Outcome.PASS, Outcome.FAIL):
            yield from super().complete(outcome, assigned)
            return
        metric = assigned.get(self.metric) or constructed(1.0, 0.01)
        offset = 0.0 if outcome == Outcome.PASS else 100 * (abs(metric.mean) + metric.sd + 1)
        extra = {} if self.metric in assigned else {self.metric: metric}
        yield {**extra, key: metric.mean + offset}


@dataclass(frozen=True)
class NeedsSteps(Check):
    """The claim is about networks trained `steps` steps (the lecture's 200,000, or a stated
    length for networks it never trained): a shorter run cannot support it, and the claim is
    then 'not evaluated', decided from the run's recorded steps."""

    kind: ClassVar[str] = "needs-steps"
    steps: int

    def reads(self) -> tuple[str, ...]:
        return ()

    def params(self) -> dict[str, Any]:
        return {"steps": self.steps}

    def default_label(self) -> str:
        return f"trained {self.steps:,} steps"

    def describe(self) -> str:
        return f"the run behind the measurement must have trained at least {self.steps:,} steps"

    def decide(self, m: Measurement) -> Decision:
        ok = m.steps >= self.steps
        return Decision(Outcome.PASS if ok else Outcome.SHORT,
                        f"the run trained {m.steps:,} steps; the claim needs {self.steps:,}")

    def complete(self, outcome: Outcome, assigned: Assignment) -> Iterator[Assignment]:
        if outcome not in (Outcome.PASS, Outcome.SHORT):
            return
        have = assigned.get("@steps")
        want = self.steps if outcome == Outcome.PASS else self.steps // 2
        if have is None:
            yield {"@steps": want}
        elif (have >= self.steps) == (outcome == Outcome.PASS):
            yield {}


CHECK_KINDS: tuple[type[Check], ...] = (Near, Above, Below, Negligible, Exact, Monotone,
                                        Predicted, NeedsSteps)
