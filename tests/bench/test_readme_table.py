"""tests.bench.readme_table: the README's throughput table is computed from a benchmark report,
so its figures are the report's and nothing else (no timing is measured here)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.bench.readme_table import END, START, lines_from, replace_block


def report(rates: list[float], sgemm: float, flops: int, loads: list[float]) -> dict:
    runners = ["notebook loop", *(f"engine, E = {i}" for i in range(1, len(rates)))]
    return {"datetime": "2026-11-30T00:00:00", "machine_info": {"cpu": {"brand_raw": "cpu X"}},
            "benchmarks": [{"extra_info": {"runner": runner, "network": "MLP",
                                           "seed_steps_per_s": rate, "flops_per_seed_step": flops,
                                           "sgemm_flops_per_s": sgemm, "load_average": load,
                                           "cores": 2, "threads": 1, "steps": 200}}
                           for runner, rate, load in zip(runners, rates, loads, strict=True)]}


@given(rates=st.lists(st.floats(1.0, 1e6), min_size=1, max_size=5),
       sgemm=st.floats(1e9, 1e12), flops=st.integers(10**5, 10**8), data=st.data())
def test_each_row_is_its_runners_rate_ratio_and_fraction(rates, sgemm, flops, data) -> None:
    loads = data.draw(st.lists(st.floats(0.0, 16.0), min_size=len(rates), max_size=len(rates)))
    lines = lines_from(report(rates, sgemm, flops, loads))
    rows = [line for line in lines if line.startswith("| notebook") or line.startswith("| engine")]
    assert len(rows) == len(rates)
    for row, rate in zip(rows, rates, strict=True):
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1] == f"{rate:,.0f}"
        assert cells[2] == f"{rate / rates[0]:.2f}x"
        assert cells[4] == f"{rate * flops / sgemm:.0%}"
    assert f"load average {min(loads):.1f} to {max(loads):.1f}" in lines[-1]


def test_only_the_marked_block_is_replaced() -> None:
    text = f"before\n{START}\nold table\n{END}\nafter\n"
    assert replace_block(text, ["new"]) == f"before\n{START}\nnew\n{END}\nafter\n"
    with pytest.raises(ValueError, match="block to replace"):
        replace_block("a README without markers", ["new"])


def test_a_report_without_throughput_figures_is_refused() -> None:
    with pytest.raises(ValueError, match="no throughput figures"):
        lines_from({"benchmarks": [{"extra_info": {}}]})


@pytest.mark.parametrize("problem", ["no report", "not JSON", "no markers"])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, problem) -> None:
    from tests.bench.readme_table import main

    bench, readme = tmp_path / "bench.json", tmp_path / "README.md"
    readme.write_text("no markers" if problem == "no markers" else f"{START}\n{END}\n")
    good = json.dumps(report([1.0], 1e9, 10**6, [1.0]))
    if problem != "no report":
        bench.write_text("{" if problem == "not JSON" else good)
    before = readme.read_text()
    assert main([str(bench), "--readme", str(readme)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("readme_table: ")
    assert readme.read_text() == before
