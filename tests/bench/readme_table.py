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
from pathlib import Path

from makemore.throughput import Rate, table

START, END = "<!-- throughput:start -->", "<!-- throughput:end -->"


def lines_from(report: dict) -> list[str]:
    """The table of a pytest-benchmark report, and where and how it was measured."""
    info = [b["extra_info"] for b in report["benchmarks"]]
    sgemm = [i["flops_per_s"] for i in info if i.get("runner") == "sgemm"]
    threads = {i["threads"] for i in info if "threads" in i}
    load = [f"{i['load_average']:.1f} on {i['cores']} cores" for i in info if "load_average" in i]
    rates = [Rate(i["runner"], i["network"], i["seed_steps_per_s"], i["flops_per_seed_step"])
             for i in info if "seed_steps_per_s" in i]
    if not sgemm or not rates:
        raise ValueError("the report holds no sgemm rate or no engine rate: run all of tests/bench")
    machine = report.get("machine_info", {})
    steps = {i["steps"] for i in info if "steps" in i}
    where = (f"Measured {report.get('datetime', '')[:10]} by `tox -e bench` on "
             f"{machine.get('cpu', {}).get('brand_raw', machine.get('processor', 'this CPU'))}, "
             f"{', '.join(map(str, sorted(threads)))} torch thread(s); "
             f"{', '.join(map(str, sorted(steps)))} steps per round, the fastest of 5 rounds; "
             f"load average {', '.join(load) or 'not recorded'} when sgemm was measured.")
    return [*table(rates, sgemm[0], "notebook loop"), "", where]


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
    lines = lines_from(json.loads(args.report.read_text()))
    args.readme.write_text(replace_block(args.readme.read_text(), lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
