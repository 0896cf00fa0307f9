"""The one generic runner: for each selected claim, measure, judge, plot and write; skip what a
previous run finished with the same cache key."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablations.context import Context
from ablations.plotting import new_figure
from ablations.registry import Claim
from ablations.results import (
    RESULT_FILE,
    SUMMARY_FILE,
    cache_key,
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


def run_claim(claim: Claim, context: Context, out_dir: Path, key: str) -> dict[str, Any]:
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
    claim.plot(measurement, figure)
    record = result_record(
        claim,
        measurement,
        judgement,
        context=context.describe(),
        data_sha256=context.data_sha256,
        duration_s=time.monotonic() - start,
        key=key,
    )
    write_claim(out_dir, claim.id, record, measurement, figure)
    return record


def run_all(
    claims: list[Claim],
    context: Context,
    out_dir: Path,
    force: bool = False,
    report: Callable[[str], None] = print,
) -> list[Outcome]:
    recover(out_dir)
    started = time.monotonic()
    outcomes: list[Outcome] = []
    for number, claim in enumerate(claims, start=1):
        key = cache_key(claim, context.describe(), context.data_sha256)
        record = None if force else cached_record(out_dir, claim.id, key)
        cached = record is not None
        claim_start = time.monotonic()
        if record is None:
            record = run_claim(claim, context, out_dir, key)
        duration = record["duration_s"] if cached else time.monotonic() - claim_start
        outcomes.append(Outcome(claim.id, record["verdict"], duration, cached))
        elapsed = time.monotonic() - started
        eta = elapsed / number * (len(claims) - number)
        report(
            f"[{number}/{len(claims)}] {claim.id}: {record['verdict']}"
            f" ({'cached' if cached else f'{duration:.1f}s'}; elapsed {elapsed:.0f}s,"
            f" eta {eta:.0f}s)"
        )
        write_summary(out_dir, context, outcomes, time.monotonic() - started)
    return outcomes


def write_summary(out_dir: Path, context: Context, outcomes: list[Outcome], wall_s: float) -> None:
    """Summary of every claim folder present in out_dir, this run's first."""
    write_json_atomic(
        out_dir / SUMMARY_FILE,
        {
            "profile": context.profile.name,
            "seeds": context.seeds,
            "device": str(context.device),
            "versions": versions(),
            "data_sha256": context.data_sha256,
            "wall_s": round(wall_s, 1),
            "claims": [
                {
                    "id": o.claim_id,
                    "verdict": o.verdict,
                    "duration_s": round(o.duration_s, 3),
                    "cached": o.cached,
                }
                for o in outcomes
            ],
        },
    )
