"""Running claims: plan the work as a graph (runs -> claims), execute it in this process or on a
Dask cluster (ablations.cluster), and write each claim's files as it finishes.

The plan resolves every selected claim's declared runs, leaves out claims whose result is
already written under the same cache key, and groups the member runs nobody has trained into
ensembles. Each group is trained once; a claim starts when its groups are done. A claim whose
deciding check is borderline asks for more seeds (ablations.verdicts); those runs are trained
where the claim runs.
"""

from __future__ import annotations

import io
import json
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ablations.context import Context
from ablations.experiments.runs import member_specs, missing_groups, train_group, trained
from ablations.figures import new_figure
from ablations.registry import Claim
from ablations.results import (
    RESULT_FILE,
    Outcome,
    cache_key,
    code_version,
    git_commit,
    recover,
    result_record,
    write_claim,
)
from ablations.summary import write_summary
from ablations.verdicts import Verdict, judge, render
from makemore.progress import GraphProgress
from makemore.runs import MemberSpec, build
from makemore.throughput import matmul_flops

FINDING_LIMIT = 200


@dataclass
class Written:
    """A claim's files, ready to be written by whoever holds the results folder."""

    claim_id: str
    record: dict[str, Any]
    table_csv: bytes
    figure_png: bytes


@dataclass
class Plan:
    claims: list[Claim]  # to compute
    keys: dict[str, str]  # claim id -> cache key
    codes: dict[str, str]  # claim id -> its code version, read once, into its key
    cached: dict[str, dict[str, Any]]  # claim id -> the finished record
    groups: list[list[MemberSpec]]  # member runs to train, one ensemble each
    needs: dict[str, list[int]] = field(default_factory=dict)  # claim id -> group indices

    def seed_steps(self) -> int:
        return sum(len(g) * g[0].steps for g in self.groups)


def cached_record(out_dir: Path, claim_id: str, key: str) -> dict[str, Any] | None:
    path = out_dir / claim_id / RESULT_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return record if record.get("cache_key") == key else None


def plan(claims: list[Claim], ctx: Context, out_dir: Path, force: bool = False) -> Plan:
    codes = {c.id: code_version(c) for c in claims}
    keys = {c.id: cache_key(c, ctx.describe(), ctx.data_sha256, codes[c.id]) for c in claims}
    cached = {}
    if not force:
        for claim in claims:
            record = cached_record(out_dir, claim.id, keys[claim.id])
            if record is not None:
                cached[claim.id] = record
    todo = [c for c in claims if c.id not in cached]
    groups = missing_groups(ctx, [t for c in todo for t in c.runs.values()])
    where = {m.key: i for i, g in enumerate(groups) for m in g}
    needs = {}
    for claim in todo:
        wanted = {where[m.key] for t in claim.runs.values() for m in member_specs(t, ctx)
                  if m.key in where}
        needs[claim.id] = sorted(wanted)
    return cheapest_claims_first(Plan(todo, keys, codes, cached, groups, needs))


def training_flops(group: list[MemberSpec]) -> float:
    """The matmul FLOPs of training a group: what its training time follows, roughly (a deep
    seed-step costs several MLP seed-steps)."""
    model, _ = build(group[:1])
    return len(group) * group[0].steps * matmul_flops(model, group[0].spec["train"]["batch_size"])


def cheapest_claims_first(work: Plan,
                          cost_of: Callable[[list[MemberSpec]], float] = training_flops) -> Plan:
    """Order claims, and the groups they wait for, so that finished claims arrive as early as
    possible: repeatedly the groups of the claim whose remaining training cost, shared among
    all the claims they would finish, is least. An interrupted long run then leaves the most
    claims done."""
    cost = [cost_of(g) for g in work.groups]
    order: list[int] = []
    claims: list[Claim] = []
    left = list(work.claims)

    def price(claim: Claim) -> float:
        adding = set(order) | set(work.needs[claim.id])
        finishes = sum(set(work.needs[c.id]) <= adding for c in left)
        return sum(cost[i] for i in work.needs[claim.id] if i not in order) / finishes

    while left:
        order += [i for i in work.needs[min(left, key=price).id] if i not in order]
        ready = [c for c in left if set(work.needs[c.id]) <= set(order)]
        claims += ready
        left = [c for c in left if c not in ready]
    order += [i for i in range(len(work.groups)) if i not in order]
    position = {old: new for new, old in enumerate(order)}
    needs = {c: sorted(position[i] for i in wanted) for c, wanted in work.needs.items()}
    claims.sort(key=lambda c: max(needs[c.id], default=-1))  # in the order they become ready
    return Plan(claims, work.keys, work.codes, work.cached, [work.groups[i] for i in order],
                needs)


def describe_plan(work: Plan) -> str:
    """What a run would do, by network: ensembles, member runs, seed-steps."""
    rows: dict[str, list[int]] = {}
    for group in work.groups:
        spec = group[0].spec
        name = spec["model"] if spec["model"] == "mlp" else f"deep, depth {spec['config']['depth']}"
        row = rows.setdefault(name, [0, 0, 0])
        row[0] += 1
        row[1] += len(group)
        row[2] += len(group) * group[0].steps
    lines = [f"{name:<16} {n:>4} ensembles {m:>6} member runs {steps:>15,} seed-steps"
             for name, (n, m, steps) in sorted(rows.items())]
    lines.append(f"{len(work.claims)} claims to compute, {len(work.cached)} already done; "
                 f"{work.seed_steps():,} seed-steps to train")
    return "\n".join(lines)


