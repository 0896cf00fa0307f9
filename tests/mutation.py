"""Mutation smoke test (`tox -e mutate`): put known bugs into a copy of the code, one at a
time, and check that the fast test suite fails for each. A bug the suite lets through is a hole
in the tests; a mutation whose code is no longer there is reported too (the list must follow
the code). The unmutated suite runs first, as the control: if it fails, nothing is counted (exit
2). Prints caught/total, with the first test that failed, and exits 1 unless every bug was
caught.

    python -m tests.mutation [-k NAME] [--pytest-args "..."]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAST_SUITE = ["-m", "not slow and not bench", "-x", "-q", "-p", "no:cacheprovider"]


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str
    before: str
    after: str


MUTATIONS = (
    Mutation("the tanh gain 5/3 becomes 1.5", "makemore/models.py",
             '"tanh": 5.0 / 3.0,', '"tanh": 1.5,'),
    Mutation("BatchNorm's lecture convention uses the biased variance", "makemore/modules.py",
             'unbiased if self.convention == "lecture" else',
             'batch_variance(x, unbiased=False) if self.convention == "lecture" else'),
    Mutation("Linear scales by fan-out instead of fan-in", "makemore/modules.py",
             "self.weight = weight / fan_in**0.5", "self.weight = weight / fan_out**0.5"),
    Mutation("the 80/10/10 split becomes 85/5/10", "makemore/data.py",
             "int(0.8 * len(shuffled))", "int(0.85 * len(shuffled))"),
    Mutation("a check always passes (Negligible)", "ablations/checks.py",
             "outcome = three_state(outside, inside) if self.negate else three_state(inside, "
             "outside)", "outcome = Outcome.PASS"),
    Mutation("the verdict is always 'reproduced'", "ablations/verdicts.py",
             "    if Outcome.SHORT in outcomes.values():\n        return Verdict.NOT_EVALUATED",
             "    return Verdict.REPRODUCED"),
    Mutation("evaluate runs in training mode", "makemore/train.py",
             "    was_training = model.training\n    model.eval()\n    total = ",
             "    was_training = model.training\n    model.train()\n    total = "),
)


def copy_tree(target: Path) -> None:
    """The checkout's files as git sees them (tracked and untracked-not-ignored)."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in listed.splitlines():
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    shared = ROOT.parent / "shared"
    if shared.is_dir():
        os.symlink(shared, target.parent / "shared")
    data = ROOT / "data" / "names.txt"
    if data.is_file():
        shutil.copy2(data, target / "data" / "names.txt")


def run_suite(checkout: Path, extra: list[str]) -> tuple[int, str]:
    """The suite's exit code and the first test that failed ("" if none)."""
    env = {**os.environ, "PYTHONPATH": str(checkout), "HYPOTHESIS_PROFILE": "ci"}
    done = subprocess.run([sys.executable, "-m", "pytest", *FAST_SUITE, "-rf", *extra],
                          cwd=checkout, env=env, capture_output=True, text=True)
    failed = [line.split()[1] for line in done.stdout.splitlines()
              if line.startswith(("FAILED ", "ERROR "))]
    return done.returncode, failed[0] if failed else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.mutation", description=__doc__)
    parser.add_argument("-k", help="run only the mutations whose name contains this")
    parser.add_argument("--pytest-args", default="", help="extra arguments for pytest")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.k or args.k in m.name]
    caught = 0
    with tempfile.TemporaryDirectory() as temp:
        checkout = Path(temp) / "checkout"
        copy_tree(checkout)
        # the control: a suite that fails without any bug would "catch" every one
        code, first = run_suite(checkout, args.pytest_args.split())
        if code != 0:
            print(f"the suite fails without any mutation (exit {code}, {first or 'no test'}): "
                  "fix that first")
            return 2
        print("control: the suite passes without mutations", flush=True)
        for mutation in chosen:
            path = checkout / mutation.path
            original = path.read_text()
            if original.count(mutation.before) != 1:
                print(f"STALE    {mutation.name}: its code is not in {mutation.path} once")
                continue
            path.write_text(original.replace(mutation.before, mutation.after))
            start = time.monotonic()
            code, first = run_suite(checkout, args.pytest_args.split())
            path.write_text(original)
            found = code not in (0, 5)  # 5: no tests collected, which catches nothing
            caught += found
            by = f", by {first}" if first else ""
            print(f"{'caught' if found else 'ESCAPED':<8} {mutation.name} "
                  f"({time.monotonic() - start:.0f} s{by})", flush=True)
    print(f"mutations caught: {caught}/{len(chosen)}")
    return 0 if caught == len(chosen) else 1


if __name__ == "__main__":
    sys.exit(main())
