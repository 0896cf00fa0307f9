"""`python -m reports compare`: identical and re-seeded re-runs pass, injected regressions fail,
corrupt files end in one line with exit code 2, and the deviation rule is calibrated."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from makemore.stats import mean_ci  # the runner's own bootstrap: what Metric.of stores
from reports.__main__ import main
from reports.compare import (
    ALPHA,
    CLAIM_MISSING,
    METRIC_MISSING,
    MOVED,
    NEW_CLAIM,
    OK,
    UNIT_CHANGED,
    VERDICT_CHANGED,
    allowed_deviation,
    compare,
    sample_sd,
    student_critical,
    student_two_sided,
    within,
)
from reports.results import Metric, load_results
from tests.reports.factory import metric, record, three_claims, write_claim, write_results


def sampled(values: np.ndarray, name: str = "m") -> Metric:
    e = mean_ci(values)
    return Metric(name, e.mean, e.ci_low, e.ci_high, e.n, "nats")


def statuses(base: Path, new: Path) -> dict[tuple[str, str], str]:
    return {(r.claim, r.metric): r.status for r in compare(load_results(base), load_results(new))}


# --- the t distribution behind the rule -------------------------------------------------------

@pytest.mark.parametrize(("df", "alpha", "table"), [
    (1, 0.05, 12.706), (2, 0.05, 4.303), (3, 0.05, 3.182), (6, 0.05, 2.447), (10, 0.05, 2.228),
    (5, 0.01, 4.032), (30, 0.01, 2.750), (120, 0.05, 1.980)])
def test_student_quantiles_match_tables(df: int, alpha: float, table: float) -> None:
    assert student_critical(alpha, df) == pytest.approx(table, abs=5e-4)


def test_documented_critical_values() -> None:
    # the numbers the module docstring and reports/README.md quote
    assert ALPHA == pytest.approx(2e-5)
    assert student_critical(ALPHA, 6) == pytest.approx(12.03, abs=0.01)
    assert student_critical(ALPHA, 30) == pytest.approx(5.05, abs=0.01)
    assert student_critical(ALPHA, 10**6) == pytest.approx(4.285, abs=0.01)  # df capped at 1000
    assert 1 - student_two_sided(4.265, 6) == pytest.approx(5.3e-3, rel=0.02)


@given(t=st.floats(0, 1e3), df=st.integers(1, 300))
def test_student_distribution_is_a_distribution(t: float, df: int) -> None:
    p = student_two_sided(t, df)
    assert 0 <= p <= 1 + 1e-12
    assert student_two_sided(t + 0.5, df) >= p - 1e-12  # non-decreasing in t
    assert student_two_sided(t, df + 1) >= p - 1e-9  # lighter tails with more df


def test_sd_recovered_from_the_bootstrap_ci() -> None:
    rng = np.random.default_rng(0)
    for n in (2, 3, 4, 8, 16):
        ratios = [sample_sd(sampled(x)) ** 2 / np.var(x, ddof=1)
                  for x in rng.normal(size=(150, n))]
        # per draw s_recovered^2 / s^2 averages 1 exactly at n = 2, 0.94-1.08 at n = 3..16
        # (the bootstrap's discreteness; standard error 0.007 here). Without the
        # n / sqrt(n - 1) correction n = 4 would give 0.71.
        assert 0.92 <= np.mean(ratios) <= 1.10, n


# --- re-runs that must pass -------------------------------------------------------------------

def test_identical_rerun_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = write_results(tmp_path / "base", three_claims())
    assert main(["compare", str(base), str(base)]) == 0
    out = capsys.readouterr().out
    assert "no regression" in out and "init.expected-loss  loss" in out
    assert all(s == OK for s in statuses(base, base).values())


@settings(max_examples=60)
@given(mean=st.floats(-100, 100), scale=st.floats(1e-6, 1e3), n_base=st.integers(1, 16),
       n_new=st.integers(2, 16), seed=st.integers(0, 2**32 - 1),
       shape=st.sampled_from(["normal", "lognormal", "uniform"]))
def test_reseeded_rerun_of_unchanged_science_passes(mean: float, scale: float, n_base: int,
                                                   n_new: int, seed: int, shape: str) -> None:
    """Baseline and new are independent seed sets from one distribution (the science did not
    change): the rule's per-metric false-alarm rate is 2e-5, so no example may fail."""
    rng = np.random.default_rng(seed)
    draw = {"normal": rng.normal, "lognormal": lambda size: rng.lognormal(0, 0.5, size),
            "uniform": lambda size: rng.uniform(-1, 1, size)}[shape]
    base = sampled(mean + scale * draw(size=n_base))
    new = sampled(mean + scale * draw(size=n_new))
    assert within(base, new), (base, new, allowed_deviation(base, new))


def test_false_alarm_rate_is_near_its_level() -> None:
    """At a testable level (5%) the rule's rate over 400 re-seeded pairs (4 vs 4 seeds, the
    quick profile) is the level: binomial sd sqrt(.05 * .95 / 400) = 1.1%, so [1.5%, 9%] is
    about 3 sd each side. The normal rule on the bootstrap se (k = 1.96) raises 13-15% here."""
    rng = np.random.default_rng(1)
    pairs = [(sampled(rng.normal(size=4)), sampled(rng.normal(size=4))) for _ in range(400)]
    rate = np.mean([not within(b, n, alpha=0.05) for b, n in pairs])
    assert 0.015 <= rate <= 0.09
    naive = np.mean([abs(n.mean - b.mean) > 1.96 * math.hypot(
        (b.ci_high - b.ci_low) / 3.92, (n.ci_high - n.ci_low) / 3.92) for b, n in pairs])
    assert naive > rate  # the bootstrap's small-n CI understates the spread


