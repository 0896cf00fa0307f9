"""`python -m ablations` as a user runs it, in subprocesses: one-line errors with exit code 2,
the claim list against CLAIMS.md, Ctrl-C (exit 130, nothing half-written) and SIGKILL at random
moments followed by a resume."""

from __future__ import annotations

import importlib.util
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ablations.registry import load_all
from tests.ablations.written import finished, leftovers, strict_json, summary_ids

ROOT = Path(__file__).resolve().parents[2]
CLAIMS_MD = ROOT.parent / "shared" / "CLAIMS.md"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
PAIR = ["--only", "init.expected-loss", "--only", "kaiming.mlp"]


def ablations(*args: str, module: str = "ablations", env: dict[str, str] | None = None,
              **popen) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, env=env or ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, subprocess.CompletedProcess[str]]:
    """The quick invocations, started at once (each spends most of its time importing)."""
    out = tmp_path_factory.mktemp("cli") / "out"
    invocations = {
        "list-json": ["list", "--json"],
        "unknown-claim": ["run", "--only", "nosuch.claim", "--out", str(out)],
        "seeds-0": ["run", "--seeds", "0", "--out", str(out)],
        "profile-nope": ["run", "--profile", "nope", "--out", str(out)],
        "no-scheduler": ["run", "--only", "init.expected-loss", "--scheduler",
                         "tcp://127.0.0.1:9", "--out", str(out)],
    }
    started = {name: ablations(*args) for name, args in invocations.items()}
    done = {}
    for name, process in started.items():
        stdout, stderr = process.communicate(timeout=300)
        done[name] = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    assert not out.exists()  # no error wrote anything
    return done


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def test_unknown_claim_exits_2_listing_the_valid_ids(results) -> None:
    run = results["unknown-claim"]
    line = one_line(run.stderr)
    assert run.returncode == 2 and run.stdout == ""
    assert "nosuch.claim" in line and "valid IDs:" in line
    listed = line.split("valid IDs:", 1)[1].split(",")
    assert [claim_id.strip() for claim_id in listed] == list(load_all())


# without the optional Dask extra, --scheduler is refused for that reason, in one line too
NO_SCHEDULER = (("tcp://127.0.0.1:9", "no Dask scheduler answers")
                if importlib.util.find_spec("distributed") else ("--scheduler", "need Dask"))


@pytest.mark.parametrize("name, option, detail", [
    ("seeds-0", "--seeds", "must be at least 1"),
    ("profile-nope", "--profile", "invalid choice: 'nope'"),
    ("no-scheduler", *NO_SCHEDULER),
])
def test_bad_option_exits_2_with_one_line(results, name: str, option: str, detail: str) -> None:
    run = results[name]
    line = one_line(run.stderr)
    assert run.returncode == 2 and run.stdout == ""
    assert option in line and detail in line


def claims_md_ids() -> list[str]:
    rows = re.findall(r"^\|\s*([a-z0-9_-]+\.[a-z0-9_.-]+)\s*\|", CLAIMS_MD.read_text(), re.M)
    return sorted(rows)


def test_list_json_has_every_claim_of_claims_md(results) -> None:
    run = results["list-json"]
    assert run.returncode == 0, run.stderr
    rows = strict_json(run.stdout)
    ids = [row["id"] for row in rows]
    assert len(set(ids)) == len(ids)
    assert ids == list(load_all())
    for row in rows:
        assert row["family"] == row["id"].split(".")[0] and row["statement"]
        assert re.fullmatch(r"[LN]:\d+(-\d+)?(, *\d+(-\d+)?)*", row["source"]), row
    if not CLAIMS_MD.is_file():
        pytest.skip("../shared/CLAIMS.md is not beside this checkout")
    assert sorted(ids) == claims_md_ids()


def test_ctrl_c_exits_130_and_leaves_nothing_half_written(tmp_path: Path) -> None:
    """SIGINT while the second claim is measuring: exit 130 with the one-line message; the first
    claim's result is kept, nothing of the second is left."""
    started, out = tmp_path / "started", tmp_path / "out"
    # a shell ignores SIGINT in the background jobs it starts, and the ignoring is inherited:
    # the CLI under test gets Ctrl-C's default disposition, however pytest itself was started
    process = ablations("run", "--only", "fake.*", "--out", str(out),
                        module="tests.ablations.cli_with_fakes",
                        env={**ENV, "FAKE_STARTED": str(started)},
                        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 240
    while not started.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started.exists(), process.communicate(timeout=5)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1].startswith("interrupted: finished results are kept")
    assert "fake.a-fast: reproduced" in stderr
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "fake.a-fast", "summary.json"
    ]
    assert leftovers(out) == []
    finished(out / "fake.a-fast")
    assert summary_ids(out) == ["fake.a-fast"]


def check_complete(out: Path) -> list[str]:
    """Every claim folder is complete: the claims found. (A kill inside a write can leave a hidden
    .tmp- staging folder, which readers skip and the next run removes.)"""
    if not out.exists():
        return []
    folders = sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))
    for folder in folders:
        finished(folder)
    return [folder.name for folder in folders]


def test_sigkill_at_random_moments_then_resume(tmp_path: Path) -> None:
    """The real CLI on two tiny claims (one trains, about 4 s a run, most of it imports and
    training), SIGKILLed at seeded random moments in 1-4 s (during the imports, the training, a
    claim or its write): only complete claim folders are ever left, and running the same
    command again completes both and removes any staging folder a kill left."""
    out = tmp_path / "out"
    command = ["run", "--profile", "tiny", *PAIR, "--out", str(out), "--runs",
               str(tmp_path / "runs")]
    rng = random.Random(3)
    for _ in range(3):
        process = ablations(*command)
        time.sleep(rng.uniform(1.0, 4.0))
        process.kill()
        process.communicate(timeout=60)
        check_complete(out)
    resumed = ablations(*command)
    stdout, stderr = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, stderr
    assert check_complete(out) == ["init.expected-loss", "kaiming.mlp"]
    assert leftovers(out) == []
    assert summary_ids(out) == ["init.expected-loss", "kaiming.mlp"]
    for claim_id in ("init.expected-loss", "kaiming.mlp"):
        record = json.loads((out / claim_id / "result.json").read_text())
        assert record["profile"] == "tiny" and record["verdict"]
    status = ablations("status", "--profile", "tiny", *PAIR, "--out", str(out))
    stdout, _ = status.communicate(timeout=120)
    assert status.returncode == 0 and stdout.splitlines()[-1] == "2 fresh, 0 stale, 0 missing"
    missing = ablations("status", "--profile", "tiny", "--out", str(tmp_path / "none"))
    stdout, _ = missing.communicate(timeout=120)
    assert missing.returncode == 1 and "missing" in stdout
