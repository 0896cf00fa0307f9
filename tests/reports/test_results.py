"""Reading result folders: the schema, one-line errors naming the file, the headline metric."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reports.results import ResultError, load_results, read_claim
from tests.reports.factory import metric, record, three_claims, write_claim, write_results


def test_loads_every_field_in_lecture_order(tmp_path: Path) -> None:
    results = load_results(write_results(tmp_path, three_claims()))
    # the lecture's families first by first cited line (init L:22, tanh L:46), the notebook last
    assert [c.id for c in results.claims] == ["init.expected-loss", "tanh.saturation",
                                               "bias.linear"]
    first = results.claims[0]
    assert [m.name for m in first.metrics] == ["loss", "count"]
    assert first.metric("loss").ci_low == 3.28 and first.metric("loss").n == 4
    assert first.source_values == {"loss": 3.29} and first.seeds[0] == 2147483647
    assert math.isinf(results.by_id()["bias.linear"].metrics[0].mean)
    assert results.summary is not None and results.summary["wall_s"] == 12.5


def test_headline_is_first_metric_with_source_value_else_first(tmp_path: Path) -> None:
    rec = record("a.b", metrics={"first": metric(1.0), "second": metric(2.0)},
                 source_values={"second": 2.1})
    assert read_claim(write_claim(tmp_path, rec) / "result.json").headline().name == "second"
    rec = record("a.c", metrics={"first": metric(1.0), "second": metric(2.0)}, source_values={})
    assert read_claim(write_claim(tmp_path, rec) / "result.json").headline().name == "first"
    rec = record("a.d", metrics={}, source_values={"x": 1.0})
    assert read_claim(write_claim(tmp_path, rec) / "result.json").headline() is None


@given(names=st.lists(st.sampled_from("abcdef"), min_size=1, max_size=6, unique=True),
       sourced=st.sets(st.sampled_from("abcdefgh")))
def test_headline_property(tmp_path_factory: pytest.TempPathFactory, names: list[str],
                           sourced: set[str]) -> None:
    folder = tmp_path_factory.mktemp("r")
    rec = record("h.x", metrics={n: metric(1.0) for n in names},
                 source_values={n: 1.0 for n in sorted(sourced)})
    head = read_claim(write_claim(folder, rec) / "result.json").headline()
    with_source = [n for n in names if n in sourced]
    assert head.name == (with_source[0] if with_source else names[0])


Mutation = Callable[[dict[str, Any]], Any]


def corrupt(tmp_path: Path, mutate: Mutation) -> Path:
    write_results(tmp_path, three_claims())
    path = tmp_path / "tanh.saturation" / "result.json"
    text = mutate(json.loads(path.read_text()))
    path.write_text(text if isinstance(text, str) else json.dumps(text))
    return path


@pytest.mark.parametrize(("mutate", "words"), [
    (lambda r: '{"id": "tanh.saturation", "verdict": ', "not valid JSON"),
    (lambda r: [1, 2], "not a JSON object"),
    (lambda r: {k: v for k, v in r.items() if k != "evidence"}, "'evidence' is missing"),
    (lambda r: {**r, "verdict": "probably"}, "verdict 'probably'"),
    (lambda r: {**r, "id": "tanh.other"}, "does not match its folder"),
    (lambda r: {**r, "schema": 99}, "schema 99"),
    (lambda r: {**r, "metrics": {"m": {**metric(1.0), "mean": "lots"}}}, "'metrics.m.mean'"),
    (lambda r: {**r, "metrics": {"m": {**metric(1.0), "n": True}}}, "'metrics.m.n'"),
    (lambda r: {**r, "files": {"table": "../../etc/passwd"}}, "plain file name"),
])
def test_corrupt_result_is_one_line_naming_the_file(tmp_path: Path, mutate: Mutation,
                                                     words: str) -> None:
    path = corrupt(tmp_path, mutate)
    with pytest.raises(ResultError) as caught:
        load_results(tmp_path)
    message = str(caught.value)
    assert message.startswith(str(path)) and words in message and "\n" not in message


def test_missing_result_files(tmp_path: Path) -> None:
    write_results(tmp_path, three_claims())
    (tmp_path / "tanh.saturation" / "result.json").unlink()  # table and figure remain
    with pytest.raises(ResultError, match=r"tanh\.saturation/result\.json: missing"):
        load_results(tmp_path)
    (tmp_path / "tanh.saturation" / "table.csv").unlink()
    (tmp_path / "tanh.saturation" / "figure.png").unlink()  # folder gone, summary lists it
    with pytest.raises(ResultError, match="summary.json lists the claim"):
        load_results(tmp_path)
    with pytest.raises(ResultError, match="no such results folder"):
        load_results(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResultError, match="no claim results"):
        load_results(tmp_path / "empty")


def test_runner_staging_and_other_folders_are_ignored(tmp_path: Path) -> None:
    write_results(tmp_path, three_claims()[:1], summary=False)
    (tmp_path / ".tmp-init.x-123").mkdir()
    (tmp_path / ".tmp-init.x-123" / "table.csv").write_text("half-written")
    (tmp_path / "figures").mkdir()  # a report built into the results folder
    (tmp_path / "figures" / "init.expected-loss.png").write_bytes(b"")
    assert [c.id for c in load_results(tmp_path).claims] == ["init.expected-loss"]
