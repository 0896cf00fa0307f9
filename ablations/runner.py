"""The one generic runner: for each selected claim, measure, judge, plot and write; skip what a
previous run finished with the same cache key."""

from __future__ import annotations

import fcntl
import json
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ablations.context import Context
from ablations.plotting import new_figure
from ablations.registry import Claim
from ablations.results import (
    RESULT_FILE,
    SUMMARY_FILE,
    cache_key,
    git_commit,
    recover,
    result_record,
    versions,
    write_claim,
    write_json_atomic,
)
from makemore.progress import Progress


@dataclass
class Outcome:
    claim_id: str
    verdict: str
    duration_s: float
    cached: bool


def cached_record(out_dir: Path, claim_id: str, key: str) -> dict[str, Any] | None:
    path = out_dir / claim_id / RESULT_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return record if record.get("cache_key") == key else None


def run_claim(
    claim: Claim, context: Context, out_dir: Path, key: str, commit: str
) -> dict[str, Any]:
    start = time.monotonic()
    bar = Progress(None, claim.id, "training steps")
    context.progress = bar
    try:
        measurement = claim.measure(context)
    finally:
        context.progress = None
        if bar.done:
            bar.close()
    judgement = claim.judge(measurement, context)
    figure = new_figure()
    np.random.seed(0)  # seaborn's strip-plot jitter draws from numpy's global generator
    claim.plot(measurement, figure)
    record = result_record(
        claim,
        measurement,
        judgement,
        context=context.describe(),
        data_sha256=context.data_sha256,
        duration_s=time.monotonic() - start,
        key=key,
        commit=commit,
    )
    write_claim(out_dir, claim.id, record, measurement, figure)
    return record


class ClaimsFailedError(RuntimeError):
    """Some claims raised; the others finished and were written."""


def run_all(
    claims: list[Claim],
    context: Context,
    out_dir: Path,
    force: bool = False,
    report: Callable[[str], None] = print,
) -> list[Outcome]:
    """Run every claim in turn. A claim that raises writes nothing and is reported; the run goes
    on, and ClaimsFailedError names the failed claims at the end."""
    recover(out_dir)
    started = time.monotonic()
    outcomes: list[Outcome] = []
    failed: list[str] = []
    run_key = f"{os.getpid()}-{time.time_ns()}"  # this run's entry in summary.json's runs
    commit = git_commit()  # the code as it is now, before any claim runs
    for number, claim in enumerate(claims, start=1):
        key = cache_key(claim, context.describe(), context.data_sha256)
        record = None if force else cached_record(out_dir, claim.id, key)
        cached = record is not None
        claim_start = time.monotonic()
        if record is None:
            try:
                record = run_claim(claim, context, out_dir, key, commit)
            except Exception as err:  # one claim's bug must not lose the others' results
                failed.append(claim.id)
                report(f"[{number}/{len(claims)}] {claim.id}: FAILED: {type(err).__name__}: {err}")
                traceback.print_exc()
                continue
        duration = record["duration_s"] if cached else time.monotonic() - claim_start
        outcomes.append(Outcome(claim.id, record["verdict"], duration, cached))
        elapsed = time.monotonic() - started
        eta = elapsed / number * (len(claims) - number)
        report(
            f"[{number}/{len(claims)}] {claim.id}: {record['verdict']}"
            f" ({'cached' if cached else f'{duration:.1f}s'}; elapsed {elapsed:.0f}s,"
            f" eta {eta:.0f}s)"
        )
        write_summary(out_dir, context, outcomes, run_key, time.monotonic() - started)
    if failed:
        raise ClaimsFailedError(
            f"{len(failed)} claim(s) failed: {', '.join(failed)}; the others' results are written"
        )
    return outcomes


def write_summary(
    out_dir: Path, context: Context, outcomes: list[Outcome], run_key: str, wall_s: float
) -> None:
    """The folder's summary: this run's claims merged over those of earlier runs whose result
    folders still exist, so that `--only` runs, resumed runs and concurrent runner processes
    (serialised by a lock file) keep one complete summary. `wall_s` adds up the runs."""
    with open(out_dir / ".summary.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = out_dir / SUMMARY_FILE
        try:
            previous = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            previous = {}
        runs = {k: v for k, v in previous.get("runs", {}).items() if k != run_key}
        runs[run_key] = round(wall_s, 1)
        ours = {o.claim_id for o in outcomes}
        kept = [
            entry
            for entry in previous.get("claims", [])
            if entry.get("id") not in ours
            and (out_dir / entry.get("id", "") / RESULT_FILE).is_file()
        ]
        fresh = [
            {
                "id": o.claim_id,
                "verdict": o.verdict,
                "duration_s": round(o.duration_s, 3),
                "cached": o.cached,
            }
            for o in outcomes
        ]
        write_json_atomic(
            path,
            {
                "profile": context.profile.name,
                "seeds": context.seeds,
                "device": str(context.device),
                "versions": versions(),
                "data_sha256": context.data_sha256,
                "wall_s": round(sum(runs.values()), 1),
                "runs": runs,
                "finished_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "claims": sorted(kept + fresh, key=lambda entry: entry["id"]),
            },
        )
