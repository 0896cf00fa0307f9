"""Reading what the runner wrote: strict JSON, complete claim folders, leftovers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def strict_json(text: str) -> Any:
    """json.loads refusing NaN and Infinity, which Python's json writes by default but which are
    not JSON (other readers reject the file)."""

    def reject(token: str) -> None:
        raise ValueError(f"non-standard JSON constant {token}")

    return json.loads(text, parse_constant=reject)


def finished(folder: Path, claim_id: str | None = None) -> dict[str, Any]:
    """The record of a complete claim folder: the three files, a strict-JSON result.json."""
    record = strict_json((folder / "result.json").read_text())
    assert record["id"] == (claim_id or folder.name)
    assert (folder / "figure.png").read_bytes().startswith(PNG_MAGIC)
    assert not pd.read_csv(folder / "table.csv").empty
    return record


def leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith((".tmp-", ".old-")))


def summary_ids(out: Path) -> list[str]:
    return [entry["id"] for entry in strict_json((out / "summary.json").read_text())["claims"]]
