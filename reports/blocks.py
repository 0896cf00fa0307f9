"""The report as a small document model: what is said is decided once (reports.document), and
reports.markdown and reports.htmlpage only render it, so the two formats cannot drift apart."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Code:
    text: str


@dataclass(frozen=True)
class Strong:
    text: str


@dataclass(frozen=True)
class Link:
    text: str
    target: str  # "#anchor" or a relative path


@dataclass(frozen=True)
class Badge:
    """A verdict (or a check's outcome), coloured in HTML by its class, bold in Markdown."""

    text: str
    css: str


Inline = str | Code | Strong | Link | Badge
Line = tuple[Inline, ...]


@dataclass(frozen=True)
class Heading:
    level: int
    text: str
    anchor: str


@dataclass(frozen=True)
class Para:
    parts: Line


@dataclass(frozen=True)
class Quote:
    lines: tuple[Line, ...]


@dataclass(frozen=True)
class Bullets:
    items: tuple[Line, ...]


@dataclass(frozen=True)
class Figure:
    path: Path  # the results' figure.png
    name: str  # its name under figures/
    alt: str


@dataclass(frozen=True)
class RowMeta:
    """What the HTML filters read from a summary row: the claim it stands for and its figure's
    thumbnail."""

    anchor: str
    verdict: str
    family: str
    borderline: bool
    figure: Figure | None


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[Line, ...], ...]
    numeric: tuple[bool, ...]  # right-aligned columns
    sort_keys: tuple[tuple[float | None, ...], ...] | None = None  # per row and column (HTML)
    meta: tuple[RowMeta, ...] | None = None  # the summary table's rows (HTML)


@dataclass(frozen=True)
class Details:
    """Collapsed until opened: `<details>` in both formats."""

    summary: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Section:
    """One claim: HTML wraps it so that the filters can hide it; Markdown renders its blocks."""

    meta: RowMeta
    blocks: tuple[Block, ...]


Block = Heading | Para | Quote | Bullets | Table | Figure | Details | Section


def slug(text: str) -> str:
    """The anchor a code-hosting site gives a heading: lower case, punctuation other than '-'
    and '_' dropped, spaces to '-' (GitHub's rule); HTML ids use the same, so links agree."""
    kept = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return kept.replace(" ", "-")


def verdict_css(verdict: str) -> str:
    """'partly reproduced' -> 'v-partly-reproduced': the class that colours it."""
    return "v-" + re.sub(r"[^a-z]+", "-", verdict.lower()).strip("-")
