"""Synthetic result folders in the runner's schema 2 (ablations/results.py `result_record`),
for fast tests."""

from __future__ import annotations

import copy
import json
import struct
import zlib
from pathlib import Path
from typing import Any

SEEDS = [2147483647 + i for i in range(4)]


def png(shade: int = 0) -> bytes:
    """A valid 1x1 grey PNG; the shade makes figures of different claims differ."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data)))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixel = zlib.compress(b"\x00" + bytes([shade % 256] * 3))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixel)
            + chunk(b"IEND", b""))


def metric(mean: float | str, low: float | str | None = None, high: float | str | None = None,
           n: int = 1, unit: str = "nats", kind: str = "science",
           samples: list[float | str] | None = None) -> dict[str, Any]:
    """A metric entry as `Metric.to_json` writes it; the samples default to n copies of the
    mean (tests that compare samples pass their own)."""
    return {"mean": mean, "ci_low": mean if low is None else low,
            "ci_high": mean if high is None else high, "n": n, "unit": unit, "kind": kind,
            "dropped": 0, "samples": [mean] * n if samples is None else samples}


def of(samples: list[float], unit: str = "nats", kind: str = "science") -> dict[str, Any]:
    """A metric entry from its samples, with the runner's own bootstrap CI."""
    from makemore.stats import mean_ci

    e = mean_ci(samples)
    return metric(e.mean, e.ci_low, e.ci_high, n=e.n, unit=unit, kind=kind,
                  samples=[float(v) for v in samples])


def check(name: str, metrics: list[str], outcome: str = "pass", roles: tuple[str, ...] = (
        "reproduced",), sentence: str = "") -> dict[str, Any]:
    return {"name": name, "kind": "near", "metrics": metrics, "params": {"metric": metrics[0]}
            if metrics else {}, "rule": f"the rule of {name}", "roles": list(roles),
            "outcome": outcome, "passed": outcome == "pass",
            "sentence": sentence or f"{name}: {outcome}"}


def declaration(checks: list[dict[str, Any]]) -> dict[str, Any]:
    """The rules, tolerances and grid fields of a record whose checks are `checks`."""
    return {"rules": {"reproduced": [c["name"] for c in checks if "reproduced" in c["roles"]],
                      "partly": [c["name"] for c in checks if "partly" in c["roles"]],
                      "instead": "", "partly_means": "",
                      "checks": [{k: c[k] for k in ("name", "kind", "metrics", "params", "rule")}
                                 for c in checks]},
            "tolerances": {"ln 27 as 3.29": {"value": 3.29, "interval": "truncated",
                                             "digits": 2, "why": "L:23"}},
            "grid": {}}


def record(claim_id: str, **overrides: Any) -> dict[str, Any]:
    checks = [check("loss matches the source's 3.29", ["loss"]),
              check("count within 4 ulps", ["count"])]
    base = {
        "schema": 2,
        "id": claim_id,
        "family": claim_id.split(".")[0],
        "statement": f"The statement of {claim_id}",
        "source": {"file": "003_b07a7f28d9e70e42.txt", "doc": "L", "lines": "22-23",
                   "quote": f"The quoted source sentence of {claim_id}."},
        "verdict": "reproduced",
        "borderline": False,
        "finding": f"The finding of {claim_id}: loss 3.300 [3.280, 3.310] nats.",
        "headline": {"metric": "loss", "source_value": 3.29},
        "checks": checks,
        "holds_instead": "",
        "answers": {},
        "metrics": {"loss": metric(3.3, 3.28, 3.31, n=4, samples=[3.28, 3.29, 3.31, 3.32]),
                    "count": metric(0.0, unit="ulps", kind="numerics")},
        "source_values": {"loss": 3.29},
        "predictions": {"loss": 3.2958},
        **declaration(checks),
        "rules_hash": "a1b2c3d4e5f60718",
        "runs": {"mlp": ["k1", "k2", "k3", "k4"]},
        "profile": "quick",
        "profile_settings": {"name": "quick", "seeds": 4, "max_seeds": 8, "scale": 0.02,
                             "samples": 200},
        "seeds": SEEDS,
        "steps": 1000,
        "device": "cpu",
        "duration_s": 1.5,
        "versions": {"python": "3.11.7", "torch": "2.13.0+cpu", "package": "0.2.0"},
        "data_sha256": "0a30b555",
        "git_commit": "abc123",
        "cache_key": "k",
        "files": {"table": "table.csv", "figure": "figure.png"},
    }
    base.update(copy.deepcopy(overrides))
    return base


def write_claim(root: Path, rec: dict[str, Any], table: str | None = "x,y\n1,2.5\n2,3.75\n",
                figure: bytes | None = None) -> Path:
    folder = root / rec["id"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "result.json").write_text(json.dumps(rec, indent=2))
    if table is not None:
        (folder / "table.csv").write_text(table)
    (folder / "figure.png").write_bytes(png(len(rec["id"])) if figure is None else figure)
    return folder


def write_results(root: Path, records: list[dict[str, Any]], summary: bool = True) -> Path:
    for rec in records:
        write_claim(root, rec)
    if summary:
        (root / "summary.json").write_text(json.dumps({
            "profile": "quick", "seeds": SEEDS, "device": "cpu",
            "versions": {"python": "3.11.7", "torch": "2.13.0+cpu", "package": "0.2.0"},
            "data_sha256": "0a30b555", "wall_s": 12.5,
            "claims": [{"id": r["id"], "verdict": r["verdict"], "cache_key": "k"}
                       for r in records]}))
    return root


def some_claims() -> list[dict[str, Any]]:
    saturated = [check("saturated above 0.2", ["saturated"], "fail"),
                 check("saturated below 0.5", ["saturated"], roles=("reproduced", "partly"))]
    gap = [check("gap matches the source's 0", ["gap"], "fail", sentence="gap is inf nats")]
    return [
        record("init.expected-loss"),
        record("tanh.saturation", verdict="partly reproduced", borderline=True,
               holds_instead="only with the lecture's init", checks=saturated,
               **declaration(saturated),
               headline={"metric": "saturated", "source_value": None},
               source={"file": "003_b07a7f28d9e70e42.txt", "doc": "L", "lines": "46-51",
                       "quote": "much of h sits at 1"},
               metrics={"saturated": metric(0.25, 0.2, 0.3, n=4, unit="fraction",
                                            samples=[0.2, 0.22, 0.28, 0.3])},
               source_values={}, predictions={}),
        record("bias.linear", verdict="not reproduced", holds_instead="the bias matters",
               checks=gap, **declaration(gap), headline={"metric": "gap", "source_value": 0.0},
               source={"file": "000_66fc4d1181fbaa5f.txt", "doc": "N", "lines": "3",
                       "quote": "the bias is useless"},
               metrics={"gap": metric("inf", n=4, unit="nats")}, source_values={"gap": 0.0}),
        record("bias.todo", verdict="answered", checks=[], rules=None, tolerances={},
               headline={"metric": "answer", "source_value": None},
               answers={"Does the bias matter?": "Not after BatchNorm: 0.000 nats."},
               metrics={"answer": metric(0.0, unit="nats")}, source_values={}, predictions={},
               source={"file": "000_66fc4d1181fbaa5f.txt", "doc": "N", "lines": "9",
                       "quote": "TODO: does the bias matter?"}),
    ]
