"""Every registered claim has a test in tests/claims marked with its ID, and every such marker
names a registered claim. The markers are read as pytest resolves them (module, class and
function marks, parametrisations) by a small plugin in a `--collect-only` subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ablations.registry import load_all

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = '''
import json
import os


def pytest_collection_finish(session):
    marks = {item.nodeid: [list(mark.args) for mark in item.iter_markers("claim")]
             for item in session.items}
    with open(os.environ["CLAIM_MARKS_OUT"], "w") as handle:
        json.dump(marks, handle)
'''


def test_every_claim_has_a_marked_test(tmp_path: Path) -> None:
    (tmp_path / "claim_marks_plugin.py").write_text(PLUGIN)
    found = tmp_path / "marks.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)]),
           "OMP_NUM_THREADS": "1", "CLAIM_MARKS_OUT": str(found)}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "claim_marks_plugin",
         "tests/claims"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    marks = json.loads(found.read_text())
    assert all(len(args) == 1 for item in marks.values() for args in item), "claim(id) takes one ID"
    marked = {args[0] for item in marks.values() for args in item}
    registered = set(load_all())
    assert not marked - registered, f"markers naming no registered claim: {marked - registered}"
    assert not registered - marked, f"claims without a marked test: {registered - marked}"