def measure_and_judge(claim: Claim, ctx: Context) -> Outcome:
    """Measure over the context's seeds; while a deciding check straddles its edge, double the
    seeds up to the profile's cap and measure again."""
    n = len(ctx.seeds)
    cap = max(n, ctx.profile.max_seeds)
    while True:
        at = ctx.with_seeds(n)
        runs = {name: trained(at, t) for name, t in claim.runs.items()}
        args = {"runs": runs} if claim.runs else {}
        m = claim.measure(at, **args, **claim.grid)
        claim.check_measurement(m)
        finding = render(claim.finding, m.metrics)
        if len(finding) > FINDING_LIMIT:
            finding = finding[: FINDING_LIMIT - 1].rstrip() + "…"
        used = {name: r.keys for name, r in runs.items()}
        if claim.rules is None:
            return Outcome(m, Verdict.ANSWERED, None, finding, at.seeds, used)
        judged = judge(claim.rules, m, at_cap=n >= cap)
        if judged.settled:
            return Outcome(m, judged.verdict, judged, finding, at.seeds, used)
        n = min(cap, 2 * n)


def compute_claim(claim: Claim, ctx: Context, key: str, code: str, commit: str) -> Written:
    """Everything about one claim, as bytes and a record: it runs anywhere (a Dask worker
    too) and writes nothing."""
    start = time.monotonic()
    outcome = measure_and_judge(claim, ctx)
    figure = new_figure()
    np.random.seed(0)  # seaborn's jitter draws from numpy's global generator
    claim.figure(outcome.measurement, figure)
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=100)
    table = outcome.measurement.table.to_csv(index=False).encode()
    record = result_record(claim, outcome, context=ctx.describe(), data_sha256=ctx.data_sha256,
                           duration_s=time.monotonic() - start, key=key, code=code,
                           commit=commit)
    return Written(claim.id, record, table, png.getvalue())


class ClaimsFailedError(RuntimeError):
    """Some claims raised; the others finished and were written."""


@dataclass
class RunReport:
    outcomes: dict[str, str] = field(default_factory=dict)  # claim id -> verdict
    cached: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    groups_trained: int = 0
    member_runs_trained: int = 0


def run_all(claims: list[Claim], ctx: Context, out_dir: Path, force: bool = False,
            report: Callable[[str], None] = print, workers: int = 0,
            scheduler: str | None = None) -> RunReport:
    """Plan, execute (here, or on Dask when `workers` or `scheduler` is given), write."""
    recover(out_dir)
    commit = git_commit()  # the code as it is when the run starts
    work = plan(claims, ctx, out_dir, force)
    result = RunReport(cached=sorted(work.cached))
    for claim_id, record in sorted(work.cached.items()):
        result.outcomes[claim_id] = record["verdict"]
    progress = GraphProgress(len(work.groups), len(work.claims), work.seed_steps())
    started = time.monotonic()

    def finished(written: Written) -> None:
        write_claim(out_dir, written.claim_id, written.record, written.table_csv,
                    written.figure_png)
        result.outcomes[written.claim_id] = written.record["verdict"]
        progress.claim_done(written.claim_id, written.record["verdict"])
        write_summary(out_dir, ctx, {written.claim_id: written.record["verdict"]}, work.keys,
                      0.0)

    def failed(claim_id: str, err: BaseException, trace: str = "") -> None:
        result.failed.append(claim_id)
        report(f"{claim_id}: FAILED: {type(err).__name__}: {err}")
        if trace:
            report(trace)
        progress.claim_done(claim_id, "failed")

    if workers or scheduler:
        from ablations.cluster import execute_on_dask

        execute_on_dask(work, ctx, commit, finished, failed, progress, result,
                        workers=workers, scheduler=scheduler)
    else:
        execute_here(work, ctx, commit, finished, failed, progress, result)
    progress.close()
    write_summary(out_dir, ctx, result.outcomes, work.keys, time.monotonic() - started,
                  closing=True)
    if result.failed:
        raise ClaimsFailedError(f"{len(result.failed)} claim(s) failed: "
                                f"{', '.join(result.failed)}; the others' results are written")
    return result


def execute_here(work: Plan, ctx: Context, commit: str, finished: Callable[[Written], None],
                 failed: Callable[..., None], progress: GraphProgress, result: RunReport) -> None:
    """The graph in this process: each group once, each claim as soon as its groups are done."""
    ctx.progress = progress.seed_steps
    waiting = list(work.claims)
    try:
        for done in range(len(work.groups) + 1):
            ready = [c for c in waiting if all(i < done for i in work.needs[c.id])]
            for claim in ready:  # as soon as its groups are trained
                waiting.remove(claim)
                try:
                    finished(compute_claim(claim, ctx, work.keys[claim.id],
                                           work.codes[claim.id], commit))
                except Exception as err:  # one claim's bug must not lose the others' results
                    failed(claim.id, err, traceback.format_exc())
            if done < len(work.groups):
                train_group(ctx, work.groups[done])
                result.groups_trained += 1
                result.member_runs_trained += len(work.groups[done])
                progress.run_done()
    finally:
        ctx.progress = None
