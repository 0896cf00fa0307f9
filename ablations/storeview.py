"""`python -m ablations runs`: what the run store holds and who uses it, and pruning it."""

from __future__ import annotations

import shutil
from collections import defaultdict

from ablations.context import Context, Profile
from ablations.experiments.runs import member_specs
from ablations.registry import load_all
from makemore.store import RunStore, canonical


def users(profile: Profile) -> dict[str, set[str]]:
    """Member-run key -> the claims that use it under the profile, at every seed count the
    profile may reach."""
    ctx = Context(profile, n_seeds=profile.max_seeds)
    found: dict[str, set[str]] = defaultdict(set)
    for claim in load_all().values():
        for template in claim.runs.values():
            for member in member_specs(template, ctx):
                found[member.key].add(claim.id)
    return found


def describe(spec: dict) -> str:
    config = spec["config"]
    train = spec["train"]
    if spec["model"] == "mlp":
        shape = f"mlp w1={config['w1']:.3g} bn={config['batchnorm']} {config['nonlinearity']}"
    else:
        shape = (f"deep depth={config['depth']} gain={config['gain']:.3g} "
                 f"bn={config['batchnorm']} {config['nonlinearity']}")
    return f"{shape} lr={train['lr']:g} {train['optimizer']} {train['steps']:,} steps"


def list_runs(store: RunStore, profile: Profile) -> int:
    """One line per configuration: seeds, steps, size, and the claims that use it."""
    used = users(profile)
    rows: dict[str, dict] = {}
    for sidecar in store.sidecars():
        spec = sidecar["spec"]
        row = rows.setdefault(canonical(spec), {"spec": spec, "seeds": 0, "bytes": 0,
                                                "claims": set()})
        row["seeds"] += 1
        row["bytes"] += sidecar.get("bytes", 0)
        row["claims"] |= used.get(sidecar["key"], set())
    total = sum(r["bytes"] for r in rows.values())
    for row in sorted(rows.values(), key=lambda r: describe(r["spec"])):
        claims = ", ".join(sorted(row["claims"])) or f"unused under profile {profile.name}"
        print(f"{describe(row['spec'])}  x{row['seeds']} seeds  "
              f"{row['bytes'] / 2**20:.1f} MB  {claims}")
    print(f"{sum(r['seeds'] for r in rows.values())} member runs, {len(rows)} configurations, "
          f"{total / 2**20:.1f} MB in {store.root}")
    return 0


def prune(store: RunStore, profile: Profile) -> int:
    """Delete member runs no claim of the profile uses, and leftover checkpoints and locks."""
    used = users(profile)
    removed = freed = 0
    for sidecar in list(store.sidecars()):
        if sidecar["key"] not in used:
            freed += sidecar.get("bytes", 0)
            store.remove(sidecar["key"])
            removed += 1
    for folder in ("checkpoints", "locks"):
        shutil.rmtree(store.root / folder, ignore_errors=True)
    print(f"removed {removed} member runs ({freed / 2**20:.1f} MB) not used under profile "
          f"{profile.name}, and all checkpoints and locks")
    return 0
