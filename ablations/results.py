"""The result files of a claim and how they are written.

`DIR/<id>/` holds result.json (the stable schema the report and the regression check read),
table.csv and figure.png. All three are written into a temporary folder that then replaces the
claim's folder, so a run killed at any moment leaves either the old complete result or the new
one, never a mixture, and an unfinished claim leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from ablations.measurement import Measurement, json_float
from ablations.registry import Claim
from ablations.verdicts import Judged, Verdict
from makemore.data import REPO_ROOT
from makemore.store import ENGINE_FILES

SCHEMA_VERSION = 2
RESULT_FILE = "result.json"
SUMMARY_FILE = "summary.json"
SHARED_SOURCE = REPO_ROOT.parent / "shared" / "source"
PACKAGE_VERSION = "0.2.0"


def code_version(claim: Claim) -> str:
    """Hash of the code a claim's result depends on: the engine, the ablation framework and its
    shared experiments, and the claim's own family module. Editing another family does not
    invalidate this claim's cache."""
    own = Path(sys.modules[claim.measure.__module__].__file__ or "")
    files = [REPO_ROOT / "makemore" / name for name in ENGINE_FILES]
    files += sorted((REPO_ROOT / "ablations").glob("*.py"))
    files += sorted((REPO_ROOT / "ablations" / "experiments").glob("*.py"))
    digest = hashlib.sha256()
    for path in [*files, own]:
        if not path.is_file():
            continue
        # a claim module outside the checkout (a plugin, a test's module) is named by its path
        name = path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path
        digest.update(name.as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cache_key(claim: Claim, context_description: dict[str, Any], data_sha256: str,
              code: str | None = None) -> str:
    """`code`: the claim's code version as read when the plan was made (default: now)."""
    payload = json.dumps(
        {
            "claim": claim.id,
            "rules": claim.rules_hash(),
            "context": context_description,
            "code": code_version(claim) if code is None else code,
            "data": data_sha256,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "makemore", "ablations"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout
    return out.stdout.strip() + ("+dirty" if dirty.strip() else "")


def versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "package": PACKAGE_VERSION,
    }


def quote(claim: Claim, limit: int = 900) -> str:
    """The cited lines of the source, when the shared sources are beside the checkout."""
    path = SHARED_SOURCE / claim.source.file
    if not path.is_file():
        return ""
    lines = path.read_text(encoding="utf-8").splitlines()
    picked = [lines[n - 1].strip() for n in claim.source.line_numbers() if 0 < n <= len(lines)]
    text = " ".join(picked)
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


@dataclass(frozen=True)
class Outcome:
    """What running a claim produced, before it is written."""

    measurement: Measurement
    verdict: Verdict
    judged: Judged | None  # None for a row of questions
    finding: str
    seeds: list[int]
    runs: dict[str, list[str]]  # template name -> member run keys


def check_records(claim: Claim, judged: Judged | None) -> list[dict[str, Any]]:
    if claim.rules is None or judged is None:
        return []
    roles = {c.name: [] for c in claim.rules.checks()}
    for role in ("reproduced", "partly"):
        for check in getattr(claim.rules, role):
            roles[check.name].append(role)
    return [
        {**check.record(), "roles": roles[check.name],
         "outcome": judged.decisions[check.name].outcome.value,
         "passed": judged.decisions[check.name].outcome.value == "pass",
         "sentence": judged.decisions[check.name].sentence}
        for check in claim.rules.checks()
    ]


def result_record(
    claim: Claim,
    outcome: Outcome,
    *,
    context: dict[str, Any],
    data_sha256: str,
    duration_s: float,
    key: str,
    code: str,
    commit: str,
) -> dict[str, Any]:
    """`code` and `commit` are the claim's code version and the commit when the run started:
    a file edited or a commit made during a long run must not be credited with results that
    the code before it computed (status then calls the result stale, for its code)."""
    m, judged = outcome.measurement, outcome.judged
    declaration = claim.declaration()
    return {
        "schema": SCHEMA_VERSION,
        "id": claim.id,
        "family": claim.family,
        "statement": claim.statement,
        "source": {
            "file": claim.source.file,
            "doc": claim.source.doc,
            "lines": claim.source.lines,
            "quote": quote(claim),
        },
        "verdict": outcome.verdict.value,
        "borderline": bool(judged and judged.borderline),
        "finding": outcome.finding,
        "headline": {
            "metric": claim.headline,
            "source_value": json_float(claim.source_values[claim.headline])
            if claim.headline in claim.source_values else None,
        },
        "checks": check_records(claim, judged),
        "holds_instead": judged.holds_instead if judged else "",
        "answers": claim.questions.render(m) if claim.questions else {},
        "metrics": {name: metric.to_json() for name, metric in m.metrics.items()},
        "source_values": {k: json_float(float(v)) for k, v in claim.source_values.items()},
        "predictions": {k: json_float(float(v)) for k, v in m.predictions.items()},
        "rules": declaration["rules"],
        "tolerances": declaration["tolerances"],
        "grid": declaration["grid"],
        "rules_hash": claim.rules_hash(),
        "code_version": code,
        "runs": outcome.runs,
        "profile": context["profile"]["name"],
        "profile_settings": context["profile"],
        "seeds": outcome.seeds,
        "steps": m.steps,
        "device": context["device"],
        "duration_s": round(duration_s, 3),
        "versions": versions(),
        "data_sha256": data_sha256,
        "git_commit": commit,
        "cache_key": key,
        "finished_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "files": {"table": "table.csv", "figure": "figure.png"},
    }


def write_claim(
    out_dir: Path, claim_id: str, record: dict[str, Any], table_csv: bytes, figure_png: bytes
) -> Path:
    """Write the three files into a temporary folder, then swap it in for DIR/<id>."""
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{claim_id}-", dir=out_dir))
    staging.chmod(0o755)  # mkdtemp makes it private; results are for readers
    try:
        (staging / "table.csv").write_bytes(table_csv)
        (staging / "figure.png").write_bytes(figure_png)
        (staging / RESULT_FILE).write_text(json.dumps(record, indent=2, allow_nan=False) + "\n")
        final = out_dir / claim_id
        retired = out_dir / f".old-{claim_id}"
        if retired.exists():
            shutil.rmtree(retired)
        if final.exists():
            final.rename(retired)
        staging.rename(final)
        shutil.rmtree(retired, ignore_errors=True)
        return final
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def recover(out_dir: Path) -> None:
    """Undo what a kill can leave: a half-written staging folder (removed) or a finished result
    moved aside but not yet replaced (moved back)."""
    if not out_dir.is_dir():
        return
    for path in out_dir.iterdir():
        if path.name.startswith(".tmp-"):
            shutil.rmtree(path, ignore_errors=True)
        elif path.name.startswith(".old-"):
            final = out_dir / path.name[len(".old-") :]
            if final.exists():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.rename(final)


class CorruptResultError(ValueError):
    pass


def read_result(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CorruptResultError(f"{path}: not a readable result file ({err})") from err
    if not isinstance(record, dict) or "id" not in record or "verdict" not in record:
        raise CorruptResultError(f"{path}: missing 'id' or 'verdict'")
    return record


def write_json_atomic(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(fd, 0o644)  # mkstemp makes it private; results are for readers
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle, indent=2, allow_nan=False)
            handle.write("\n")
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
