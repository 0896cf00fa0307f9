"""A claim's verdict, composed from its declared checks.

- `reproduced`: every check of `Rules.reproduced` passes;
- `partly reproduced`: otherwise, every check of `Rules.partly` passes (true under conditions the
  source did not state; the failed checks of `reproduced` say which);
- `not reproduced`: otherwise; what holds instead is built from the failed checks;
- `not evaluated`: a NeedsSteps check finds the run shorter than the claim needs;
- `answered`: a row of questions, measured but not judged.

A check whose CI straddles its edge is undecided. If the verdict is the same whichever way the
undecided checks fall, it stands. Otherwise the runner adds seeds and judges again; at the
profile's cap the undecided checks count as failed and the claim is marked borderline.
"""

from __future__ import annotations

import enum
import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from itertools import product
from typing import Any

from ablations.checks import Assignment, Check, Decision, NeedsSteps, Outcome, measurement_of
from ablations.measurement import Measurement, Metric, fmt


class Verdict(enum.StrEnum):
    REPRODUCED = "reproduced"
    PARTLY = "partly reproduced"
    NOT_REPRODUCED = "not reproduced"
    NOT_EVALUATED = "not evaluated"
    ANSWERED = "answered"


JUDGED = (Verdict.REPRODUCED, Verdict.PARTLY, Verdict.NOT_REPRODUCED, Verdict.NOT_EVALUATED)


@dataclass(frozen=True)
class Rules:
    """Which checks decide which verdict. `instead` is a template (metric placeholders, see
    `render`) that states what holds instead, for any verdict but reproduced; `partly_means`
    states the condition under which the claim holds when it is partly reproduced."""

    reproduced: tuple[Check, ...]
    partly: tuple[Check, ...] = ()
    instead: str = ""
    partly_means: str = ""

    def checks(self) -> list[Check]:
        """Every check once, in declaration order."""
        seen: dict[str, Check] = {}
        for check in (*self.reproduced, *self.partly):
            if seen.get(check.name, check) != check:
                raise ValueError(f"two different checks are both named {check.name!r}")
            seen[check.name] = check
        return list(seen.values())

    def declared(self) -> list[Verdict]:
        verdicts = [Verdict.REPRODUCED]
        if self.partly:
            verdicts.append(Verdict.PARTLY)
        verdicts.append(Verdict.NOT_REPRODUCED)
        if any(isinstance(c, NeedsSteps) for c in self.checks()):
            verdicts.append(Verdict.NOT_EVALUATED)
        return verdicts

    def record(self) -> dict[str, Any]:
        return {"reproduced": [c.name for c in self.reproduced],
                "partly": [c.name for c in self.partly],
                "instead": self.instead, "partly_means": self.partly_means,
                "checks": [c.record() for c in self.checks()]}


@dataclass(frozen=True)
class Judged:
    verdict: Verdict
    decisions: dict[str, Decision]
    holds_instead: str = ""
    undecided: tuple[str, ...] = ()  # straddling checks that can change the verdict
    borderline: bool = False

    @property
    def settled(self) -> bool:
        return not self.undecided or self.borderline


def _verdict(rules: Rules, outcomes: Mapping[str, Outcome]) -> Verdict:
    if Outcome.SHORT in outcomes.values():
        return Verdict.NOT_EVALUATED
    if all(outcomes[c.name] == Outcome.PASS for c in rules.reproduced):
        return Verdict.REPRODUCED
    if rules.partly and all(outcomes[c.name] == Outcome.PASS for c in rules.partly):
        return Verdict.PARTLY
    return Verdict.NOT_REPRODUCED


def _resolved(outcomes: Mapping[str, Outcome], straddle_as: Outcome) -> dict[str, Outcome]:
    return {n: straddle_as if o == Outcome.STRADDLE else o for n, o in outcomes.items()}


def judge(rules: Rules, m: Measurement, at_cap: bool = True) -> Judged:
    """The verdict of a measurement. Undecided checks that matter are listed; `at_cap` says no
    more seeds can be added, so they then count as failed and the claim is borderline."""
    decisions = {c.name: c.decide(m) for c in rules.checks()}
    outcomes = {n: d.outcome for n, d in decisions.items()}
    hopeful = _verdict(rules, _resolved(outcomes, Outcome.PASS))
    doubtful = _verdict(rules, _resolved(outcomes, Outcome.FAIL))
    undecided = () if hopeful == doubtful else tuple(
        n for n, o in outcomes.items() if o == Outcome.STRADDLE)
    verdict = doubtful
    borderline = bool(undecided) and at_cap
    return Judged(verdict, decisions, holds_instead(rules, verdict, decisions, m), undecided,
                  borderline)


