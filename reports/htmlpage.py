"""The report as one self-contained HTML file: style and script inline, figures as base64 data
URIs at review size with thumbnails in the summary, filters (verdict, family, borderline) and a
search box over the claims, a table of contents. Every piece of text and every attribute value
is HTML-escaped; nothing refers outside the file."""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from html import escape

from reports import blocks as d
from reports.htmlassets import SCRIPT, STYLE
from reports.images import Embedded
from reports.markdown import FIGURES

Images = Mapping[str, Embedded | None]  # figure name -> its embedded copies (None: unreadable)


def inline(part: d.Inline) -> str:
    if isinstance(part, d.Code):
        return f"<code>{escape(part.text)}</code>"
    if isinstance(part, d.Strong):
        return f"<strong>{escape(part.text)}</strong>"
    if isinstance(part, d.Badge):
        return f'<span class="badge {escape(part.css)}">{escape(part.text)}</span>'
    if isinstance(part, d.Link):
        return f'<a href="{escape(part.target)}">{escape(part.text)}</a>'
    return escape(part)


def line(parts: d.Line) -> str:
    return "".join(inline(p) for p in parts)


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def sort_key(value: float | None) -> str:
    """A number JavaScript's parseFloat reads; none (or nan) is "" and sorts last."""
    if value is None or math.isnan(value):
        return ""
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


def claim_attrs(meta: d.RowMeta) -> str:
    return (f' data-claim="{escape(meta.anchor)}" data-verdict="{escape(meta.verdict)}"'
            f' data-family="{escape(meta.family)}"'
            f' data-borderline="{"yes" if meta.borderline else "no"}"')


def thumbnail(meta: d.RowMeta, images: Images) -> str:
    embedded = images.get(meta.figure.name) if meta.figure else None
    if embedded is None:
        return '<td class="thumb"></td>'
    return (f'<td class="thumb"><a href="#{escape(meta.anchor)}"><img alt="'
            f'{escape(meta.figure.alt if meta.figure else "")} (thumbnail)" '
            f'src="{data_uri(embedded.thumbnail)}"></a></td>')


def table(t: d.Table, images: Images) -> str:
    attrs = ' class="sortable summary"' if t.meta is not None else ""
    head = ("<th>figure</th>" if t.meta is not None else "") + "".join(
        f"<th>{escape(h)}</th>" for h in t.header)
    rows = []
    for r, row in enumerate(t.rows):
        cells = [thumbnail(t.meta[r], images)] if t.meta is not None else []
        for c, parts in enumerate(row):
            cls = ' class="num"' if t.numeric[c] else ""
            key = ""
            if t.sort_keys is not None and t.numeric[c]:
                key = f' data-key="{sort_key(t.sort_keys[r][c])}"'
            cells.append(f"<td{cls}{key}>{line(parts)}</td>")
        rows.append(f"<tr{claim_attrs(t.meta[r]) if t.meta else ''}>{''.join(cells)}</tr>")
    return (f"<table{attrs}>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(rows)
            + "\n</tbody>\n</table>")


def filters(metas: tuple[d.RowMeta, ...]) -> str:
    """The controls above the summary: the verdicts and families that occur, in report order."""
    verdicts = dict.fromkeys(m.verdict for m in metas)
    families = dict.fromkeys(m.family for m in metas)
    boxes = "".join(f'<label><input type="checkbox" name="verdict" value="{escape(v)}" checked> '
                    f'<span class="badge {escape(d.verdict_css(v))}">{escape(v)}</span></label>'
                    for v in verdicts)
    options = "".join(f'<option value="{escape(f)}">{escape(f)}</option>' for f in families)
    return ('<div id="filters" role="search">'
            f"<fieldset><legend>Verdict</legend>{boxes}</fieldset>"
            '<label>Family <select id="family"><option value="">all</option>'
            f"{options}</select></label>"
            '<label><input type="checkbox" id="borderline"> borderline only</label>'
            '<label>Search <input type="search" id="search" '
            'placeholder="ID or words of a claim"></label>'
            '<span id="shown" aria-live="polite"></span></div>')


def figure(f: d.Figure, images: Images) -> str:
    embedded = images.get(f.name)
    full = f"Full size: {FIGURES}/{f.name} beside this page."
    if embedded is None:
        return f"<p>The figure {escape(f.name)} could not be read; {escape(full)}</p>"
    return (f'<figure><img alt="{escape(f.alt)}" src="{data_uri(embedded.review)}">'
            f"<figcaption>{escape(full)}</figcaption></figure>")


def block(b: d.Block, images: Images) -> str:
    if isinstance(b, d.Heading):
        return f'<h{b.level} id="{escape(b.anchor)}">{escape(b.text)}</h{b.level}>'
    if isinstance(b, d.Para):
        return f"<p>{line(b.parts)}</p>"
    if isinstance(b, d.Quote):
        return "<blockquote>" + "".join(f"<p>{line(p)}</p>" for p in b.lines) + "</blockquote>"
    if isinstance(b, d.Bullets):
        return "<ul>\n" + "\n".join(f"<li>{line(item)}</li>" for item in b.items) + "\n</ul>"
    if isinstance(b, d.Table):
        return (filters(b.meta) + "\n" if b.meta is not None else "") + table(b, images)
    if isinstance(b, d.Figure):
        return figure(b, images)
    if isinstance(b, d.Details):
        return (f"<details><summary>{escape(b.summary)}</summary>\n"
                + "\n".join(block(x, images) for x in b.blocks) + "\n</details>")
    if isinstance(b, d.Section):
        return (f'<section class="claim"{claim_attrs(b.meta)}>\n'
                + "\n".join(block(x, images) for x in b.blocks) + "\n</section>")
    raise TypeError(f"unknown block {b!r}")


def headings(blocks: list[d.Block]) -> list[d.Heading]:
    found: list[d.Heading] = []
    for b in blocks:
        if isinstance(b, d.Heading):
            found.append(b)
        elif isinstance(b, d.Section):
            found += headings(list(b.blocks))
    return found


def contents(blocks: list[d.Block]) -> str:
    """Table of contents: the level-2 headings, each with its level-3 headings."""
    groups: list[tuple[d.Heading, list[d.Heading]]] = []
    for h in headings(blocks):
        if h.level == 2:
            groups.append((h, []))
        elif h.level == 3 and groups:
            groups[-1][1].append(h)
    items = []
    for top, subs in groups:
        inner = "".join(f'<li><a href="#{escape(h.anchor)}">{escape(h.text)}</a></li>'
                        for h in subs)
        items.append(f'<li><a href="#{escape(top.anchor)}">{escape(top.text)}</a>'
                     + (f"<ul>{inner}</ul>" if inner else "") + "</li>")
    return '<nav><h2 id="contents">Contents</h2>\n<ul>\n' + "\n".join(items) + "\n</ul></nav>"


def render(blocks: list[d.Block], title: str, images: Images) -> str:
    at = next((i for i, b in enumerate(blocks) if isinstance(b, d.Heading) and b.level == 2),
              len(blocks))  # the contents go before the first section
    body = [block(b, images) for b in blocks[:at]] + [contents(blocks)] + [
        block(b, images) for b in blocks[at:]]
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            + "\n".join(body) + f"\n<script>{SCRIPT}</script>\n</body>\n</html>\n")
