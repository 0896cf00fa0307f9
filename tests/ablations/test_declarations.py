"""Every registered claim's declaration, checked without running it: each verdict its rules
allow is reached by a constructed measurement (so none is unreachable), and its finding renders
within the length the report gives it."""

from __future__ import annotations

import pytest

from ablations.registry import FINDING_LIMIT, load_all
from ablations.verdicts import judge, reach, render

CLAIMS = load_all()
JUDGED = [c for c in CLAIMS.values() if c.rules is not None]


@pytest.mark.parametrize("claim", JUDGED, ids=lambda c: c.id)
def test_every_declared_verdict_is_reachable(claim):
    for verdict in claim.rules.declared():
        measurement = reach(claim.rules, verdict, list(claim.metric_units))
        assert measurement is not None, f"{claim.id}: no measurement gives '{verdict}'"
        assert judge(claim.rules, measurement).verdict == verdict
        finding = render(claim.finding, measurement.metrics)
        assert len(finding) <= FINDING_LIMIT, f"{claim.id}: finding of {len(finding)} chars"


@pytest.mark.parametrize("claim", list(CLAIMS.values()), ids=lambda c: c.id)
def test_declaration_is_json_and_names_resolve(claim):
    claim.validate()
    declaration = claim.declaration()
    assert declaration["headline"] in claim.metric_units
    assert len(claim.rules_hash()) == 16