def holds_instead(rules: Rules, verdict: Verdict, decisions: Mapping[str, Decision],
                  m: Measurement) -> str:
    """For any verdict but reproduced: the claim's own statement of what holds instead (its
    template rendered with the numbers), then every check that did not pass, in its words."""
    if verdict == Verdict.REPRODUCED:
        return ""
    if verdict == Verdict.NOT_EVALUATED:
        return "; ".join(d.sentence for d in decisions.values() if d.outcome == Outcome.SHORT)
    failed = [d.sentence for d in decisions.values() if d.outcome != Outcome.PASS]
    lead = rules.partly_means if verdict == Verdict.PARTLY else rules.instead
    text = render(lead, m.metrics) if lead else ""
    return "; ".join([text, *failed] if text else failed)


# --- templates ---------------------------------------------------------------------------------


class _MetricFormatter(string.Formatter):
    """{name} -> mean [CI] and unit; {name:mean} -> the mean alone; {name:pct} -> the mean as a
    percentage; {name:ci} -> '[low, high]'."""

    def __init__(self, metrics: Mapping[str, Metric]):
        self.metrics = metrics

    def get_value(self, key: Any, args: Any, kwargs: Any) -> Any:
        return self.metrics[key]

    def format_field(self, value: Any, format_spec: str) -> str:
        if not isinstance(value, Metric):
            return super().format_field(value, format_spec)
        unit = f" {value.unit}" if value.unit else ""
        if format_spec == "mean":
            return fmt(value.mean)
        if format_spec == "pct":
            return f"{fmt(100 * value.mean, 3)}%"
        if format_spec == "ci":
            return f"[{fmt(value.ci_low)}, {fmt(value.ci_high)}]"
        if value.is_exact or value.ci_low == value.ci_high:
            return f"{fmt(value.mean)}{unit}"
        return f"{fmt(value.mean)} [{fmt(value.ci_low)}, {fmt(value.ci_high)}]{unit}"


def render(template: str, metrics: Mapping[str, Metric]) -> str:
    return _MetricFormatter(metrics).format(template)


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


# --- reaching every verdict through constructed measurements --------------------------------


def _assignments(checks: list[Check], wanted: Mapping[str, Outcome],
                 assigned: Assignment) -> Iterator[Assignment]:
    if not checks:
        yield assigned
        return
    first, rest = checks[0], checks[1:]
    for extra in first.complete(wanted[first.name], assigned):
        yield from _assignments(rest, wanted, {**assigned, **extra})


def _patterns(rules: Rules, verdict: Verdict) -> Iterator[dict[str, Outcome]]:
    checks = rules.checks()
    every_pass = {c.name: Outcome.PASS for c in checks}
    if verdict == Verdict.REPRODUCED:
        yield every_pass
    elif verdict == Verdict.PARTLY:
        partly = {c.name for c in rules.partly}
        for check in rules.reproduced:
            if check.name not in partly:
                yield {**every_pass, check.name: Outcome.FAIL}
    elif verdict == Verdict.NOT_REPRODUCED:
        deciding = rules.partly or rules.reproduced
        for check in deciding:
            if not isinstance(check, NeedsSteps):
                others = [c for c in rules.reproduced if c.name != check.name
                          and not isinstance(c, NeedsSteps)]
                for fails in product((Outcome.PASS, Outcome.FAIL), repeat=len(others)):
                    pattern = {**every_pass, check.name: Outcome.FAIL}
                    pattern.update({c.name: o for c, o in zip(others, fails, strict=True)})
                    yield pattern
    elif verdict == Verdict.NOT_EVALUATED:
        for check in checks:
            if isinstance(check, NeedsSteps):
                yield {**every_pass, check.name: Outcome.SHORT}


def reach(rules: Rules, verdict: Verdict, metric_names: list[str],
          limit: int = 2000) -> Measurement | None:
    """A constructed measurement that the rules judge `verdict`, or None if none was found:
    the checks build metrics for each pattern of outcomes that should give the verdict, metrics
    no check reads get a neutral value, and the real `judge` confirms."""
    tried = 0
    for pattern in _patterns(rules, verdict):
        for assigned in _assignments(rules.checks(), pattern, {}):
            tried += 1
            filled = {n: Metric.exact(0.0) for n in metric_names if n not in assigned}
            m = measurement_of({**filled, **assigned})
            if judge(rules, m).verdict == verdict:
                return m
            if tried >= limit:
                return None
    return None


@dataclass(frozen=True)
class Questions:
    """A row of questions: each question gets an answer template rendered with the measured
    metrics (no verdict)."""

    answers: Mapping[str, str] = field(default_factory=dict)

    def render(self, m: Measurement) -> dict[str, str]:
        return {q: render(a, m.metrics) for q, a in self.answers.items()}
