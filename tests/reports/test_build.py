"""`python -m reports build`: sections and figures for every claim, a self-contained escaped
HTML file, byte-identical rebuilds, the README summary between its markers."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reports.__main__ import main
from reports.build import MARK_END, MARK_START, build
from reports.document import TABLE_MAX_ROWS
from reports.markdown import escape
from tests.reports.factory import png, record, three_claims, write_claim, write_results

HOSTILE = 'A <script>alert("x")</script> & *W*5 | `code` [link](http://evil.example/x.png)'


SAFE_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "nav", "ul",
             "li", "a", "p", "strong", "code", "blockquote", "table", "thead", "tbody", "tr",
             "th", "td", "figure", "img", "script"}


class Tags(HTMLParser):
    """The tags a browser would see, with their attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append((tag, attrs))


@pytest.fixture
def results(tmp_path: Path) -> Path:
    claims = three_claims()
    claims[0]["statement"] = HOSTILE
    claims[0]["evidence"] = "see <img src='https://evil.example/a.png'>"
    return write_results(tmp_path / "results", claims)


def built(results: Path, out: Path, **kwargs: Any) -> tuple[str, str]:
    build(results, out, **kwargs)
    return (out / "REPORT.md").read_text(), (out / "report.html").read_text()


def test_every_claim_gets_a_section_and_its_figure(results: Path, tmp_path: Path) -> None:
    md, page = built(results, tmp_path / "out")
    for claim_id in ("init.expected-loss", "tanh.saturation", "bias.linear"):
        assert f"\n### {claim_id}\n" in md
        assert f"](figures/{claim_id}.png)" in md
        copied = tmp_path / "out" / "figures" / f"{claim_id}.png"
        assert copied.read_bytes() == (results / claim_id / "figure.png").read_bytes()
        assert f'<h3 id="{claim_id.replace(".", "")}">' in page
        assert f'href="#{claim_id.replace(".", "")}"' in page  # summary row and contents
    assert page.count('src="data:image/png;base64,') == 3
    # source value vs measured vs predicted, the quote, what holds instead
    assert "| `loss` | nats | 3.29 | 3.3 \\[3.28, 3.31\\] (n=4) | 3.2958 |" in md
    assert "> The quoted source sentence of init.expected-loss." in md
    assert "**What holds instead.** only with the lecture's init" in md
    assert "**What holds instead.** the bias matters" in md
    assert md.count("**What holds instead.**") == 2  # not for the reproduced claim
    assert "| reproduced | 1 |" in md and "| not reproduced | 1 |" in md
    assert "| total | 3 |" in md


def test_html_is_self_contained_and_escapes_text(results: Path, tmp_path: Path) -> None:
    md, page = built(results, tmp_path / "out")
    tags = Tags()
    tags.feed(page)
    assert {t for t, _ in tags.seen} <= SAFE_TAGS
    references = [v or "" for _, attrs in tags.seen for k, v in attrs if k in ("src", "href")]
    assert len(references) > 10
    for reference in references:  # anchors in the page and embedded images only
        assert reference.startswith(("#", "data:image/png;base64,")), reference
    assert not re.search(r"(?:src|href)\s*=\s*[\"']?\s*(?:https?:)?//", page)
    assert page.count("<script>") == 1 and "<script src" not in page  # only the sorter
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "&lt;img src=&#x27;https://evil.example/a.png&#x27;&gt;" in page
    # Markdown shows the same text literally: no raw tag, star or pipe survives unescaped
    assert not re.search(r"(?<!\\)<", md)
    assert "\\<script\\>alert" in md and "\\*W\\*5 \\|" in md


def test_rebuild_is_byte_identical_wherever_the_results_lie(results: Path,
                                                           tmp_path: Path) -> None:
    first = built(results, tmp_path / "a")
    assert built(results, tmp_path / "a") == first
    moved = shutil.copytree(results, tmp_path / "elsewhere" / "copy")
    assert built(moved, tmp_path / "b") == first
    listing = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*"))
    assert listing == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*"))
    for name in listing:
        if (tmp_path / "a" / name).is_file():
            assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_date_comes_from_argument_or_results_else_nothing(results: Path, tmp_path: Path) -> None:
    md, _ = built(results, tmp_path / "a")
    assert "**Date:** not recorded in the results" in md
    md, page = built(results, tmp_path / "b", date="2024-05-31")
    assert "**Date:** 2024-05-31" in md and "2024-05-31" in page
    write_claim(results, record("init.expected-loss", finished_at="2025-01-02T03:04:05+00:00"))
    md, _ = built(results, tmp_path / "c")
    assert "**Date:** 2025-01-02T03:04:05+00:00" in md


