"""`python -m reports build`: each claim's section in its order, a self-contained escaped HTML
file, byte-identical rebuilds, the README summary between its markers, the change review."""

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
from reports.markdown import escape
from tests.reports.factory import png, record, some_claims, write_claim, write_results

HOSTILE = 'A <script>alert("x")</script> & *W*5 | `code` [link](http://evil.example/x.png)'

SAFE_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "nav", "ul",
             "li", "a", "p", "strong", "code", "blockquote", "table", "thead", "tbody", "tr",
             "th", "td", "figure", "figcaption", "img", "script", "span", "section", "details",
             "summary", "div", "fieldset", "legend", "label", "input", "select", "option"}


class Tags(HTMLParser):
    """The tags a browser would see, with their attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append((tag, attrs))


@pytest.fixture
def results(tmp_path: Path) -> Path:
    claims = some_claims()
    claims[0]["statement"] = HOSTILE
    claims[0]["finding"] = "see <img src='https://evil.example/a.png'>"
    claims[0]["checks"][0]["sentence"] = '<b onmouseover="x()">bold</b>'
    return write_results(tmp_path / "results", claims)


def built(results: Path, out: Path, **kwargs: Any) -> tuple[str, str]:
    build(results, out, **kwargs)
    return (out / "REPORT.md").read_text(), (out / "report.html").read_text()


def section_of(md: str, claim_id: str) -> str:
    start = md.index(f"\n### {claim_id}\n")
    end = min(i for i in (md.find("\n### ", start + 1), md.find("\n## ", start + 1), len(md))
              if i > 0)
    return md[start:end if end > 0 else len(md)]


def test_section_opens_with_quote_verdict_finding_checks_figure_metrics(results: Path,
                                                                       tmp_path: Path) -> None:
    md, _ = built(results, tmp_path / "out")
    text = section_of(md, "tanh.saturation")
    lines = [line for line in text.split("\n") if line.strip()]
    assert lines[0] == "### tanh.saturation"
    assert lines[1] == "> much of h sits at 1"
    assert lines[3] == "> — L:46-51; tested as: The statement of tanh.saturation"
    assert lines[4].startswith("**Verdict:** **partly reproduced** (borderline: a deciding")
    assert lines[5].startswith("**Finding.** The finding of tanh.saturation")
    assert lines[6:8] == ["- **fail** saturated above 0.2: fail",
                          "- **pass** saturated below 0.5: pass (partly)"]
    assert lines[8] == "![tanh.saturation](figures/tanh.saturation.png)"
    assert lines[9] == "| metric | measured \\[95% CI\\] |"  # no source value, no prediction
    assert lines[11] == "| `saturated` | 0.2500 \\[0.2000, 0.3000\\] fraction (n=4) |"
    assert lines[12] == "<details><summary>More</summary>"
    assert "**What holds instead.** only with the lecture's init" in text
    assert text.rstrip().endswith("</details>")
    first = section_of(md, "init.expected-loss")
    assert "| `loss` | 3.29 | 3.300 \\[3.280, 3.310\\] nats (n=4) | 3.296 |" in first
    assert "| `count` | — | 0 ulps | — |" in first and "<details>" in first
    # the answered row of questions lists its answers instead of checks
    assert "- **Does the bias matter?** Not after BatchNorm: 0.000 nats." in md
    assert md.count("**What holds instead.**") == 2  # not reproduced claims and partly only


def test_summary_has_declared_headline_and_counts_answered_apart(results: Path,
                                                                 tmp_path: Path) -> None:
    md, _ = built(results, tmp_path / "out")
    assert ("| ID | claim | source | headline metric | source value | measured \\[95% CI\\] | "
            "verdict | borderline |") in md
    assert ("| [tanh.saturation](#tanhsaturation) | The statement of tanh.saturation | L:46-51 | "
            "`saturated` | — | 0.2500 \\[0.2000, 0.3000\\] fraction (n=4) | "
            "**partly reproduced** | yes |") in md
    assert "| **reproduced** | 1 |" in md and "| **not reproduced** | 1 |" in md
    assert "| judged claims | 3 |" in md and "| **answered** | 1 |" not in md
    assert "Answered, not judged: 1 row of questions" in md
    assert "3 judged claims, 1 of them borderline" in md


def test_every_claim_gets_its_figure(results: Path, tmp_path: Path) -> None:
    md, page = built(results, tmp_path / "out")
    for claim_id in ("init.expected-loss", "tanh.saturation", "bias.linear", "bias.todo"):
        anchor = claim_id.replace(".", "")
        assert f"](figures/{claim_id}.png)" in md and f"](#{anchor})" in md
        copied = tmp_path / "out" / "figures" / f"{claim_id}.png"
        assert copied.read_bytes() == (results / claim_id / "figure.png").read_bytes()
        assert f'<h3 id="{anchor}">' in page and f'<section class="claim" data-claim="{anchor}"' \
            in page
    # a review copy and a thumbnail of each
    assert page.count('src="data:image/png;base64,') == 8


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
    assert page.count("<script>") == 1 and "<script src" not in page
    assert not any(k.startswith("on") for _, attrs in tags.seen for k, _ in attrs)
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "&lt;img src=&#x27;https://evil.example/a.png&#x27;&gt;" in page
    assert "&lt;b onmouseover=&quot;x()&quot;&gt;bold&lt;/b&gt;" in page
    # Markdown shows the same text literally; the only raw HTML is the <details> collapse
    raw = re.findall(r"(?<!\\)<[^>]*>", md)
    assert set(raw) <= {"<details>", "<summary>", "</summary>", "</details>"}, set(raw)
    assert "\\<script\\>alert" in md and "\\*W\\*5 \\|" in md and "\\<b onmouseover" in md


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


def test_table_excerpt_keeps_seeds_whole(tmp_path: Path) -> None:
    rows = "".join(f"{2147483647 + i}.0,{i / 7}\n" for i in range(100))
    write_claim(tmp_path / "r", record("init.x"), table="seed,loss\n" + rows)
    md, _ = built(tmp_path / "r", tmp_path / "out")
    assert "`init.x/table.csv`: 100 rows × 2 columns; the first 2 rows, 2 columns:" in md
    assert "| 2147483647 | 0 |" in md and "| 2147483648 | 0.1429 |" in md
    assert "| 2147483649 |" not in md and "e+09" not in md


def test_missing_and_unreadable_figures_and_stale_ones(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "gone.claim.png").write_bytes(png())
    (results / "bias.linear" / "figure.png").unlink()
    (results / "bias.todo" / "figure.png").write_bytes(b"not a png")
    report = build(results, out)
    assert not (out / "figures" / "gone.claim.png").exists()
    assert not (out / "figures" / "bias.linear.png").exists()
    assert any("bias.linear/figure.png: missing" in w for w in report.warnings)
    assert any("bias.todo/figure.png: not a readable image" in w for w in report.warnings)
    assert "No figure was recorded (`bias.linear/figure.png` is missing)." in \
           (out / "REPORT.md").read_text()
    assert "The figure bias.todo.png could not be read" in (out / "report.html").read_text()


def test_readme_summary_between_markers(results: Path, tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# Project\n\nintro\n\n{MARK_START}\nold typed table\n{MARK_END}\n\nrest\n")
    build(results, tmp_path / "reports", readme=readme)
    text = readme.read_text()
    assert text.startswith("# Project\n\nintro\n\n" + MARK_START) and text.endswith(
        MARK_END + "\n\nrest\n")
    assert "old typed table" not in text
    assert "[init.expected-loss](reports/REPORT.md#initexpected-loss)" in text
    assert "| **not evaluated** | 0 |" in text and "Answered, not judged: 1 row" in text
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


def test_baseline_review_lists_verdict_and_rule_changes(results: Path, tmp_path: Path) -> None:
    claims = some_claims()
    claims[0]["verdict"] = "not reproduced"
    claims[2]["tolerances"] = {"ln 27 as 3.29": {"value": 3.29, "interval": "truncated",
                                                 "digits": 3, "why": "L:23"}}
    claims[2]["rules_hash"] = "ffff000011112222"
    new = write_results(tmp_path / "new", claims)
    md, page = built(new, tmp_path / "out", baseline=results)
    assert md.index("## Changes against the baseline") < md.index("## Summary")
    assert "| init.expected-loss | **VERDICT CHANGED** | reproduced | not reproduced |  |" in md
    assert ("| bias.linear | **RULE CHANGED** | a1b2c3d4e5f60718 | ffff000011112222 | rules_hash "
            "a1b2c3d4e5f60718 → ffff000011112222; tolerances\\['ln 27 as 3.29'\\].digits: "
            "2 → 3 |") in md
    assert 'id="changes-against-the-baseline"' in page
    md, _ = built(new, tmp_path / "plain")
    assert "Changes against the baseline" not in md
    md, _ = built(new, tmp_path / "same", baseline=new)
    assert "no verdict, borderline or rule change, no claim came or went. Other regressions " \
           "of metrics: none." in md


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
    assert main(["build", "--results", str(results), "--baseline", str(tmp_path / "no")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'no'}: no such results folder\n"


def unescape(text: str) -> str:
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", text)


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40))
def test_markdown_escape_keeps_the_text(text: str) -> None:
    escaped = escape(text)
    assert unescape(escaped) == re.sub(r"\s+", " ", text)  # shown as written
    assert "\n" not in escaped  # one line: safe in a table row
    assert not re.search(r"(?<!\\)[<>|*`\[\]]", escaped)  # nothing left to interpret


def test_reports_reads_files_only(results: Path, tmp_path: Path) -> None:
    """The package imports neither torch nor the ablations nor the library (nor pandas, numpy or
    matplotlib): Pillow, for the embedded figures, is its one dependency."""
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
