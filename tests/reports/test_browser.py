"""report.html in a real browser (headless Chromium driven by selenium): each filter hides the
right claims, in the summary and in the sections, every embedded image decodes, and the console
stays free of errors. Skipped, with the reason, where selenium or Chromium is not installed
(`pip install selenium` and Debian's `chromium chromium-driver`; .ci/run installs them)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from reports.build import build
from tests.reports.factory import record, some_claims, write_results

pytestmark = pytest.mark.browser

# The closed network: Chromium must not try to reach anything, nor share a profile.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync")


def browser_parts() -> tuple[str, str]:
    """Chromium and its driver, or skip saying what is missing."""
    pytest.importorskip("selenium", reason="selenium is not installed (pip install selenium)")
    binary = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
    driver = shutil.which("chromedriver")
    if binary is None or driver is None:
        pytest.skip("no Chromium with chromedriver on PATH (apt-get install chromium "
                    "chromium-driver)")
    return binary, driver


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    binary, driver_path = browser_parts()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    root = tmp_path_factory.mktemp("browser")
    claims = [*some_claims(), record("init.unevaluated", verdict="not evaluated")]
    write_results(root / "results", claims)
    build(root / "results", root / "out")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={root / 'profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.get((root / "out" / "report.html").as_uri())
        yield driver
    finally:
        driver.quit()


ALL = {"initexpected-loss", "initunevaluated", "tanhsaturation", "biaslinear", "biastodo"}


def shown(driver: Any) -> set[str]:
    """The claims whose summary row is shown; their sections must be shown alike."""
    rows = driver.execute_script(
        "return Array.from(document.querySelectorAll('tr[data-claim]'))"
        ".filter(e => !e.hidden && e.offsetParent !== null).map(e => e.dataset.claim)")
    sections = driver.execute_script(
        "return Array.from(document.querySelectorAll('section[data-claim]'))"
        ".filter(e => !e.hidden && e.offsetParent !== null).map(e => e.dataset.claim)")
    assert set(rows) == set(sections)
    return set(rows)


def test_verdict_filters_hide_their_claims(page: Any) -> None:
    assert shown(page) == ALL
    verdicts = {"reproduced": {"initexpected-loss"}, "not evaluated": {"initunevaluated"},
                "partly reproduced": {"tanhsaturation"}, "not reproduced": {"biaslinear"},
                "answered": {"biastodo"}}
    for verdict, claims in verdicts.items():
        box = page.find_element("css selector", f'input[name=verdict][value="{verdict}"]')
        box.click()
        assert shown(page) == ALL - claims, verdict
        box.click()
    assert shown(page) == ALL


def test_family_borderline_and_search(page: Any) -> None:
    from selenium.webdriver.support.ui import Select

    family = Select(page.find_element("id", "family"))
    for name, claims in (("init", {"initexpected-loss", "initunevaluated"}),
                         ("tanh", {"tanhsaturation"}), ("bias", {"biaslinear", "biastodo"})):
        family.select_by_value(name)
        assert shown(page) == claims, name
        headings = page.execute_script(
            "return Array.from(document.querySelectorAll('h2[id^=family-]'))"
            ".filter(h => !h.hidden).map(h => h.id)")
        assert headings == [f"family-{name}"]
    family.select_by_value("")
    page.find_element("id", "borderline").click()
    assert shown(page) == {"tanhsaturation"}
    assert page.find_element("id", "shown").text == "1 of 5 claims shown"
    page.find_element("id", "borderline").click()
    search = page.find_element("id", "search")
    search.send_keys("batchnorm")  # in bias.todo's answer, inside its section only
    assert shown(page) == {"biastodo"}
    search.clear()
    search.send_keys("statement of")
    assert shown(page) == ALL
    search.send_keys(" expected-loss")  # every word must occur
    assert shown(page) == {"initexpected-loss"}
    search.clear()
    search.send_keys(" ")  # clear() fires no input event; typing does
    assert shown(page) == ALL


def test_every_image_decodes_and_the_console_is_clean(page: Any) -> None:
    failures = page.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "const imgs = Array.from(document.images);"
        "Promise.all(imgs.map(i => i.decode().then(() => i.naturalWidth > 0 ? '' : i.alt,"
        "                                           () => i.alt || 'unnamed')))"
        ".then(r => done([imgs.length].concat(r.filter(Boolean))));")
    assert failures == [10]  # 5 figures and 5 thumbnails, none failed
    errors = [e for e in page.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert errors == []
