"""Writes the README's throughput table from a pytest-benchmark JSON file, so that its numbers
come from a run and are never typed:

    pytest -m bench tests/bench --benchmark-only --benchmark-json=bench.json
    python -m tests.bench.readme_table bench.json [--readme README.md]

The table replaces what lies between the markers <!-- throughput:start --> and
<!-- throughput:end -->.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from makemore.throughput import Rate, table

START, END = "<!-- throughput:start -->", "<!-- throughput:end -->"


def lines_from(report: dict) -> list[str]:
    """The table of a pytest-benchmark report, and where and how it was measured."""
    info = [b["extra_info"] for b in report["benchmarks"] if "seed_steps_per_s" in b["extra_info"]]
    if not info:
        raise ValueError("the report holds no throughput figures: run tests/bench")
    rates = [Rate(i["runner"], i["network"], i["seed_steps_per_s"], i["flops_per_seed_step"],
                  i["sgemm_flops_per_s"]) for i in info]
    machine = report.get("machine_info", {})
    cpu = machine.get("cpu", {}).get("brand_raw", machine.get("processor", "this CPU"))
    loads = [i["load_average"] for i in info]
    where = (f"Measured {report.get('datetime', '')[:10]} by `tox -e bench` on {cpu} "
             f"({info[0]['cores']} cores), {info[0]['threads']} torch thread; "
             f"{info[0]['steps']} steps per round, the fastest of 5 rounds; load average "
             f"{min(loads):.1f} to {max(loads):.1f} during the run (the benchmark itself "
             "adds 1; more means other jobs shared the cores).")
    return [*table(rates, "notebook loop"), "", where]


def replace_block(text: str, lines: list[str]) -> str:
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError(f"no {START} ... {END} block to replace")
    return pattern.sub(lambda _: "\n".join([START, *lines, END]), text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="pytest-benchmark JSON (--benchmark-json)")
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    args = parser.parse_args(argv)
    try:
        lines = lines_from(json.loads(args.report.read_text()))
        text = replace_block(args.readme.read_text(), lines)
    except (OSError, ValueError) as err:  # JSONDecodeError is a ValueError
        print(f"readme_table: {err}; give a --benchmark-json report and a README with the "
              "markers", file=sys.stderr)
        return 2
    args.readme.write_text(text)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
