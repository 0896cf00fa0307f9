"""`python -m ablations status`: is each claim's written result what the code, the rules and
the data would produce now? Reviewers run it before trusting committed results."""

from __future__ import annotations

import json
from pathlib import Path

from ablations.context import Context
from ablations.registry import Claim
from ablations.results import RESULT_FILE, cache_key, code_version


def why_stale(claim: Claim, ctx: Context, record: dict) -> str:
    """Which of the cache key's parts moved since the result was written."""
    reasons = []
    if record.get("rules_hash") != claim.rules_hash():
        reasons.append("its rules changed")
    if record.get("code_version") != code_version(claim):
        reasons.append("its code changed")
    if record.get("data_sha256") != ctx.data_sha256:
        reasons.append("the data changed")
    if record.get("profile_settings") != ctx.describe()["profile"]:
        reasons.append("the profile changed")
    return ", ".join(reasons) or "its settings (seeds or device) changed"


def status(claims: list[Claim], ctx: Context, out_dir: Path) -> int:
    counts = {"fresh": 0, "stale": 0, "missing": 0}
    for claim in claims:
        path = out_dir / claim.id / RESULT_FILE
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            print(f"{claim.id:<28} missing")
            counts["missing"] += 1
            continue
        if record.get("cache_key") == cache_key(claim, ctx.describe(), ctx.data_sha256):
            counts["fresh"] += 1
            print(f"{claim.id:<28} fresh")
        else:
            counts["stale"] += 1
            print(f"{claim.id:<28} stale: {why_stale(claim, ctx, record)}")
    print(", ".join(f"{n} {state}" for state, n in counts.items()))
    return 0 if counts["fresh"] == len(claims) else 1
