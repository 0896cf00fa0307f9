"""The results folder's summary.json: every claim's verdict, merged over runs into one folder."""

from __future__ import annotations

import fcntl
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ablations.context import Context
from ablations.results import RESULT_FILE, SUMMARY_FILE, versions, write_json_atomic


def write_summary(out_dir: Path, ctx: Context, verdicts: dict[str, str], keys: dict[str, str],
                  wall_s: float, closing: bool = False) -> None:
    """Claims merged over those of earlier runs whose result folders still exist, so that
    `--only` runs, resumed runs and concurrent runner processes (serialised by a lock file)
    keep one complete summary. Called after each claim, and by `closing` at the end of a run,
    which adds the run's wall time (`wall_s` sums the runs)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    run_key = f"{os.getpid()}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}"
    with open(out_dir / ".summary.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = out_dir / SUMMARY_FILE
        try:
            previous = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            previous = {}
        runs = dict(previous.get("runs", {}))
        if closing:
            runs[run_key] = round(wall_s, 1)
        kept = [entry for entry in previous.get("claims", [])
                if entry.get("id") not in verdicts
                and (out_dir / entry.get("id", "") / RESULT_FILE).is_file()]
        fresh = [{"id": claim_id, "verdict": verdict, "cache_key": keys.get(claim_id, "")}
                 for claim_id, verdict in verdicts.items()]
        payload: dict[str, Any] = {
            "profile": ctx.profile.name,
            "seeds": ctx.seeds,
            "device": str(ctx.device),
            "versions": versions(),
            "data_sha256": ctx.data_sha256,
            "wall_s": round(sum(runs.values()), 1),
            "runs": runs,
            "finished_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "claims": sorted(kept + fresh, key=lambda entry: entry["id"]),
        }
        write_json_atomic(path, payload)
