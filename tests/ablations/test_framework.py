"""The ablation framework, driven in-process with fake claims (tests/ablations/fakes.py): the
result files and their schema, the metrics' intervals, the cache, and atomic writes with
recovery after failures and kills. The science is tested in tests/claims."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ablations.context import PROFILES, Context
from ablations.measurement import Measurement, Metric
from ablations.results import Outcome, cache_key, code_version, recover, result_record
from ablations.runner import ClaimsFailedError, Plan, cheapest_claims_first, run_all
from ablations.verdicts import Verdict, judge
from tests.ablations.fakes import STAGES, Fake, fake_claim, seed_values
from tests.ablations.written import finished, leftovers, strict_json, summary_ids

NON_FINITE = ("inf", "-inf", "nan")
EPS = float(np.finfo(np.float64).eps)


def quiet(_: str) -> None:
    """A report callback that drops the runner's progress lines."""


@pytest.fixture
def ctx() -> Context:
    return Context(PROFILES["quick"], n_seeds=3)


def number_or_non_finite(value: Any) -> bool:
    if isinstance(value, str):
        return value in NON_FINITE
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def decoded(value: float | str) -> float:
    return float(value)  # float("inf"), float("-inf"), float("nan") read the string forms back


def same_float(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def check_schema(record: dict[str, Any]) -> None:
    """The keys and types that reports/ and the regression check rely on (schema 2)."""
    assert record["schema"] == 2
    for key in ("id", "family", "statement", "verdict", "finding", "profile", "device",
                "git_commit", "rules_hash", "code_version"):
        assert isinstance(record[key], str) and record[key], key
    assert record["family"] == record["id"].split(".", 1)[0]
    assert record["verdict"] in {v.value for v in Verdict}
    assert isinstance(record["borderline"], bool)
    assert isinstance(record["source"]["file"], str) and record["source"]["file"].endswith(".txt")
    assert re.fullmatch(r"\d+(-\d+)?(, *\d+(-\d+)?)*", record["source"]["lines"])
    assert record["headline"]["metric"] in record["metrics"]
    for name, metric in record["metrics"].items():
        assert all(number_or_non_finite(metric[k]) for k in ("mean", "ci_low", "ci_high")), name
        assert isinstance(metric["n"], int) and metric["n"] == len(metric["samples"]) >= 1, name
        assert all(number_or_non_finite(v) for v in metric["samples"]), name
        assert isinstance(metric["unit"], str) and metric["kind"] in ("science", "numerics")
    for check in record["checks"]:
        assert set(check) >= {"name", "kind", "metrics", "params", "rule", "roles", "outcome",
                              "passed", "sentence"}
        assert check["passed"] == (check["outcome"] == "pass")
    for group in ("source_values", "predictions"):
        assert all(number_or_non_finite(v) for v in record[group].values()), group
    assert record["seeds"] and all(isinstance(seed, int) for seed in record["seeds"])
    assert isinstance(record["steps"], int) and record["steps"] >= 0
    assert isinstance(record["duration_s"], int | float) and record["duration_s"] >= 0
    assert all(isinstance(record["versions"][k], str) for k in ("python", "torch", "package"))
    assert re.fullmatch(r"[0-9a-f]{64}", record["data_sha256"])


# --- the result files ------------------------------------------------------------------------


def test_result_files_follow_the_schema(tmp_path: Path, ctx: Context) -> None:
    fake = Fake(
        extra={
            "overflow": Metric.exact(math.inf),
            "underflow": Metric.exact(-math.inf),
            "undefined": Metric.of([math.nan, 1.0, 2.0], "nats"),
        },
        predictions={"value": 3.0, "overflow": math.inf},
    )
    result = run_all([fake_claim("fake.schema", fake)], ctx, tmp_path, report=quiet)
    assert result.outcomes == {"fake.schema": "reproduced"} and not result.cached
    folder = tmp_path / "fake.schema"
    record = finished(folder)
    check_schema(record)
    metrics = record["metrics"]
    assert [metrics[k]["mean"] for k in ("overflow", "underflow", "undefined")] == [
        "inf", "-inf", "nan"
    ]
    assert record["predictions"] == {"value": 3.0, "overflow": "inf"}
    expected = Metric.of(seed_values(ctx), "nats")
    assert metrics["value"]["samples"] == list(expected.samples)
    assert (metrics["value"]["mean"], metrics["value"]["ci_low"], metrics["value"]["ci_high"]) \
        == (expected.mean, expected.ci_low, expected.ci_high)
    assert (record["profile"], record["seeds"], record["device"]) == ("quick", ctx.seeds, "cpu")
    assert record["data_sha256"] == ctx.data_sha256
    assert record["finding"] == f"The value is {expected.text(4).split(' (n=')[0]}."
    assert [c["outcome"] for c in record["checks"]] == ["pass"]
    assert len(pd.read_csv(folder / "table.csv")) == len(ctx.seeds)
    assert summary_ids(tmp_path) == ["fake.schema"]
    assert leftovers(tmp_path) == []


samples_ = st.lists(st.floats(), min_size=1, max_size=5)  # nan and +-inf included


@given(values=samples_, predictions=st.dictionaries(st.sampled_from(["value", "count"]),
                                                    st.floats(), max_size=2))
def test_any_float_is_written_as_strict_json(ctx, values, predictions) -> None:
    """Whatever the floats, result.json is strict JSON and reads back to the same numbers, with
    non-finite ones as the strings "inf", "-inf", "nan"."""
    claim = fake_claim("fake.floats")
    measurement = Measurement(pd.DataFrame({"x": [1]}),
                              {"value": Metric.of(values, "nats"), "count": Metric.exact(1)},
                              predictions)
    judged = judge(claim.rules, measurement)
    outcome = Outcome(measurement, judged.verdict, judged, "f", ctx.seeds, {})
    record = result_record(claim, outcome, context=ctx.describe(), data_sha256="0" * 64,
                           duration_s=0.5, key="k", code="c0de", commit="abc123")
    back = strict_json(json.dumps(record, allow_nan=False))  # what write_claim writes
    check_schema(back)
    written = back["metrics"]["value"]
    assert all(same_float(decoded(w), v) for w, v in zip(written["samples"], values, strict=True))
    assert same_float(decoded(written["mean"]), measurement.metrics["value"].mean)
    assert set(back["predictions"]) == set(predictions)
    assert all(same_float(decoded(back["predictions"][k]), v) for k, v in predictions.items())


def test_summary_merges_runs_into_one_folder(tmp_path: Path, ctx: Context) -> None:
    run_all([fake_claim("fake.a")], ctx, tmp_path, report=quiet)
    run_all([fake_claim("fake.b")], ctx, tmp_path, report=quiet)
    assert summary_ids(tmp_path) == ["fake.a", "fake.b"]
    summary = strict_json((tmp_path / "summary.json").read_text())
    assert summary["wall_s"] == pytest.approx(sum(summary["runs"].values()), abs=0.1)
    assert (summary["profile"], summary["seeds"]) == ("quick", ctx.seeds)
    # an entry whose folder is gone is dropped; a claim run again is listed once
    shutil.rmtree(tmp_path / "fake.a")
    run_all([fake_claim("fake.b"), fake_claim("fake.c")], ctx, tmp_path, report=quiet)
    assert summary_ids(tmp_path) == ["fake.b", "fake.c"]


# --- metrics: mean and bootstrap CI ----------------------------------------------------------

# beyond ~1e306 the sum of a few values overflows to inf (then the CI is inf by design)
samples = st.lists(st.floats(-1e100, 1e100), min_size=1, max_size=40)


@given(values=samples)
def test_ci_contains_the_mean_and_is_deterministic(values: list[float]) -> None:
    metric = Metric.of(values, "nats")
    assert metric.ci_low <= metric.mean <= metric.ci_high
    # every bootstrap mean is a mean of the values: inside their range, up to summation rounding
    slack = EPS * sum(abs(v) for v in values)
    assert min(values) - slack <= metric.ci_low and metric.ci_high <= max(values) + slack
    exact = math.fsum(values) / len(values)
    assert abs(metric.mean - exact) <= 2 * slack + EPS * abs(exact)
    assert (metric.n, metric.unit) == (len(values), "nats")
    assert Metric.of(list(values), "nats") == metric  # same input, same output (seeded bootstrap)


@given(value=st.floats(allow_nan=False))
def test_one_value_or_an_exact_value_has_a_zero_width_ci(value: float) -> None:
    for metric in (Metric.of([value]), Metric.exact(value, "nats")):
        assert metric.mean == metric.ci_low == metric.ci_high == value and metric.n == 1
    assert "(n=" not in str(Metric.exact(value, "nats"))


def test_non_finite_values_propagate_and_empty_input_is_refused() -> None:
    overflow = Metric.of([1.0, math.inf, 2.0])
    assert overflow.mean == overflow.ci_low == overflow.ci_high == math.inf and overflow.n == 3
    assert math.isnan(Metric.of([1.0, math.nan]).mean)
    with pytest.raises(ValueError):
        Metric.of([])
    dropped = Metric.finite([1.0, math.inf, 3.0, math.nan])
    assert (dropped.samples, dropped.dropped, dropped.mean) == ((1.0, 3.0), 2, 2.0)


def plug_in_normal_coverage(n: int, z: float = 1.959964) -> float:
    """Coverage of mean +- z * s_n / sqrt(n) for n normal samples, s_n the SD with divisor n
    (the spread the bootstrap of the mean resamples with): P(|T_{n-1}| < z sqrt((n-1)/n)), by
    Simpson's rule over the Student-t density."""
    df = n - 1
    bound = z * math.sqrt(df / n)
    t = np.linspace(0.0, bound, 2001)
    log_scale = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    density = np.exp(log_scale - (df + 1) / 2 * np.log1p(t**2 / df))
    step = bound / 2000
    integral = step / 3 * (density[0] + density[-1] + 4 * density[1:-1:2].sum()
                           + 2 * density[2:-1:2].sum())
    return 2 * integral


@pytest.mark.parametrize("n", [4, 16])  # the seeds of the quick and the full profile
def test_bootstrap_ci_covers_the_true_mean_at_its_expected_rate(n: int) -> None:
    """A 95% percentile-bootstrap CI of the mean covers the true mean of normal samples at the
    rate of the plug-in normal interval: about 0.92 with 16 seeds, but only about 0.81 with the
    quick profile's 4 (the bootstrap ignores the t correction), so quick-profile CIs are
    narrower than their nominal 95%."""
    repetitions, true_mean = 1500, 3.0
    rng = np.random.default_rng(n)
    hits = 0
    for _ in range(repetitions):
        metric = Metric.of(rng.normal(true_mean, 0.5, n))
        hits += metric.ci_low <= true_mean <= metric.ci_high
    coverage, expected = hits / repetitions, plug_in_normal_coverage(n)
    # the hit count is binomial(repetitions, expected): 3 SDs of the coverage (0.024 at n=4,
    # 0.020 at n=16) bound a deviation that chance alone gives with probability 0.003
    tolerance = 3 * math.sqrt(expected * (1 - expected) / repetitions)
    assert abs(coverage - expected) <= tolerance, (coverage, expected, tolerance)
    if n >= 16:
        assert abs(coverage - 0.95) <= 0.03 + tolerance  # roughly nominal with the full profile
    else:
        assert coverage < 0.95 - tolerance  # with 4 seeds it is not: say so, don't hide it


# --- the cache -------------------------------------------------------------------------------


def test_a_finished_claim_is_skipped_until_forced(tmp_path: Path, ctx: Context) -> None:
    fake = Fake()
    claim = fake_claim("fake.cache", fake)
    first = run_all([claim], ctx, tmp_path, report=quiet)
    written = (tmp_path / "fake.cache" / "result.json").read_bytes()
    second = run_all([claim], ctx, tmp_path, report=quiet)
    assert fake.calls == 1
    assert (first.cached, second.cached) == ([], ["fake.cache"])
    assert second.outcomes == {"fake.cache": "reproduced"}
    assert (tmp_path / "fake.cache" / "result.json").read_bytes() == written
    forced = run_all([claim], ctx, tmp_path, force=True, report=quiet)
    assert fake.calls == 2 and not forced.cached


class OtherData(Context):
    data_sha256 = "f" * 64  # another names file, without reading one


@pytest.mark.parametrize("change", ["seeds", "profile", "data"])
def test_a_new_context_or_data_reruns_the_claim(tmp_path: Path, ctx: Context, change: str) -> None:
    other = {
        "seeds": Context(PROFILES["quick"], n_seeds=4),
        "profile": Context(PROFILES["full"], n_seeds=3),
        "data": OtherData(PROFILES["quick"], n_seeds=3),
    }[change]
    fake = Fake(values=(1.0, 2.0))
    claim = fake_claim("fake.context", fake)
    run_all([claim], ctx, tmp_path, report=quiet)
    rerun = run_all([claim], other, tmp_path, report=quiet)
    assert fake.calls == 2 and not rerun.cached
    assert run_all([claim], other, tmp_path, report=quiet).cached and fake.calls == 2


contexts = st.tuples(st.sampled_from(["fake.a", "fake.b"]), st.sampled_from(sorted(PROFILES)),
                     st.integers(1, 64), st.sampled_from(["0" * 64, "1" * 64]))


@given(a=contexts, b=contexts)
def test_cache_key_changes_exactly_when_claim_context_or_data_do(a, b) -> None:
    def key(claim_id: str, profile: str, seeds: int, data: str) -> str:
        context = Context(PROFILES[profile], n_seeds=seeds)
        return cache_key(fake_claim(claim_id), context.describe(), data)

    assert (key(*a) == key(*b)) == (a == b)


CLAIM_MODULE = '''"""A claim family module outside the checkout (written by a test)."""
from tests.ablations.fakes import fake_claim

CLAIM = fake_claim({claim_id!r})
calls = []


def measure(ctx):
    calls.append(len(ctx.seeds))
    return CLAIM.measure(ctx)


measure.metric_units = CLAIM.metric_units
'''


def claim_module(folder: Path, monkeypatch, name: str, claim_id: str):
    """A fake claim whose measure lives in its own module file (as each family's does)."""
    path = folder / f"{name}.py"
    path.write_text(CLAIM_MODULE.format(claim_id=claim_id))
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return path, module, dataclasses.replace(module.CLAIM, measure=module.measure)


def test_editing_a_claim_module_reruns_only_its_claims(tmp_path: Path, monkeypatch,
                                                       ctx: Context) -> None:
    path_a, module_a, claim_a = claim_module(tmp_path, monkeypatch, "fake_family_a", "fake.a")
    _, module_b, claim_b = claim_module(tmp_path, monkeypatch, "fake_family_b", "fake.b")
    out = tmp_path / "out"
    run_all([claim_a, claim_b], ctx, out, report=quiet)
    version_b = code_version(claim_b)
    path_a.write_text(path_a.read_text() + "\n# an edit of family a\n")
    outcomes = run_all([claim_a, claim_b], ctx, out, report=quiet)
    assert outcomes.cached == ["fake.b"]
    assert (len(module_a.calls), len(module_b.calls)) == (2, 1)
    assert code_version(claim_b) == version_b


def test_a_module_edited_during_the_run_leaves_its_result_stale(tmp_path: Path, monkeypatch,
                                                                ctx: Context) -> None:
    """The result of code that was edited while it ran carries the version the run started
    with, so it is computed again, not credited to the edited code."""
    path, module, claim = claim_module(tmp_path, monkeypatch, "fake_family_c", "fake.c")
    before = code_version(claim)

    def measure_then_edit(context):
        path.write_text(path.read_text() + "\n# edited while the run measures\n")
        return module.measure(context)

    measure_then_edit.metric_units = module.measure.metric_units
    measure_then_edit.__module__ = module.__name__  # its code is the family module's
    edited = dataclasses.replace(claim, measure=measure_then_edit)
    out = tmp_path / "out"
    run_all([edited], ctx, out, report=quiet)
    record = json.loads((out / "fake.c" / "result.json").read_text())
    assert record["code_version"] == before != code_version(claim)
    run_all([claim], ctx, out, report=quiet)
    assert len(module.calls) == 2


# --- failures, atomic writes and recovery ----------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_a_failing_claim_leaves_nothing_and_the_run_goes_on(tmp_path: Path, ctx: Context,
                                                            stage: str) -> None:
    good = Fake()
    lines: list[str] = []
    with pytest.raises(ClaimsFailedError, match=r"^1 claim\(s\) failed: fake\.a-bad;") as error:
        run_all([fake_claim("fake.a-bad", Fake(fail_in=stage)), fake_claim("fake.b-good", good)],
                ctx, tmp_path, report=lines.append)
    assert "fake.b-good" not in str(error.value)
    assert good.calls == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [".summary.lock", "fake.b-good",
                                                          "summary.json"]
    finished(tmp_path / "fake.b-good")
    assert summary_ids(tmp_path) == ["fake.b-good"]
    assert any("fake.a-bad: FAILED: ValueError" in line for line in lines)


