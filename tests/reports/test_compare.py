"""`python -m reports compare`: same-seed reruns are compared sample by sample and catch small
shifts; other builds or seeds fall back to the seed spread without false alarms; numerics only
against their bound; rule, verdict and borderline changes; one-line errors with exit code 2."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from makemore.stats import mean_ci  # the runner's own bootstrap: what Metric.to_json stores
from reports.__main__ import main
from reports.compare import (
    BORDERLINE_CHANGED,
    BOUND_EXCEEDED,
    CLAIM_MISSING,
    KIND_CHANGED,
    METRIC_MISSING,
    MOVED,
    NEW_CLAIM,
    OK,
    RULE_CHANGED,
    SAME_SEED,
    SEED_SPREAD,
    UNCHECKED,
    UNIT_CHANGED,
    VERDICT_CHANGED,
    Row,
    compare,
    compare_science,
)
from reports.results import Metric
from reports.schema import load_results
from reports.stats import (
    ALPHA,
    spread_allowed,
    student_critical,
    student_two_sided,
    within_same_seed,
    within_spread,
)
from tests.reports.factory import check, metric, of, record, some_claims, write_results

REPO = Path(__file__).resolve().parents[2]


def sampled(values: np.ndarray | list[float], name: str = "m") -> Metric:
    e = mean_ci(values)
    return Metric(name, e.mean, e.ci_low, e.ci_high, e.n, "nats",
                  samples=tuple(float(v) for v in values))


def rows_of(base: Path, new: Path) -> dict[tuple[str, str], Row]:
    return {(r.claim, r.metric): r for r in compare(load_results(base), load_results(new))}


def statuses(base: Path, new: Path) -> dict[tuple[str, str], str]:
    return {k: r.status for k, r in rows_of(base, new).items()}


# --- the t distribution behind the seed-spread rule -------------------------------------------

@pytest.mark.parametrize(("df", "alpha", "table"), [
    (1, 0.05, 12.706), (2, 0.05, 4.303), (3, 0.05, 3.182), (6, 0.05, 2.447), (10, 0.05, 2.228),
    (5, 0.01, 4.032), (30, 0.01, 2.750), (120, 0.05, 1.980)])
def test_student_quantiles_match_tables(df: int, alpha: float, table: float) -> None:
    assert student_critical(alpha, df) == pytest.approx(table, abs=5e-4)


def test_documented_critical_values() -> None:
    # the numbers reports/stats.py and reports/README.md quote
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


# --- same-seed mode: power --------------------------------------------------------------------

@settings(max_examples=60)
@given(mean=st.floats(1e-3, 1e4), sign=st.sampled_from([1.0, -1.0]), n=st.integers(2, 16),
       spread=st.floats(0, 0.02), seed=st.integers(0, 2**32 - 1))
def test_same_seed_catches_a_five_percent_shift(mean: float, sign: float, n: int, spread: float,
                                               seed: int) -> None:
    """Any metric measured to better than 1% (CI half-width) that moves by 5% is caught (so is
    0.5%), and the same samples rounded differently (float32 reassociation: a few ulps each)
    are not."""
    rng = np.random.default_rng(seed)
    values = sign * mean * (1 + spread * rng.standard_normal(n))
    base = sampled(values)
    if (base.ci_high - base.ci_low) / 2 >= 0.01 * abs(base.mean):
        return  # not measured to 1%
    assert not within_same_seed(base, sampled(values * 1.05))
    assert not within_same_seed(base, sampled(values * 0.95))
    assert not within_same_seed(base, sampled(values * 1.005))
    rounded = values * (1 + 4 * 2.0**-23 * rng.choice([-1.0, 1.0], size=n))
    assert within_same_seed(base, sampled(rounded))


def test_gain_five_thirds_to_one_and_a_half_is_caught_seed_by_seed() -> None:
    """The deep network's default gain changed from 5/3 to 1.5: a metric moved 8.85 [8.72,
    8.98] -> 7.94 [7.84, 8.04] over the same 4 seeds. The seed-spread rule (t_6 = 12.0) allows
    about +-1.2 and misses it; the same-seed rule allows 0.2% of the seed SD plus 1e-5 relative
    per seed and catches it."""
    base = sampled([8.66, 8.80, 8.90, 9.04])
    new = sampled([7.80, 7.92, 7.96, 8.08])
    assert within_spread(base, new) and 1.1 < spread_allowed(base, new) < 1.3
    assert compare_science("deep", base, new, SAME_SEED).status == MOVED
    assert compare_science("deep", base, new, SEED_SPREAD).status == OK


def test_non_finite_samples_must_match_exactly() -> None:
    inf = sampled([math.inf, 2.0])
    assert within_same_seed(inf, sampled([math.inf, 2.0]))
    assert not within_same_seed(inf, sampled([-math.inf, 2.0]))
    assert not within_same_seed(inf, sampled([1e300, 2.0]))
    assert within_same_seed(sampled([math.nan, 1.0]), sampled([math.nan, 1.0]))


# --- seed-spread mode: no false alarms ----------------------------------------------------------

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
    assert within_spread(base, new), (base, new, spread_allowed(base, new))


def test_false_alarm_rate_is_near_its_level() -> None:
    """At a testable level (5%) the rule's rate over 400 re-seeded pairs (4 vs 4 seeds, the
    quick profile) is the level, the pooled t being exact for normal data: binomial sd
    sqrt(.05 * .95 / 400) = 1.1%, so [1.5%, 9%] is about 3 sd each side."""
    rng = np.random.default_rng(1)
    pairs = [(sampled(rng.normal(size=4)), sampled(rng.normal(size=4))) for _ in range(400)]
    rate = np.mean([not within_spread(b, n, alpha=0.05) for b, n in pairs])
    assert 0.015 <= rate <= 0.09


def test_deterministic_metrics_allow_only_float_noise() -> None:
    exact = sampled([12097.0])
    assert within_spread(exact, sampled([12097.0 * (1 + 1e-9)]))
    assert not within_spread(exact, sampled([12098.0]))
    assert within_spread(sampled([0.0]), sampled([1e-10]))
    assert not within_spread(sampled([0.0]), sampled([1e-6]))
    # all 4 seeds equal on both sides: nothing to pool, so deterministic
    assert not within_spread(sampled([0.0] * 4), sampled([1.0] * 4))
    # one side with spread lends it to the other (pooled): [0,0,0,0] vs [0,0,0,1] is noise
    assert within_spread(sampled([0.0] * 4), sampled([0.0, 0.0, 0.0, 1.0]))


# --- modes on result folders --------------------------------------------------------------------

def test_identical_rerun_is_compared_seed_by_seed(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    base = write_results(tmp_path / "base", some_claims())
    assert main(["compare", str(base), str(base)]) == 0
    out = capsys.readouterr().out
    assert "no regression" in out and "mode: 4 claim(s) same-seed" in out
    assert all(s in (OK, UNCHECKED) for s in statuses(base, base).values())
    assert rows_of(base, base)[("init.expected-loss", "loss")].mode == SAME_SEED


@pytest.mark.parametrize(("change", "reason"), [
    ({"versions": {"python": "3.11.7", "torch": "2.14.0+cpu", "package": "0.2.0"}},
     "torch 2.13.0+cpu → 2.14.0+cpu"),
    ({"versions": {"python": "3.11.7", "torch": "2.13.0+cpu", "package": "0.2.0",
                   "platform": "aarch64"}}, "platform - → aarch64"),
    ({"seeds": [1, 2, 3, 4]}, "seeds differ"),
    ({"device": "cuda"}, "device cpu → cuda"),
])
def test_other_build_or_seeds_fall_back_to_seed_spread(tmp_path: Path, change: dict[str, object],
                                                      reason: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    base = write_results(tmp_path / "base", [record("init.x")])
    shifted = {"loss": metric(3.3, 3.28, 3.31, n=4, samples=[3.28, 3.29, 3.31, 3.33]),
               "count": metric(0.0, unit="ulps", kind="numerics")}
    new = write_results(tmp_path / "new", [record("init.x", metrics=shifted, **change)])
    row = rows_of(base, new)[("init.x", "loss")]
    assert row.mode == SEED_SPREAD and row.status == OK  # seed noise, not a regression
    assert main(["compare", str(base), str(new)]) == 0
    assert f"mode: init.x seed-spread ({reason})" in capsys.readouterr().out
    package_only = write_results(tmp_path / "pkg", [record("init.x", versions={
        "python": "3.11.7", "torch": "2.13.0+cpu", "package": "0.3.0"})])
    assert rows_of(base, package_only)[("init.x", "loss")].mode == SAME_SEED  # the code under test


# --- numerics: only against their bound ---------------------------------------------------------

def numerics_claim(value: float, outcome: str = "pass") -> dict[str, object]:
    checks = [check("train_max_over_bound within 1", ["train_max_over_bound"], outcome)]
    return record("bn.bias-zero-grad", checks=checks, metrics={
        "train_max_over_bound": metric(value, unit="", kind="numerics"),
        "loss": metric(3.3, 3.28, 3.31, n=4, samples=[3.28, 3.29, 3.31, 3.32])},
        versions={"python": "3.11.7", "torch": "2.13.0+cpu" if value < 0.02 else "2.13.0+cu12",
                  "package": "0.2.0"})


def test_numerics_are_compared_with_their_bound_not_for_equality(tmp_path: Path) -> None:
    """bn.bias-zero-grad's rounding residue moved 0.0194 -> 0.0264 on another machine; the old
    rule allowed +-2.7e-08 (an n = 1 interval). It is still under its bound: ok."""
    base = write_results(tmp_path / "b", [numerics_claim(0.0194)])
    moved = write_results(tmp_path / "n", [numerics_claim(0.0264)])
    row = rows_of(base, moved)[("bn.bias-zero-grad", "train_max_over_bound")]
    assert row.status == OK and row.allowed == "check: train_max_over_bound within 1"
    broken = write_results(tmp_path / "x", [numerics_claim(1.5, "fail")])
    row = rows_of(base, broken)[("bn.bias-zero-grad", "train_max_over_bound")]
    assert row.status == BOUND_EXCEEDED and row.details == ("train_max_over_bound within 1: fail",)
    unchecked = record("x.y", metrics={"seconds": metric(1.0, unit="s", kind="numerics")})
    other = record("x.y", metrics={"seconds": metric(9.0, unit="s", kind="numerics")})
    a, b = write_results(tmp_path / "a", [unchecked]), write_results(tmp_path / "c", [other])
    assert statuses(a, b)[("x.y", "seconds")] == UNCHECKED  # a timing: listed, never failed
    assert main(["compare", str(a), str(b)]) == 0


# --- rule, verdict, borderline and the rest -------------------------------------------------------

def test_rule_change_fails_unless_accepted(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    base = write_results(tmp_path / "base", some_claims())
    claims = some_claims()
    claims[0]["rules"]["checks"][0]["params"] = {"metric": "loss", "reading": "ln 27 as 3.30"}
    claims[0]["grid"] = {"lr": [0.1, 0.01]}
    claims[0]["rules_hash"] = "0000aaaa0000bbbb"
    new = write_results(tmp_path / "new", claims)
    row = rows_of(base, new)[("init.expected-loss", "rules")]
    assert row.status == RULE_CHANGED
    assert row.details == (
        "rules_hash a1b2c3d4e5f60718 → 0000aaaa0000bbbb",
        "rules.checks[\"loss matches the source's 3.29\"].params.reading added: "
        "\"ln 27 as 3.30\"",
        "grid.lr added: [0.1, 0.01]")
    assert main(["compare", str(base), str(new), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "RULE CHANGED" in out and "grid.lr added" in out and "1 regression(s)" in out
    assert main(["compare", str(base), str(new), "--accept-rule-changes"]) == 0
    assert "1 rule change(s) accepted" in capsys.readouterr().out
    claims[0]["rules"] = json.loads(json.dumps(some_claims()[0]["rules"]))
    claims[0]["grid"] = {}
    hash_only = write_results(tmp_path / "hash", claims)  # e.g. a run template changed
    assert "outside its rules, tolerances and grid" in rows_of(base, hash_only)[
        ("init.expected-loss", "rules")].details[1]


def test_verdict_borderline_missing_unit_kind_and_new_claim(tmp_path: Path) -> None:
    base = write_results(tmp_path / "base", some_claims())
    claims = some_claims()
    claims[0]["verdict"] = "not reproduced"
    claims[0]["metrics"]["loss"]["unit"] = "bits"
    claims[0]["metrics"]["count"]["kind"] = "science"
    claims[1]["borderline"] = False
    claims[2]["metrics"] = {}
    new = write_results(tmp_path / "new", [*claims, record("zeta.new")])
    found = statuses(base, new)
    assert found[("init.expected-loss", "verdict")] == VERDICT_CHANGED
    assert found[("init.expected-loss", "loss")] == UNIT_CHANGED
    assert found[("init.expected-loss", "count")] == KIND_CHANGED
    assert found[("tanh.saturation", "borderline")] == BORDERLINE_CHANGED
    assert found[("bias.linear", "gap")] == METRIC_MISSING
    assert found[("zeta.new", "-")] == NEW_CLAIM  # reported, not failed
    for path in (new / "tanh.saturation").iterdir():
        path.unlink()
    (new / "tanh.saturation").rmdir()
    (new / "summary.json").unlink()
    assert statuses(base, new)[("tanh.saturation", "-")] == CLAIM_MISSING
    only_new = write_results(tmp_path / "only-new", [*some_claims(), record("zeta.new")])
    assert main(["compare", str(base), str(only_new)]) == 0


def test_metric_moved_in_same_seed_mode_fails(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    base = write_results(tmp_path / "base", some_claims())
    claims = some_claims()
    claims[0]["metrics"]["loss"] = of([3.28, 3.29, 3.31, 3.33])  # one seed 0.3% off: 0.5 SD
    new = write_results(tmp_path / "new", claims)
    assert statuses(base, new)[("init.expected-loss", "loss")] == MOVED
    assert main(["compare", str(base), str(new), "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "MOVED" in out and "1 regression(s)" in out and "count" not in out  # quiet


@pytest.mark.parametrize("damage", ["truncate", "delete", "not-an-object", "no-metrics",
                                    "schema-1"])
def test_corrupt_or_missing_file_is_one_line_exit_2(tmp_path: Path, damage: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    base = write_results(tmp_path / "base", some_claims())
    new = write_results(tmp_path / "new", some_claims())
    path = new / "bias.linear" / "result.json"
    record_ = json.loads(path.read_text())
    if damage == "truncate":
        path.write_text(path.read_text()[:40])
    elif damage == "delete":
        path.unlink()
    elif damage == "not-an-object":
        path.write_text("[]")
    elif damage == "no-metrics":
        path.write_text(json.dumps({k: v for k, v in record_.items() if k != "metrics"}))
    else:
        path.write_text(json.dumps({**record_, "schema": 1}))
    assert main(["compare", str(base), str(new)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"error: {path}") and captured.err.count("\n") == 1
    assert "Traceback" not in captured.err and captured.out == ""


# --- real results ---------------------------------------------------------------------------------

# one claim per family, and the claim whose metric the test shifts
SOME = ("init.expected-loss", "tanh.local-gradient", "kaiming.mlp", "stack.param-count",
        "diag.grad-data", "bn.standardise", "misc.no-grad", "bias.todo")


def run_tiny(out: Path, threads: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    only = [arg for claim_id in SOME for arg in ("--only", claim_id)]
    done = subprocess.run([sys.executable, "-m", "ablations", "run", "--profile", "tiny", *only,
                           "--out", str(out), "--runs", str(out.parent / f"runs-{threads}")],
                          cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_real_runs_on_one_and_two_threads_agree_and_a_shift_is_caught(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The tiny profile of a claim of every family, run on 1 and on 2 threads: same-seed mode,
    no false alarm. A 5% shift put into one trained metric of the real files is caught."""
    run_tiny(tmp_path / "one", 1)
    run_tiny(tmp_path / "two", 2)
    assert main(["compare", str(tmp_path / "one"), str(tmp_path / "two")]) == 0
    out = capsys.readouterr().out
    assert "no regression" in out and " seed-spread (" not in out
    path = tmp_path / "two" / "kaiming.mlp" / "result.json"
    record_ = json.loads(path.read_text())
    samples = [v * 1.05 for v in record_["metrics"]["val_kaiming"]["samples"]]
    record_["metrics"]["val_kaiming"] = of(samples)
    path.write_text(json.dumps(record_))
    assert statuses(tmp_path / "one", tmp_path / "two")[("kaiming.mlp", "val_kaiming")] == MOVED