def test_real_rerun_with_other_seed_counts_passes(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The runner's real files (the example claim) with 2 and 3 seeds: same science."""
    from ablations.context import PROFILES, Context
    from ablations.registry import select
    from ablations.runner import run_all

    for seeds in (2, 3):
        run_all(select(["init.expected-loss"]), Context(PROFILES["quick"], n_seeds=seeds),
                tmp_path / f"s{seeds}", report=lambda line: None)
    assert main(["compare", str(tmp_path / "s2"), str(tmp_path / "s3")]) == 0
    assert "no regression" in capsys.readouterr().out


# --- injected regressions ---------------------------------------------------------------------

def test_metric_moved_far_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = write_results(tmp_path / "base", three_claims())
    new = write_results(tmp_path / "new", three_claims())
    moved = record("init.expected-loss", metrics={"loss": metric(3.6, 3.58, 3.61, n=4),
                                                  "count": metric(12097.0, unit="")})
    write_claim(new, moved)
    assert statuses(base, new)[("init.expected-loss", "loss")] == MOVED
    assert main(["compare", str(base), str(new), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "MOVED" in out and "1 regression(s)" in out and "count" not in out  # quiet


def test_deterministic_metrics_allow_only_float_noise() -> None:
    exact = Metric("c", 12097.0, 12097.0, 12097.0, 1)
    assert within(exact, Metric("c", 12097.0 * (1 + 1e-9), 12097.0, 12097.0, 1))
    assert not within(exact, Metric("c", 12098.0, 12098.0, 12098.0, 1))
    zero = Metric("z", 0.0, 0.0, 0.0, 1)
    assert within(zero, Metric("z", 1e-10, 1e-10, 1e-10, 1))
    assert not within(zero, Metric("z", 1e-6, 1e-6, 1e-6, 1))
    # all 4 seeds equal on both sides (zero-width CIs): nothing to pool, so deterministic
    assert not within(Metric("d", 0.0, 0.0, 0.0, 4), Metric("d", 1.0, 1.0, 1.0, 4))
    # one side with spread lends it to the other (pooled): [0,0,0,0] vs [0,0,0,1] is noise
    assert within(Metric("d", 0.0, 0.0, 0.0, 4), sampled(np.array([0.0, 0.0, 0.0, 1.0])))


@pytest.mark.parametrize(("base", "new", "same"), [
    ("inf", "inf", True), ("-inf", "-inf", True), ("nan", "nan", True), ("inf", "-inf", False),
    ("inf", 1e308, False), (2.0, "nan", False)])
def test_non_finite_must_match_exactly(base: float | str, new: float | str, same: bool,
                                       tmp_path: Path) -> None:
    write_results(tmp_path / "b", [record("x.y", metrics={"m": metric(base, n=4)})])
    write_results(tmp_path / "n", [record("x.y", metrics={"m": metric(new, n=4)})])
    assert statuses(tmp_path / "b", tmp_path / "n")[("x.y", "m")] == (OK if same else MOVED)


def test_verdict_flip_missing_claim_metric_unit_and_new_claim(tmp_path: Path) -> None:
    base = write_results(tmp_path / "base", three_claims())
    claims = three_claims()
    claims[0]["verdict"] = "not reproduced"
    claims[1]["metrics"] = {"saturated": metric(0.25, 0.2, 0.3, n=4, unit="percent")}
    claims[2]["metrics"] = {}
    new = write_results(tmp_path / "new", [*claims, record("zeta.new")])
    shutil_claim = new / "tanh.saturation"
    found = statuses(base, new)
    assert found[("init.expected-loss", "verdict")] == VERDICT_CHANGED
    assert found[("tanh.saturation", "saturated")] == UNIT_CHANGED
    assert found[("bias.linear", "gap")] == METRIC_MISSING
    assert found[("zeta.new", "-")] == NEW_CLAIM  # reported, not failed
    for path in shutil_claim.iterdir():
        path.unlink()
    shutil_claim.rmdir()
    (new / "summary.json").unlink()
    assert statuses(base, new)[("tanh.saturation", "-")] == CLAIM_MISSING
    only_new = write_results(tmp_path / "only-new", [*three_claims(), record("zeta.new")])
    assert main(["compare", str(base), str(only_new)]) == 0


@pytest.mark.parametrize("damage", ["truncate", "delete", "not-an-object", "no-metrics"])
def test_corrupt_or_missing_file_is_one_line_exit_2(tmp_path: Path, damage: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    base = write_results(tmp_path / "base", three_claims())
    new = write_results(tmp_path / "new", three_claims())
    path = new / "bias.linear" / "result.json"
    if damage == "truncate":
        path.write_text(path.read_text()[:40])
    elif damage == "delete":
        path.unlink()
    elif damage == "not-an-object":
        path.write_text("[]")
    else:
        path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items()
                                    if k != "metrics"}))
    assert main(["compare", str(base), str(new)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"error: {path}") and captured.err.count("\n") == 1
    assert "Traceback" not in captured.err and captured.out == ""
