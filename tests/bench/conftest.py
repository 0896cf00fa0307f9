"""Prints the throughput benchmarks as one table: seed-steps/s, ratio to the notebook loop and
fraction of the sgemm-limited rate (makemore.throughput)."""

from __future__ import annotations


def pytest_terminal_summary(terminalreporter):
    from makemore.throughput import table
    from tests.bench.test_throughput import RESULTS

    if not RESULTS:
        return
    terminalreporter.section("throughput (seed-steps/s)")
    for line in table(RESULTS, "notebook loop"):
        terminalreporter.write_line(line)
