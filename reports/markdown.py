"""Markdown for a code-hosting site and for diffs: one line per paragraph or table row, text
escaped so that a statement is shown as written (`<script>` stays text, `*` stays a star).
The only raw HTML is the `<details>` that collapses the secondary parts of a claim."""

from __future__ import annotations

import re
from html import escape as html_escape

from reports import blocks as d

FIGURES = "figures"
# Backslash-escaped everywhere: emphasis, code, links, raw HTML, tables, strike-through.
_SPECIAL = re.compile(r"([\\`*\[\]<>|~])")
# '_' only opens emphasis at a word's edge; inside a word (metric_name) it is left alone.
_EDGE_UNDERSCORE = re.compile(r"(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")
_ENTITY = re.compile(r"&(?=#?[0-9A-Za-z]+;)")
_BLOCK_START = re.compile(r"^(\s*)([#+=-]|\d+[.)])")  # would start a heading, list or rule


def escape(text: str) -> str:
    """Inline text: whitespace runs to one space (a cell or paragraph is one line), special
    characters backslash-escaped."""
    text = _SPECIAL.sub(r"\\\1", re.sub(r"\s+", " ", text))
    text = _EDGE_UNDERSCORE.sub(r"\\_", text)
    return _ENTITY.sub(r"\\&", text)


def protect_start(text: str) -> str:
    """A paragraph must not turn into a heading or a list because of its first characters."""
    return _BLOCK_START.sub(lambda m: m.group(1) + "\\" + m.group(2), text, count=1)


def code(text: str, in_table: bool = False) -> str:
    text = re.sub(r"\s+", " ", text)
    if in_table:
        text = text.replace("|", "\\|")  # GFM: a pipe in a cell is escaped even inside code
    ticks = max((len(run) for run in re.findall(r"`+", text)), default=0) + 1
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{'`' * ticks}{pad}{text}{pad}{'`' * ticks}"


def link_target(target: str) -> str:
    return f"<{target}>" if re.search(r"[\s()]", target) else target


def inline(part: d.Inline, in_table: bool = False) -> str:
    if isinstance(part, d.Code):
        return code(part.text, in_table)
    if isinstance(part, d.Strong | d.Badge):
        return f"**{escape(part.text)}**"
    if isinstance(part, d.Link):
        return f"[{escape(part.text)}]({link_target(part.target)})"
    return escape(part)


def line(parts: d.Line, in_table: bool = False) -> str:
    return "".join(inline(p, in_table) for p in parts)


def table(t: d.Table) -> str:
    rule = ["---:" if right else "---" for right in t.numeric]
    rows = [[escape(h) for h in t.header], rule] + [[line(c, True) for c in row] for row in t.rows]
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def block(b: d.Block) -> str:
    if isinstance(b, d.Heading):
        return f"{'#' * b.level} {escape(b.text)}"
    if isinstance(b, d.Para):
        return protect_start(line(b.parts))
    if isinstance(b, d.Quote):
        return "\n>\n".join(f"> {protect_start(line(parts))}" for parts in b.lines)
    if isinstance(b, d.Bullets):
        return "\n".join(f"- {protect_start(line(item))}" for item in b.items)
    if isinstance(b, d.Table):
        return table(b)
    if isinstance(b, d.Figure):
        return f"![{escape(b.alt)}]({FIGURES}/{b.name})"
    if isinstance(b, d.Details):
        # GitHub renders Markdown inside <details> when blank lines separate it from the tags
        return (f"<details><summary>{html_escape(b.summary)}</summary>\n\n"
                + render_blocks(b.blocks) + "\n\n</details>")
    if isinstance(b, d.Section):
        return render_blocks(b.blocks)
    raise TypeError(f"unknown block {b!r}")


def render_blocks(blocks: tuple[d.Block, ...] | list[d.Block]) -> str:
    return "\n\n".join(block(b) for b in blocks)


def render(blocks: list[d.Block]) -> str:
    return render_blocks(blocks) + "\n"
