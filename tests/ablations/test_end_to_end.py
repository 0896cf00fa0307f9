"""One claim of every family, run end to end by the real CLI at the tiny profile: the result
files are complete, follow the schema, and `status` then calls them fresh. (The full replays
and every claim's run are in `tox -e slow` and `tox -e quick`.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ablations.registry import load_all
from tests.ablations.test_framework import check_schema
from tests.ablations.written import finished

ROOT = Path(__file__).resolve().parents[2]
ONE_PER_FAMILY = ("init.expected-loss", "tanh.local-gradient", "kaiming.fan-in",
                  "stack.param-count", "diag.grad-data", "bn.standardise", "misc.no-grad",
                  "bias.explosion")


def test_one_claim_per_family_runs_end_to_end(tmp_path: Path) -> None:
    families = {claim.family for claim in load_all().values()}
    assert families == {claim_id.split(".")[0] for claim_id in ONE_PER_FAMILY}
    only = [arg for claim_id in ONE_PER_FAMILY for arg in ("--only", claim_id)]
    common = ["--profile", "tiny", *only, "--out", str(tmp_path / "out"), "--runs",
              str(tmp_path / "runs")]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "ablations", "run", *common], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    for claim_id in ONE_PER_FAMILY:
        check_schema(finished(tmp_path / "out" / claim_id))
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert sorted(entry["id"] for entry in summary["claims"]) == sorted(ONE_PER_FAMILY)
    status = subprocess.run([sys.executable, "-m", "ablations", "status", *common], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=300)
    assert status.returncode == 0, status.stdout
    assert status.stdout.splitlines()[-1] == f"{len(ONE_PER_FAMILY)} fresh, 0 stale, 0 missing"
