"""The regression check: `python -m reports compare BASELINE_DIR NEW_DIR`, row by row.

Per claim, the mode: same-seed (same seeds and same build: each sample is compared with the
baseline's sample of the same seed, tightly) or seed-spread (otherwise: the means within the
pooled seed spread); reports.stats states both rules. Per metric, by its kind: a science metric
by the claim's mode, a numerics metric (rounding residues, timings) only against its own bound:
the check that reads it must still pass. Per claim also: the verdict, the borderline flag, and
the pre-registered declaration (RULE CHANGED, reports.rulediff says what changed).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from reports.results import NUMERICS, ClaimResult, Metric, ResultSet
from reports.rulediff import rule_changes
from reports.stats import (
    same_seed_allowed,
    spread_allowed,
    within_same_seed,
    within_spread,
)

SAME_SEED, SEED_SPREAD = "same-seed", "seed-spread"
OK, NEW_CLAIM, NEW_METRIC, UNCHECKED = "ok", "new claim", "new metric", "no check"
MOVED, VERDICT_CHANGED, BORDERLINE_CHANGED = "MOVED", "VERDICT CHANGED", "BORDERLINE CHANGED"
RULE_CHANGED, CLAIM_MISSING, METRIC_MISSING = "RULE CHANGED", "CLAIM MISSING", "METRIC MISSING"
UNIT_CHANGED, KIND_CHANGED, BOUND_EXCEEDED = "UNIT CHANGED", "KIND CHANGED", "BOUND EXCEEDED"
FAILURES = (MOVED, VERDICT_CHANGED, BORDERLINE_CHANGED, RULE_CHANGED, CLAIM_MISSING,
            METRIC_MISSING, UNIT_CHANGED, KIND_CHANGED, BOUND_EXCEEDED)
IGNORED_VERSIONS = ("package",)  # bumps with the code under test, not a change of build


@dataclass(frozen=True)
class Row:
    claim: str
    metric: str
    mode: str
    baseline: str
    new: str
    allowed: str
    status: str
    details: tuple[str, ...] = ()

    def failed(self, accept_rule_changes: bool = False) -> bool:
        if self.status == RULE_CHANGED:
            return not accept_rule_changes
        return self.status in FAILURES


def show(metric: Metric | None) -> str:
    if metric is None:
        return "-"
    if metric.n == 1 or metric.ci_low == metric.ci_high:
        return f"{metric.mean:.6g} (n={metric.n})"
    return f"{metric.mean:.6g} [{metric.ci_low:.4g}, {metric.ci_high:.4g}] (n={metric.n})"


def build_differences(base: ClaimResult, new: ClaimResult) -> list[str]:
    """Why two runs of a claim are not the same computation (empty: they are)."""
    found = [] if base.seeds == new.seeds else ["seeds differ"]
    for key in sorted((set(base.versions) | set(new.versions)) - set(IGNORED_VERSIONS)):
        before, after = base.versions.get(key, "-"), new.versions.get(key, "-")
        if before != after:
            found.append(f"{key} {before} → {after}")
    for label, before, after in (("device", base.device, new.device),
                                 ("data", base.data_sha256[:12], new.data_sha256[:12])):
        if before != after:
            found.append(f"{label} {before} → {after}")
    if dict(base.profile_settings) != dict(new.profile_settings):
        found.append(f"profile {base.profile} → {new.profile} (settings differ)")
    return found


def compare_numerics(claim: str, base: Metric, new: Metric, before: ClaimResult,
                     after: ClaimResult) -> Row:
    """Against its own bound only: every check that reads it and passed in the baseline must
    still pass."""
    reading = [c for c in after.checks if new.name in c.metrics]
    if not reading:
        return Row(claim, new.name, NUMERICS, show(base), show(new), "no check reads it",
                   UNCHECKED)
    passed_before = {c.name for c in before.checks if c.passed}
    broken = [c for c in reading if c.name in passed_before and not c.passed]
    return Row(claim, new.name, NUMERICS, show(base), show(new),
               "check: " + "; ".join(c.name for c in reading),
               BOUND_EXCEEDED if broken else OK, tuple(c.sentence for c in broken))


def compare_science(claim: str, base: Metric, new: Metric, mode: str) -> Row:
    if mode == SAME_SEED and base.n == new.n:
        if base.dropped != new.dropped:
            return Row(claim, new.name, mode, show(base), show(new), "same samples", MOVED,
                       (f"dropped (non-finite) samples {base.dropped} → {new.dropped}",))
        allowed = f"±{max(same_seed_allowed(base, new)):.3g} per seed"
        status = OK if within_same_seed(base, new) else MOVED
        return Row(claim, new.name, mode, show(base), show(new), allowed, status)
    if mode == SAME_SEED:
        mode = f"{SEED_SPREAD} (sample counts differ)"
    finite = math.isfinite(base.mean) and math.isfinite(new.mean)
    allowed = f"±{spread_allowed(base, new):.3g}" if finite else "exact"
    return Row(claim, new.name, mode, show(base), show(new), allowed,
               OK if within_spread(base, new) else MOVED)


def compare_metric(claim: str, base: Metric | None, new: Metric | None, mode: str,
                   before: ClaimResult, after: ClaimResult) -> Row:
    if base is None or new is None:
        name = (base or new).name  # type: ignore[union-attr]
        return Row(claim, name, mode, show(base), show(new), "-",
                   NEW_METRIC if base is None else METRIC_MISSING)
    if base.unit != new.unit:
        return Row(claim, new.name, mode, f"{show(base)} {base.unit}", f"{show(new)} {new.unit}",
                   "-", UNIT_CHANGED)
    if base.kind != new.kind:
        return Row(claim, new.name, mode, f"{show(base)} {base.kind}", f"{show(new)} {new.kind}",
                   "-", KIND_CHANGED)
    if new.kind == NUMERICS:
        return compare_numerics(claim, base, new, before, after)
    return compare_science(claim, base, new, mode)


def compare_claim(base: ClaimResult | None, new: ClaimResult | None) -> list[Row]:
    if base is None:
        assert new is not None
        return [Row(new.id, "-", "-", "-", new.verdict, "-", NEW_CLAIM)]
    if new is None:
        return [Row(base.id, "-", "-", base.verdict, "-", "-", CLAIM_MISSING)]
    why = build_differences(base, new)
    mode = SEED_SPREAD if why else SAME_SEED
    rows = [Row(base.id, "verdict", mode, base.verdict, new.verdict, "same",
                OK if base.verdict == new.verdict else VERDICT_CHANGED, tuple(why))]
    if base.borderline != new.borderline:
        rows.append(Row(base.id, "borderline", mode, str(base.borderline).lower(),
                        str(new.borderline).lower(), "same", BORDERLINE_CHANGED))
    changes = rule_changes(base, new)
    if changes:
        rows.append(Row(base.id, "rules", mode, base.rules_hash, new.rules_hash, "same",
                        RULE_CHANGED, tuple(changes)))
    names = [m.name for m in base.metrics]
    names += [m.name for m in new.metrics if m.name not in names]
    rows += [compare_metric(base.id, base.metric(n), new.metric(n), mode, base, new)
             for n in names]
    return rows


def compare(base: ResultSet, new: ResultSet) -> list[Row]:
    """Rows for every claim of the baseline (in its order), then the claims only in NEW."""
    new_by_id, base_ids = new.by_id(), {c.id for c in base.claims}
    rows = [r for c in base.claims for r in compare_claim(c, new_by_id.get(c.id))]
    rows += [r for c in new.claims if c.id not in base_ids for r in compare_claim(None, c)]
    return rows


def failures(rows: Iterable[Row], accept_rule_changes: bool = False) -> list[Row]:
    return [r for r in rows if r.failed(accept_rule_changes)]
