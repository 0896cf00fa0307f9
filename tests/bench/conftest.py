"""Prints the throughput benchmarks side by side, with each runner's ratio to the notebook loop."""

from __future__ import annotations


def pytest_terminal_summary(terminalreporter):
    from tests.bench.test_throughput import RESULTS

    if not RESULTS:
        return
    base = RESULTS.get("notebook loop")
    terminalreporter.section("throughput (seed-steps/s; ratio to the notebook loop)")
    for name, rate in RESULTS.items():
        ratio = f"{rate / base:6.2f}x" if base else "      -"
        terminalreporter.write_line(f"{name:>16} {rate:>10,.0f} {ratio}")
