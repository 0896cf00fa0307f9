"""What changed in a claim's pre-registered declaration (its checks, named tolerances and
experiment grid) between a baseline and a new result, in one line per change."""

from __future__ import annotations

import json
import re
from typing import Any

from reports.results import ClaimResult

SHOWN_CHARS = 80
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def _key(path: str, key: str) -> str:
    return f"{path}.{key}" if _NAME.fullmatch(key) else f"{path}[{key!r}]"


def _by_name(section: str, value: Any) -> Any:
    """Checks are compared by name, so that a reordering or an added check reads as such."""
    if section == "rules" and isinstance(value, dict) and isinstance(value.get("checks"), list):
        checks = {str(c.get("name")): c for c in value["checks"] if isinstance(c, dict)}
        return {**value, "checks": checks}
    return value


def differences(path: str, before: Any, after: Any) -> list[str]:
    if isinstance(before, dict) and isinstance(after, dict):
        found = []
        for key in sorted(set(before) | set(after), key=str):
            where = _key(path, str(key))
            if key not in before:
                found.append(f"{where} added: {_short(after[key])}")
            elif key not in after:
                found.append(f"{where} removed (was {_short(before[key])})")
            else:
                found += differences(where, before[key], after[key])
        return found
    return [] if before == after else [f"{path}: {_short(before)} → {_short(after)}"]


def rule_changes(base: ClaimResult, new: ClaimResult) -> list[str]:
    """Empty when the declaration is the same; otherwise what changed."""
    found = []
    for section in ("rules", "tolerances", "grid"):
        found += differences(section, _by_name(section, base.declaration.get(section)),
                             _by_name(section, new.declaration.get(section)))
    if base.rules_hash != new.rules_hash and not found:
        found.append("the declaration changed outside its rules, tolerances and grid (runs, "
                     "headline, questions or finding template)")
    if found and base.rules_hash != new.rules_hash:
        found.insert(0, f"rules_hash {base.rules_hash} → {new.rules_hash}")
    return found
