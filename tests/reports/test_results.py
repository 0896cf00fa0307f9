"""Reading result folders: schema 2 only, one-line errors naming the file, the declared
headline metric."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reports.schema import ResultError, load_results, read_claim
from tests.reports.factory import metric, record, some_claims, write_claim, write_results


def test_loads_every_field_in_lecture_order(tmp_path: Path) -> None:
    results = load_results(write_results(tmp_path, some_claims()))
    # the lecture's families first by first cited line (init L:22, tanh L:46), the notebook last
    assert [c.id for c in results.claims] == ["init.expected-loss", "tanh.saturation",
                                               "bias.linear", "bias.todo"]
    first = results.claims[0]
    assert [m.name for m in first.metrics] == ["loss", "count"]
    loss = first.metric("loss")
    assert loss is not None and loss.ci_low == 3.28 and loss.samples == (3.28, 3.29, 3.31, 3.32)
    assert [m.kind for m in first.metrics] == ["science", "numerics"]
    assert first.checks[0].passed and first.checks[0].metrics == ("loss",)
    assert first.declaration["rules"]["reproduced"] == [c.name for c in first.checks]
    assert first.source_values == {"loss": 3.29} and first.seeds[0] == 2147483647
    by_id = results.by_id()
    assert by_id["tanh.saturation"].borderline and not first.borderline
    assert by_id["bias.todo"].answers == {"Does the bias matter?": "Not after BatchNorm: 0.000 "
                                                                    "nats."}
    assert math.isinf(by_id["bias.linear"].metrics[0].mean)
    assert results.summary is not None and results.summary["wall_s"] == 12.5


def test_headline_is_the_declared_metric_not_the_first(tmp_path: Path) -> None:
    rec = record("a.b", metrics={"control": metric(1.0), "effect": metric(2.0)},
                 headline={"metric": "effect", "source_value": 2.1})
    claim = read_claim(write_claim(tmp_path, rec) / "result.json")
    head = claim.headline()
    assert head is not None and head.name == "effect" and claim.headline_source_value == 2.1
    rec = record("a.c", headline={"metric": "gone", "source_value": None})
    assert read_claim(write_claim(tmp_path, rec) / "result.json").headline() is None


Mutation = Callable[[dict[str, Any]], Any]


def corrupt(tmp_path: Path, mutate: Mutation) -> Path:
    write_results(tmp_path, some_claims())
    path = tmp_path / "tanh.saturation" / "result.json"
    text = mutate(json.loads(path.read_text()))
    path.write_text(text if isinstance(text, str) else json.dumps(text))
    return path


@pytest.mark.parametrize(("mutate", "words"), [
    (lambda r: '{"id": "tanh.saturation", "verdict": ', "not valid JSON"),
    (lambda r: [1, 2], "not a JSON object"),
    (lambda r: {**r, "schema": 1}, "schema 1, but this reader reads schema 2 only"),
    (lambda r: {k: v for k, v in r.items() if k != "schema"}, "schema None"),
    (lambda r: {k: v for k, v in r.items() if k != "finding"}, "'finding' is missing"),
    (lambda r: {**r, "verdict": "probably"}, "verdict' is 'probably'"),
    (lambda r: {**r, "borderline": "no"}, "'borderline' has the wrong type"),
    (lambda r: {**r, "id": "tanh.other"}, "does not match its folder"),
    (lambda r: {**r, "metrics": {"m": {**metric(1.0), "mean": "lots"}}}, "'metrics.m.mean'"),
    (lambda r: {**r, "metrics": {"m": {**metric(1.0), "n": True}}}, "'metrics.m.n'"),
    (lambda r: {**r, "metrics": {"m": {**metric(1.0), "kind": "vibes"}}}, "'metrics.m.kind'"),
    (lambda r: {**r, "metrics": {"m": metric(1.0, n=2, samples=[1.0])}}, "not n = 2"),
    (lambda r: {**r, "checks": [{**r["checks"][0], "outcome": "maybe"}]},
     "'checks[0].outcome'"),
    (lambda r: {**r, "files": {"table": "../../etc/passwd", "figure": "f.png"}},
     "plain file name"),
])
def test_corrupt_result_is_one_line_naming_the_file(tmp_path: Path, mutate: Mutation,
                                                     words: str) -> None:
    path = corrupt(tmp_path, mutate)
    with pytest.raises(ResultError) as caught:
        load_results(tmp_path)
    message = str(caught.value)
    assert message.startswith(str(path)) and words in message and "\n" not in message


def test_missing_result_files(tmp_path: Path) -> None:
    write_results(tmp_path, some_claims())
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
    write_results(tmp_path, some_claims()[:1], summary=False)
    (tmp_path / ".tmp-init.x-123").mkdir()
    (tmp_path / ".tmp-init.x-123" / "table.csv").write_text("half-written")
    (tmp_path / "figures").mkdir()  # a report built into the results folder
    (tmp_path / "figures" / "init.expected-loss.png").write_bytes(b"")
    assert [c.id for c in load_results(tmp_path).claims] == ["init.expected-loss"]


def test_real_runner_files_are_read(tmp_path: Path) -> None:
    """The runner's own schema-2 files (the tiny profile of the pilot claim) load as written."""
    from ablations.context import PROFILES, Context
    from ablations.registry import select
    from ablations.runner import run_all

    run_all(select(["init.expected-loss"]), Context(PROFILES["tiny"]), tmp_path,
            report=lambda line: None)
    claim = load_results(tmp_path).claims[0]
    assert claim.verdict == "reproduced" and claim.finding and claim.checks
    assert claim.headline() is not None and claim.rules_hash
