"""The report as one self-contained HTML file: styles and a few lines of script inline, figures
as base64 data URIs, every piece of text escaped, no reference outside the file."""

from __future__ import annotations

import base64
import math
from html import escape

from reports import document as d

STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 72rem; margin: 2rem auto;
       padding: 0 1rem; color: #1b1b1b; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.45rem; vertical-align: top; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.sortable th { cursor: pointer; }
table.sortable th:after { content: " \\2195"; color: #999; }
blockquote { border-left: 4px solid #ddd; margin: 0.5rem 0; padding: 0.1rem 0.9rem;
             color: #444; }
code { background: #f4f4f4; padding: 0 0.2rem; }
img { max-width: 100%; border: 1px solid #eee; }
nav > ul { columns: 2; }
"""

# Sorts a table.sortable by the clicked column; a cell's data-key (a number) wins over its text.
SCRIPT = """
document.querySelectorAll("table.sortable th").forEach(function (th) {
  th.addEventListener("click", function () {
    var body = th.closest("table").tBodies[0], col = th.cellIndex;
    var dir = th.dataset.dir === "up" ? -1 : 1;
    th.dataset.dir = dir === 1 ? "up" : "down";
    var key = function (row) {
      var c = row.cells[col];
      if (c.dataset.key === undefined) return c.textContent.trim().toLowerCase();
      return c.dataset.key === "" ? Infinity : parseFloat(c.dataset.key);
    };
    Array.prototype.slice.call(body.rows).sort(function (a, b) {
      var x = key(a), y = key(b);
      return (x > y ? 1 : x < y ? -1 : 0) * dir;
    }).forEach(function (row) { body.appendChild(row); });
  });
});
"""


def inline(part: d.Inline) -> str:
    if isinstance(part, d.Code):
        return f"<code>{escape(part.text)}</code>"
    if isinstance(part, d.Strong):
        return f"<strong>{escape(part.text)}</strong>"
    if isinstance(part, d.Link):
        return f'<a href="{escape(part.target)}">{escape(part.text)}</a>'
    return escape(part)


def line(parts: d.Line) -> str:
    return "".join(inline(p) for p in parts)


def sort_key(value: float | None) -> str:
    """A number JavaScript's parseFloat reads; none (or nan) is "" and sorts last."""
    if value is None or math.isnan(value):
        return ""
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def table(t: d.Table) -> str:
    attrs = ' class="sortable"' if t.sortable else ""
    head = "".join(f"<th>{escape(h)}</th>" for h in t.header)
    rows = []
    for r, row in enumerate(t.rows):
        cells = []
        for c, parts in enumerate(row):
            cls = ' class="num"' if t.numeric[c] else ""
            key = ""
            if t.sort_keys is not None and t.numeric[c]:
                key = f' data-key="{sort_key(t.sort_keys[r][c])}"'
            cells.append(f"<td{cls}{key}>{line(parts)}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (f"<table{attrs}>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(rows)
            + "\n</tbody>\n</table>")


def figure(f: d.Figure) -> str:
    data = base64.b64encode(f.path.read_bytes()).decode("ascii")
    return f'<figure><img alt="{escape(f.alt)}" src="data:image/png;base64,{data}"></figure>'


def block(b: d.Block) -> str:
    if isinstance(b, d.Heading):
        return f'<h{b.level} id="{escape(b.anchor)}">{escape(b.text)}</h{b.level}>'
    if isinstance(b, d.Para):
        return f"<p>{line(b.parts)}</p>"
    if isinstance(b, d.Quote):
        return f"<blockquote><p>{escape(b.text)}</p></blockquote>"
    if isinstance(b, d.Bullets):
        return "<ul>\n" + "\n".join(f"<li>{line(item)}</li>" for item in b.items) + "\n</ul>"
    if isinstance(b, d.Table):
        return table(b)
    if isinstance(b, d.Figure):
        return figure(b)
    raise TypeError(f"unknown block {b!r}")


def contents(blocks: list[d.Block]) -> str:
    """Table of contents: the level-2 headings, each with its level-3 headings."""
    groups: list[tuple[d.Heading, list[d.Heading]]] = []
    for b in blocks:
        if isinstance(b, d.Heading) and b.level == 2:
            groups.append((b, []))
        elif isinstance(b, d.Heading) and b.level == 3 and groups:
            groups[-1][1].append(b)
    items = []
    for top, subs in groups:
        inner = "".join(f'<li><a href="#{escape(h.anchor)}">{escape(h.text)}</a></li>'
                        for h in subs)
        items.append(f'<li><a href="#{escape(top.anchor)}">{escape(top.text)}</a>'
                     + (f"<ul>{inner}</ul>" if inner else "") + "</li>")
    return '<nav><h2 id="contents">Contents</h2>\n<ul>\n' + "\n".join(items) + "\n</ul></nav>"


def render(blocks: list[d.Block], title: str) -> str:
    at = next((i for i, b in enumerate(blocks) if isinstance(b, d.Heading) and b.level == 2),
              len(blocks))  # the contents go before the first section
    body = [block(b) for b in blocks[:at]] + [contents(blocks)] + [block(b) for b in blocks[at:]]
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            + "\n".join(body) + f"\n<script>{SCRIPT}</script>\n</body>\n</html>\n")
