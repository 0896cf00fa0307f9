"""makemore.gpucheck on a machine without CUDA: it says so and exits 0; its table and its
arguments work on the CPU."""

from __future__ import annotations

import pytest
import torch

from makemore import gpucheck


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")
def test_without_cuda_it_says_so_in_one_line(capsys):
    assert gpucheck.main([]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "no CUDA device" in out


def test_the_table_on_the_cpu(capsys):
    """Both networks at each requested ensemble size, each with its fraction of the limit."""
    assert gpucheck.main(["--device", "cpu", "--members", "1,2", "--steps", "2"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| engine")]
    assert [row.split("|")[1].strip() for row in rows] == [
        "engine, MLP, E = 1", "engine, MLP, E = 2", "engine, deep BN, E = 1",
        "engine, deep BN, E = 2"]
    assert all(row.rstrip(" |").endswith("%") for row in rows)
    assert "Limit = sgemm FLOP/s (1024 x 1024, float32" in out


@pytest.mark.parametrize("argv", [["--members", "0"], ["--members", "a,b"], ["--steps", "0"],
                                  ["--steps", "x"]])
def test_bad_arguments_exit_2(argv):
    with pytest.raises(SystemExit) as exit_info:
        gpucheck.main(argv)
    assert exit_info.value.code == 2
