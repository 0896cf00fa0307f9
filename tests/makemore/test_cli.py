"""`python -m makemore` as a user runs it: in subprocesses, all started at once (each spends most
of its time importing torch) and then checked one by one."""

from __future__ import annotations

import json
import os
import re
import shutil
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
    tiny = tmp / "two-names.txt"
    tiny.write_text("emma\nolivia\n")
    runs = ["--runs", str(tmp / "runs")]
    return {
        "train-json": ["train", "--config", "kaiming", "--seeds", "2", "--steps", "50", "--json",
                       *runs],
        "sample": ["sample", "--steps", "50", "-n", "5", *runs],
        "diverging": ["train", "--steps", "300", "--lr", "1000", "--json", *runs],
        "too-many-steps": ["train", "--steps", "99999999999999999999"],
        "too-many-seeds": ["train", "--seeds", "100000"],
        "two-names": ["train", "--data", str(tiny), "--allow-other-data", "--steps", "5"],
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


def test_sample_trains_once_then_reads_the_stored_run(results, tmp_path):
    run = results["sample"]
    assert run.returncode == 0, run.stderr
    names = run.stdout.splitlines()
    assert len(names) == 5 and all(re.fullmatch(r"[a-z]*", name) for name in names)
    assert "trained and stored run" in run.stderr
    store = Path(run.args[run.args.index("--runs") + 1])
    again = subprocess.run([sys.executable, "-m", "makemore", *run.args[3:]], cwd=ROOT,
                           env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0 and again.stdout == run.stdout  # the same run, the same names
    assert "sampled from the stored run" in again.stderr
    key = json.loads((next(store.glob("??/*.json"))).read_text())["key"]
    by_id = subprocess.run([sys.executable, "-m", "makemore", "sample", "--run", key[:8], "-n",
                            "5", "--runs", str(store)], cwd=ROOT,
                           env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                           text=True, timeout=300)
    assert by_id.returncode == 0 and by_id.stdout == run.stdout, by_id.stderr


def test_a_diverging_run_is_flagged_with_exit_code_3(results):
    run = results["diverging"]
    assert run.returncode == 3 and "Traceback" not in run.stderr
    assert json.loads(run.stdout)["diverged"] == [True]
    assert run.stderr.strip().splitlines()[-1].startswith("warning: 1 of 1 runs diverged")


def test_the_data_given_only_through_makemore_data(tmp_path):
    """A checkout with no data/names.txt and no ../shared beside it: MAKEMORE_DATA alone
    suffices (the README's second way to give the data)."""
    package = tmp_path / "checkout"
    shutil.copytree(ROOT / "makemore", package / "makemore",
                    ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k != "MAKEMORE_DATA"}
    env.update(PYTHONPATH=str(package), MAKEMORE_DATA=str(locate()), OMP_NUM_THREADS="1")
    run = subprocess.run([sys.executable, "-m", "makemore", "train", "--steps", "5", "--json",
                          "--runs", str(tmp_path / "runs")], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert round(json.loads(run.stdout)["step0"][0], 4) == 3.3179


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
    "too-many-steps": "GiB",
    "too-many-seeds": "use fewer steps or seeds",
    "two-names": "leaves a split empty",
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
