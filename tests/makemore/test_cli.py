"""`python -m makemore` as a user runs it: in subprocesses, all started at once (each spends most
of its time importing torch) and then checked one by one."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from makemore.cli import parser
from makemore.data import locate

ROOT = Path(__file__).resolve().parents[2]


def invocations(tmp: Path) -> dict[str, list[str]]:
    altered = tmp / "altered.txt"
    altered.write_bytes(locate().read_bytes().replace(b"emma\n", b"emmy\n", 1))
    malformed = tmp / "malformed.txt"
    malformed.write_text("emma\nOlivia\n")
    return {
        "train-json": ["train", "--config", "kaiming", "--seeds", "2", "--steps", "50", "--json"],
        "sample": ["sample", "--steps", "50", "-n", "5"],
        "steps-0": ["train", "--steps", "0"],
        "seeds-0": ["train", "--seeds", "0", "--steps", "5"],
        "unknown-config": ["train", "--config", "xavier", "--steps", "5"],
        "batchnorm-batch-1": ["train", "--config", "batchnorm", "--batch-size", "1",
                              "--steps", "5"],
        "deep-bn-batch-1": ["sample", "--config", "deep-bn", "--batch-size", "1", "--steps", "5"],
        "missing-data": ["train", "--data", str(tmp / "nowhere.txt"), "--steps", "5"],
        "altered-data": ["train", "--data", str(altered), "--steps", "5"],
        "malformed-data": ["train", "--data", str(malformed), "--allow-other-data", "--steps", "5"],
    }


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("MAKEMORE_DATA", None)
    started = {
        name: subprocess.Popen([sys.executable, "-m", "makemore", *args], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, args in invocations(tmp).items()
    }
    done = {}
    for name, process in started.items():
        stdout, stderr = process.communicate(timeout=300)
        done[name] = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    return done


def test_train_json(results):
    run = results["train-json"]
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert {"train", "val", "step0", "seeds", "data_sha256", "summary"} <= set(report)
    assert len(report["train"]) == len(report["val"]) == 2
    assert all(2.0 < loss < 3.5 for loss in report["train"] + report["val"])
    assert round(report["step0"][0], 4) == 3.3179  # member 0 is the notebook's kaiming run


def test_sample(results):
    run = results["sample"]
    assert run.returncode == 0, run.stderr
    names = run.stdout.splitlines()
    assert len(names) == 5 and all(re.fullmatch(r"[a-z]*", name) for name in names)


@pytest.mark.parametrize("command", ["train", "sample"])
def test_help_lists_every_option(capsys, command):
    """In-process (the same parser the subprocesses use): every option string is in --help."""
    with pytest.raises(SystemExit) as exit_:
        parser().parse_args([command, "--help"])
    assert exit_.value.code == 0
    shown = capsys.readouterr().out
    sub = parser()._subparsers._group_actions[0].choices[command]
    options = [flag for action in sub._actions for flag in action.option_strings]
    assert len(options) >= 10
    missing = [flag for flag in options if flag not in shown]
    assert not missing, f"--help does not list {missing}"


ERRORS = {
    "steps-0": "--steps",
    "seeds-0": "--seeds",
    "unknown-config": "xavier",
    "batchnorm-batch-1": "batch size 1",
    "deep-bn-batch-1": "batch size 1",
    "missing-data": "does not exist",
    "altered-data": "sha256",
    "malformed-data": "line 2",
}


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_invalid_input_is_one_line_and_exit_code_2(results, name):
    """The error is one line on stderr (argparse puts its usage lines above it), exit code 2,
    no traceback, nothing on stdout."""
    run = results[name]
    assert run.returncode == 2
    assert "Traceback" not in run.stderr and run.stdout == ""
    lines = [line for line in run.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1 and run.stderr.rstrip("\n").endswith(lines[0]), run.stderr
    assert ERRORS[name] in lines[0]