@pytest.mark.parametrize("stage", STAGES)
def test_a_failed_forced_rerun_keeps_the_finished_result(tmp_path: Path, ctx: Context,
                                                         stage: str) -> None:
    run_all([fake_claim("fake.keep")], ctx, tmp_path, report=quiet)
    folder = tmp_path / "fake.keep"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    broken = fake_claim("fake.keep", Fake(values=(9.0, 9.5), fail_in=stage))
    with pytest.raises(ClaimsFailedError, match="fake.keep"):
        run_all([broken], ctx, tmp_path, force=True, report=quiet)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert leftovers(tmp_path) == []


IDS = ["fake.a", "fake.b-c", "other.d"]
# what a kill can leave per claim: its folder, a finished result moved aside (.old-), a staging
# folder (.tmp-), or a combination
STATES = ["final", "old", "final+old", "staging", "final+staging", "old+staging"]


@given(states=st.dictionaries(st.sampled_from(IDS), st.sampled_from(STATES), max_size=3))
def test_recover_restores_what_a_kill_leaves(states: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory() as temp:
        out = Path(temp)
        for claim_id, state in states.items():
            parts = state.split("+")
            for part, name, content in (("final", claim_id, "new"), ("old", f".old-{claim_id}",
                                         "old"), ("staging", f".tmp-{claim_id}-x1", "half")):
                if part in parts:
                    (out / name).mkdir()
                    (out / name / "result.json").write_text(content)
        recover(out)
        expected = {
            claim_id: "new" if "final" in state else "old"
            for claim_id, state in states.items()
            if state != "staging"
        }
        assert {p.name: (p / "result.json").read_text() for p in out.iterdir()} == expected
    recover(Path(temp))  # a folder that does not exist: nothing to do


def test_kills_at_random_moments_lose_no_finished_result(tmp_path: Path, ctx: Context) -> None:
    """A forked runner re-writes finished results (force; its file writes slowed down so that
    kills land inside them) and is SIGKILLed at seeded random moments. After each kill every
    claim is complete as <id> or still as .old-<id>; recover()
    then leaves only complete folders, and the next run finds them all cached. Kills go on
    until one has landed inside a write (a .tmp- or .old- folder was left), so the recovery
    path is exercised, not only the quiet moments between claims."""
    claims = [fake_claim(f"fake.k{i}") for i in range(3)]
    run_all(claims, ctx, tmp_path, report=quiet)
    rng = random.Random(0)
    kills = interrupted_writes = 0
    while kills < 4 or (interrupted_writes == 0 and kills < 40):
        pid = os.fork()
        if pid == 0:  # the child: re-run until killed, each file write taking a while
            def slow_write(path: Path, data: bytes, write_bytes=Path.write_bytes) -> int:
                written = write_bytes(path, data)
                time.sleep(0.05)
                return written

            Path.write_bytes = slow_write  # type: ignore[method-assign]
            try:
                while True:
                    run_all(claims, ctx, tmp_path, force=True, report=quiet)
            finally:
                os._exit(1)
        time.sleep(rng.uniform(0.05, 0.8))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL  # it was running
        kills += 1
        interrupted_writes += bool(leftovers(tmp_path))
        for claim in claims:  # the folder, else the finished result moved aside
            folder = tmp_path / claim.id
            finished(folder if folder.exists() else tmp_path / f".old-{claim.id}", claim.id)
    assert interrupted_writes > 0
    recover(tmp_path)
    assert leftovers(tmp_path) == []
    assert run_all(claims, ctx, tmp_path, report=quiet).cached == [c.id for c in claims]
    assert summary_ids(tmp_path) == [c.id for c in claims]


# --- borderline checks: more seeds, then the cap -----------------------------------------------


def test_a_straddling_check_adds_seeds_until_it_decides_or_reaches_the_cap(tmp_path: Path) -> None:
    """Values 1 + (-1)^i * 4 / sqrt(i + 1): at 4 and 8 seeds the CI of the mean straddles 0, at
    16 it lies above it. With a cap of 8 the claim stays undecided and is marked borderline."""
    def values(ctx: Context) -> tuple[float, ...]:
        return tuple(1 + (-1) ** i * 4 / math.sqrt(i + 1) for i in range(len(ctx.seeds)))

    class Counting(Fake):
        def __init__(self) -> None:
            super().__init__(bound=0.0)
            self.seen: list[int] = []

    fake = Counting()
    claim = fake_claim("fake.borderline", fake)
    measure = claim.measure

    def growing(ctx: Context) -> Measurement:
        fake.values = values(ctx)
        fake.seen.append(len(ctx.seeds))
        return measure(ctx)

    growing.metric_units = claim.metric_units  # type: ignore[attr-defined]
    claim = dataclasses.replace(claim, measure=growing)
    wide = dataclasses.replace(PROFILES["quick"], seeds=4, max_seeds=16)
    run_all([claim], Context(wide), tmp_path / "wide", report=quiet)
    record = strict_json((tmp_path / "wide" / "fake.borderline" / "result.json").read_text())
    assert fake.seen == [4, 8, 16] and len(record["seeds"]) == 16
    assert (record["verdict"], record["borderline"]) == ("reproduced", False)
    fake.seen.clear()
    capped = dataclasses.replace(wide, max_seeds=8)
    run_all([claim], Context(capped), tmp_path / "capped", report=quiet)
    record = strict_json((tmp_path / "capped" / "fake.borderline" / "result.json").read_text())
    assert fake.seen == [4, 8]
    assert (record["verdict"], record["borderline"]) == ("not reproduced", True)
    assert record["checks"][0]["outcome"] == "straddle"


def seed_steps(group: list[Any]) -> int:
    return len(group) * group[0].steps


def plan_of(costs: list[int], needs: list[set[int]]) -> Plan:
    claims = [SimpleNamespace(id=f"c{i}") for i in range(len(needs))]
    groups = [[SimpleNamespace(steps=cost)] for cost in costs]
    return Plan(claims, {}, {}, {}, groups, {f"c{i}": sorted(s) for i, s in enumerate(needs)})


@given(data=st.data(), costs=st.lists(st.integers(1, 10**6), min_size=1, max_size=8))
def test_ordering_a_plan_keeps_every_claim_and_what_it_needs(data, costs) -> None:
    """The order is a permutation: the same groups, the same claims, each claim waiting for the
    same group objects; the claims are listed in the order their groups are all trained."""
    needs = data.draw(st.lists(st.sets(st.integers(0, len(costs) - 1)), min_size=1, max_size=8))
    work = plan_of(costs, needs)
    ordered = cheapest_claims_first(work, seed_steps)
    assert sorted(map(id, ordered.groups)) == sorted(map(id, work.groups))
    assert sorted(c.id for c in ordered.claims) == sorted(c.id for c in work.claims)
    for claim in work.claims:
        assert ({id(ordered.groups[i]) for i in ordered.needs[claim.id]} ==
                {id(work.groups[i]) for i in work.needs[claim.id]})
    ready = [max(ordered.needs[c.id], default=-1) for c in ordered.claims]
    assert ready == sorted(ready)


@pytest.mark.parametrize("costs, needs, first", [
    ([100, 1], [{0}, {1}], "c1"),  # the cheaper claim, although listed second
    ([30, 20], [{0}, {0}, {0}, {1}], "c0"),  # 30 finishing three claims beat 20 for one
    ([5, 5], [set(), {0}], "c0"),  # nothing to train: first
])
def test_the_claim_finishing_soonest_per_seed_step_goes_first(costs, needs, first) -> None:
    assert cheapest_claims_first(plan_of(costs, needs), seed_steps).claims[0].id == first