def test_long_table_is_truncated_with_a_note(tmp_path: Path) -> None:
    rows = "".join(f"{i},{i / 7}\n" for i in range(100))
    write_claim(tmp_path / "r", record("init.x"), table="step,loss\n" + rows)
    md, _ = built(tmp_path / "r", tmp_path / "out")
    assert "Table: 100 rows; numbers to 5 significant digits; showing the first 12 and last 4" \
           " of 100 rows." in md
    assert "| … 84 rows … |  |" in md and "| 99 | 14.143 |" in md and "| 50 |" not in md
    assert TABLE_MAX_ROWS < 100


def test_missing_figure_and_stale_figures(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "gone.claim.png").write_bytes(png())
    (results / "bias.linear" / "figure.png").unlink()
    report = build(results, out)
    assert not (out / "figures" / "gone.claim.png").exists()
    assert not (out / "figures" / "bias.linear.png").exists()
    assert any("bias.linear/figure.png: missing" in w for w in report.warnings)
    assert "No figure was recorded (`bias.linear/figure.png` is missing)." in \
           (out / "REPORT.md").read_text()


def test_readme_summary_between_markers(results: Path, tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Project\n\nintro\n\n{MARK_START}\nold typed table\n{MARK_END}\n\nrest\n")
    build(results, tmp_path / "reports", readme=readme)
    text = readme.read_text()
    assert text.startswith("# Project\n\nintro\n\n" + MARK_START) and text.endswith(
        MARK_END + "\n\nrest\n")
    assert "old typed table" not in text
    assert "[init.expected-loss](reports/REPORT.md#initexpected-loss)" in text
    assert "| not evaluated | 0 |" in text
    build(results, tmp_path / "reports", readme=readme)
    assert readme.read_text() == text  # idempotent


@pytest.mark.parametrize("content", ["no markers at all\n", f"{MARK_END}\n{MARK_START}\n",
                                     f"{MARK_START}\n{MARK_START}\n{MARK_END}\n"])
def test_readme_without_proper_markers_is_exit_2(results: Path, tmp_path: Path, content: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(content)
    out = tmp_path / "out"
    code = main(["build", "--results", str(results), "--out", str(out), "--readme", str(readme)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and str(readme) in err
    assert readme.read_text() == content and not out.exists()  # nothing written


def test_cli_build_and_bad_arguments(results: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "--results", str(results), "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "REPORT.md").is_file()
    for argv in (["build"], ["build", "--results", str(results), "--date", "yesterday"],
                 ["nonsense"], [], ["compare", str(results)]):
        with pytest.raises(SystemExit) as caught:
            main(argv)
        err = capsys.readouterr().err
        assert caught.value.code == 2 and err.count("\n") == 1 and "error:" in err, argv
    assert main(["build", "--results", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'none'}: no such results folder\n"


def unescape(text: str) -> str:
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", text)


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40))
def test_markdown_escape_keeps_the_text(text: str) -> None:
    escaped = escape(text)
    assert unescape(escaped) == re.sub(r"\s+", " ", text)  # shown as written
    assert "\n" not in escaped  # one line: safe in a table row
    assert not re.search(r"(?<!\\)[<>|*`\[\]]", escaped)  # nothing left to interpret


def test_reports_reads_files_only(results: Path, tmp_path: Path) -> None:
    """The package imports neither torch nor the ablations nor the library (nor pandas)."""
    script = (
        "import sys\n"
        "from reports.__main__ import main\n"
        f"code = main(['build', '--results', {str(results)!r}, '--out', {str(tmp_path)!r}])\n"
        f"code += main(['compare', {str(results)!r}, {str(results)!r}])\n"
        "heavy = {'torch', 'ablations', 'makemore', 'pandas', 'numpy', 'matplotlib'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
        "sys.exit(code)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
