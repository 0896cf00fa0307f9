"""Synthetic result folders in the runner's schema (ablations/results.py), for fast tests."""

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
           n: int = 1, unit: str = "nats") -> dict[str, Any]:
    return {"mean": mean, "ci_low": mean if low is None else low,
            "ci_high": mean if high is None else high, "n": n, "unit": unit}


def record(claim_id: str, **overrides: Any) -> dict[str, Any]:
    base = {
        "schema": 1,
        "id": claim_id,
        "family": claim_id.split(".")[0],
        "statement": f"The statement of {claim_id}",
        "source": {"file": "003_b07a7f28d9e70e42.txt", "doc": "L", "lines": "22-23",
                   "quote": f"The quoted source sentence of {claim_id}."},
        "verdict": "reproduced",
        "evidence": "loss 3.30 [3.28, 3.31] over 4 seeds; source: 3.29",
        "holds_instead": "",
        "tolerance": "the 95% CI must contain the source value",
        "metrics": {"loss": metric(3.3, 3.28, 3.31, n=4), "count": metric(12097.0, unit="")},
        "source_values": {"loss": 3.29},
        "predictions": {"loss": 3.2958},
        "profile": "quick",
        "seeds": SEEDS,
        "steps": 1000,
        "device": "cpu",
        "duration_s": 1.5,
        "versions": {"python": "3.11.7", "torch": "2.13.0+cpu", "package": "0.1.0"},
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
            "versions": {"python": "3.11.7", "torch": "2.13.0+cpu", "package": "0.1.0"},
            "data_sha256": "0a30b555", "wall_s": 12.5,
            "claims": [{"id": r["id"], "verdict": r["verdict"], "duration_s": 1.5,
                        "cached": False} for r in records]}))
    return root


def three_claims() -> list[dict[str, Any]]:
    return [
        record("init.expected-loss"),
        record("tanh.saturation", verdict="partly reproduced",
               holds_instead="only with the lecture's init",
               source={"file": "003_b07a7f28d9e70e42.txt", "doc": "L", "lines": "46-51",
                       "quote": "much of h sits at 1"},
               metrics={"saturated": metric(0.25, 0.2, 0.3, n=4, unit="fraction")},
               source_values={}, predictions={}),
        record("bias.linear", verdict="not reproduced", holds_instead="the bias matters",
               source={"file": "000_66fc4d1181fbaa5f.txt", "doc": "N", "lines": "3",
                       "quote": "the bias is useless"},
               metrics={"gap": metric("inf", n=4, unit="nats")}, source_values={"gap": 0.0}),
    ]
