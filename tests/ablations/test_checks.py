"""Every check, property-tested on both sides of its edge: hypothesis draws measurements that
must pass and measurements that must fail, and the verdict logic on top of them.

Constructed metrics have 16 samples with a chosen mean and spread; "far" means many CI
half-widths away from an edge, "near" a CI that contains the edge. A check whose decision were
replaced by a constant fails here on the side it no longer tells apart.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from ablations import tolerances
from ablations.checks import (
    Above,
    Below,
    Exact,
    Monotone,
    Near,
    NeedsSteps,
    Negligible,
    Outcome,
    Predicted,
    constructed,
    measurement_of,
)
from ablations.measurement import Measurement, Metric
from ablations.tolerances import Reading, Scale
from ablations.verdicts import Rules, Verdict, judge

values = st.floats(-1e3, 1e3, allow_nan=False)
spreads = st.floats(1e-6, 1.0)


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch):
    """A private tolerance table the tests may fill."""
    entries: dict[str, tolerances.Tolerance] = {}
    monkeypatch.setattr(tolerances, "TOLERANCES", entries)
    return entries


def m(**metrics: Metric) -> Measurement:
    return measurement_of(dict(metrics))


def half_width(metric: Metric) -> float:
    return (metric.ci_high - metric.ci_low) / 2


# --- Near ------------------------------------------------------------------------------------


@given(value=st.floats(0.01, 100), digits=st.integers(0, 3),
       interval=st.sampled_from(["truncated", "rounded"]), where=st.floats(0.1, 0.9))
def test_near_mean_reading_passes_inside_and_fails_outside(table, value, digits, interval, where):
    table["r"] = Reading(round(value, digits), interval, "test", digits=digits)
    lo, hi = table["r"].bounds()
    check = Near("x", "r")
    inside = lo + where * (hi - lo)
    tight = (hi - lo) * 1e-4  # a CI far narrower than the interval
    assert check.decide(m(x=constructed(inside, tight))).outcome == Outcome.PASS
    assert check.decide(m(x=Metric.exact(hi + (hi - lo)))).outcome == Outcome.FAIL
    assert check.decide(m(x=Metric.exact(lo - (hi - lo)))).outcome == Outcome.FAIL


@given(value=st.floats(0.5, 10), spread=st.floats(0.01, 0.5))
def test_near_mean_reading_straddles_when_the_ci_holds_an_edge(table, value, spread):
    table["r"] = Reading(value, "about", "test", relative=0.01)
    lo, _ = table["r"].bounds()
    metric = constructed(lo, spread)  # the CI is centred on the lower edge
    assert metric.ci_low < lo < metric.ci_high
    assert Near("x", "r").decide(m(x=metric)).outcome == Outcome.STRADDLE


@given(value=st.floats(1.0, 5.0), sd=st.floats(1e-3, 0.1), shift=st.floats(-1.5, 1.5))
def test_near_single_run_compares_with_where_single_runs_fall(table, value, sd, shift):
    """A one-run source value within 1.5 SD of the seeds' mean is a typical single run: pass;
    one 20 SD away is not: fail."""
    table["r"] = Reading(value, "rounded", "test", digits=6, single_run=True)
    check = Near("x", "r")
    assert check.decide(m(x=constructed(value + shift * sd, sd))).outcome == Outcome.PASS
    assert check.decide(m(x=constructed(value + 20 * sd, sd))).outcome == Outcome.FAIL
    assert check.decide(m(x=constructed(value - 20 * sd, sd))).outcome == Outcome.FAIL


@given(value=st.floats(1e-3, 1e3), factor=st.floats(1.5, 20))
def test_near_magnitude_reading(table, value, factor):
    table["r"] = Reading(value, "magnitude", "test", factor=factor)
    check = Near("x", "r")
    assert check.decide(m(x=Metric.exact(value * factor**0.5))).outcome == Outcome.PASS
    assert check.decide(m(x=Metric.exact(value * factor**2))).outcome == Outcome.FAIL
    assert check.decide(m(x=Metric.exact(value / factor**2))).outcome == Outcome.FAIL


def test_a_nan_metric_fails_every_interval_check(table):
    table["r"] = Reading(1.0, "about", "test", relative=0.5)
    table["s"] = Scale(1.0, "", "test")
    nan = Metric.exact(math.nan)
    for check in (Near("x", "r"), Above("x", 0.0), Below("x", 0.0), Negligible("x", "s")):
        assert check.decide(m(x=nan)).outcome == Outcome.FAIL


# --- Above / Below ---------------------------------------------------------------------------


@given(bound=values, mean=values, spread=spreads)
def test_above_and_below_split_at_the_bound(bound, mean, spread):
    metric = constructed(mean, spread)
    w = half_width(metric)
    assume(abs(mean - bound) > 2 * w + 1e-9)
    above = Above("x", bound).decide(m(x=metric)).outcome
    below = Below("x", bound).decide(m(x=metric)).outcome
    if mean > bound:
        assert (above, below) == (Outcome.PASS, Outcome.FAIL)
    else:
        assert (above, below) == (Outcome.FAIL, Outcome.PASS)


@given(bound=values, spread=st.floats(1e-3, 1.0))
def test_above_straddles_a_ci_across_the_bound(bound, spread):
    assert Above("x", bound).decide(m(x=constructed(bound, spread))).outcome == Outcome.STRADDLE


@given(base=st.lists(values, min_size=16, max_size=16), gap=st.floats(0.01, 10))
def test_a_paired_difference_cancels_what_the_seeds_share(base, gap):
    """Seed-to-seed variation common to both arms does not hide a constant paired gap."""
    a = Metric.of(np.asarray(base) + gap)
    b = Metric.of(base)
    assert Above(("a", "b"), 0.0).decide(m(a=a, b=b)).outcome == Outcome.PASS
    assert Below(("a", "b"), 0.0).decide(m(a=a, b=b)).outcome == Outcome.FAIL


def test_pairing_metrics_of_different_seeds_is_refused():
    with pytest.raises(ValueError, match="cannot pair"):
        Above(("a", "b"), 0.0).decide(m(a=constructed(1.0), b=Metric.exact(0.0)))


# --- Negligible ------------------------------------------------------------------------------


@given(s=st.floats(1e-4, 10), fraction=st.floats(0, 0.4), sign=st.sampled_from([-1, 1]))
def test_negligible_inside_and_not_outside(table, s, fraction, sign):
    table["s"] = Scale(s, "nats", "test")
    small = constructed(sign * fraction * s, s * 1e-3)
    large = constructed(sign * (2 + fraction) * s, s * 1e-3)
    assert Negligible("x", "s").decide(m(x=small)).outcome == Outcome.PASS
    assert Negligible("x", "s").decide(m(x=large)).outcome == Outcome.FAIL
    assert Negligible("x", "s", negate=True).decide(m(x=small)).outcome == Outcome.FAIL
    assert Negligible("x", "s", negate=True).decide(m(x=large)).outcome == Outcome.PASS


@given(s=st.floats(1e-3, 10))
def test_negligible_straddles_at_its_edge_either_way(table, s):
    table["s"] = Scale(s, "", "test")
    edge = constructed(s, s / 5)
    assert Negligible("x", "s").decide(m(x=edge)).outcome == Outcome.STRADDLE
    assert Negligible("x", "s", negate=True).decide(m(x=edge)).outcome == Outcome.STRADDLE


# --- Exact -----------------------------------------------------------------------------------


@given(bound=st.floats(0.5, 100), samples=st.lists(st.floats(0, 1), min_size=1, max_size=20),
       worst=st.floats(1.01, 100))
def test_exact_judges_the_worst_sample(table, bound, samples, worst):
    table["b"] = Scale(bound, "ulps", "test")
    within = Metric.of([v * bound for v in samples])
    assert Exact("x", "b").decide(m(x=within)).outcome == Outcome.PASS
    one_over = Metric.of([*within.samples, worst * bound])  # a single bad sample is enough
    assert Exact("x", "b").decide(m(x=one_over)).outcome == Outcome.FAIL


# --- Monotone --------------------------------------------------------------------------------


@given(steps=st.lists(st.floats(0.1, 10), min_size=1, max_size=6), spread=st.floats(0, 0.01),
       increasing=st.booleans(), flip=st.data())
def test_monotone_passes_a_clear_trend_and_fails_a_clear_reversal(steps, spread, increasing,
                                                                    flip):
    sign = 1 if increasing else -1
    levels = np.concatenate([[0.0], np.cumsum(steps)]) * sign
    noise = constructed(0.0, spread)
    metrics = {f"x{i}": Metric.of(np.asarray(noise.samples) + v) for i, v in enumerate(levels)}
    check = Monotone(tuple(metrics), increasing=increasing)
    assert check.decide(m(**metrics)).outcome == Outcome.PASS
    k = flip.draw(st.integers(1, len(levels) - 1))  # reverse one step
    reversed_levels = levels.copy()
    reversed_levels[k:] -= 2 * (levels[k] - levels[k - 1])
    bad = {f"x{i}": Metric.of(np.asarray(noise.samples) + v)
           for i, v in enumerate(reversed_levels)}
    assert check.decide(m(**bad)).outcome == Outcome.FAIL


def test_monotone_flat_step_straddles_unless_allowed():
    flat = {"a": constructed(1.0, 0.1), "b": constructed(1.0, 0.1), "c": constructed(5.0, 0.1)}
    assert Monotone(("a", "b", "c")).decide(m(**flat)).outcome == Outcome.STRADDLE
    assert Monotone(("a", "b", "c"), allow_flat=True).decide(m(**flat)).outcome == Outcome.PASS


# --- Predicted -------------------------------------------------------------------------------


@given(mean=values, spread=st.floats(1e-3, 1.0), k=st.floats(1, 5), floor=st.floats(0, 1))
def test_predicted_within_k_standard_errors_plus_floor(table, mean, spread, k, floor):
    table["f"] = Scale(floor, "", "test")
    metric = constructed(mean, spread)
    se = metric.sd / math.sqrt(metric.n)
    check = Predicted("x", k=k, floor="f")
    close = measurement_of({"x": metric, "@prediction:x": mean + 0.9 * (k * se + floor)})
    far = measurement_of({"x": metric, "@prediction:x": mean - 1.1 * (k * se + floor) - 1e-9})
    assert check.decide(close).outcome == Outcome.PASS
    assert check.decide(far).outcome == Outcome.FAIL


# --- NeedsSteps ------------------------------------------------------------------------------


@given(required=st.integers(1, 10**6), have=st.integers(0, 10**6))
def test_needs_steps_is_short_exactly_below_the_requirement(required, have):
    outcome = NeedsSteps(required).decide(measurement_of({"@steps": have})).outcome
    assert outcome == (Outcome.PASS if have >= required else Outcome.SHORT)


# --- building measurements for an outcome ----------------------------------------------------


def every_check(table) -> list:
    table["r"] = Reading(2.10, "rounded", "test", single_run=True)
    table["t"] = Reading(3.29, "truncated", "test")
    table["s"] = Scale(0.005, "nats", "test")
    table["b"] = Scale(4, "ulps", "test")
    return [Near("x", "r"), Near("x", "t"), Above("x", 1.0), Below(("x", "y"), 0.0),
            Negligible(("x", "y"), "s"), Negligible("x", "s", negate=True), Exact("x", "b"),
            Monotone(("x", "y", "z")), Predicted("x"), NeedsSteps(1000)]


@pytest.mark.parametrize("index", range(10))
def test_complete_builds_what_it_promises(table, index):
    check = every_check(table)[index]
    for outcome in (Outcome.PASS, Outcome.FAIL, Outcome.SHORT):
        for assigned in check.complete(outcome, {}):
            filled = {n: constructed(0.0) for n in check.reads() if n not in assigned}
            assert check.decide(measurement_of({**filled, **assigned})).outcome == outcome


# --- verdicts --------------------------------------------------------------------------------


def test_verdict_logic_and_borderline(table):
    table["s"] = Scale(1.0, "", "test")
    rules = Rules(reproduced=(NeedsSteps(10), Above("a", 0.0), Negligible("b", "s")),
                  partly=(NeedsSteps(10), Above("a", 0.0)), instead="a is {a}")
    good, bad, edge = constructed(5.0, 0.01), constructed(-5.0, 0.01), constructed(0.0, 1.0)
    assert judge(rules, measurement_of({"a": good, "b": good, "@steps": 10})).verdict == \
        Verdict.PARTLY
    assert judge(rules, measurement_of({"a": good, "b": Metric.exact(0.0), "@steps": 10})
                 ).verdict == Verdict.REPRODUCED
    failed = judge(rules, measurement_of({"a": bad, "b": good, "@steps": 10}))
    assert failed.verdict == Verdict.NOT_REPRODUCED
    assert failed.holds_instead.startswith("a is -5.000")
    assert judge(rules, measurement_of({"a": good, "b": good, "@steps": 9})).verdict == \
        Verdict.NOT_EVALUATED
    # a straddling check that decides between reproduced and partly: undecided, then borderline
    early = judge(rules, measurement_of({"a": good, "b": constructed(1.0, 0.5), "@steps": 10}),
                  at_cap=False)
    assert early.undecided and not early.settled
    late = judge(rules, measurement_of({"a": good, "b": constructed(1.0, 0.5), "@steps": 10}))
    assert late.borderline and late.verdict == Verdict.PARTLY
    # a straddle that cannot change the verdict does not count
    moot = judge(rules, measurement_of({"a": bad, "b": edge, "@steps": 10}), at_cap=False)
    assert moot.settled and not moot.undecided and moot.verdict == Verdict.NOT_REPRODUCED


def test_measurement_of_a_table_is_kept():
    frame = pd.DataFrame({"seed": [1, 2]})
    assert Measurement(frame, {}).table is frame
