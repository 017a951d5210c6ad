"""The HTML report, seen in a real browser: a small real acceptance run on a copy of the repository
writes reports/acceptance.html (or TSE_BROWSER_REPORT names the report of a run already made: CI's
acceptance step, so no second stack proves the same thing; tests/browser/conftest.py makes it once for
both browser modules); headless Chromium renders it, saves a screenshot to the main repository's
reports/acceptance-screenshot.png, and measures whether the sign-off section (the
`#verdict` line and the `#checklist` table) is actually visible, not merely present in the HTML, and
comes first: the title naming the milestone, then the verdict, pytest-html's environment below.

Needs a chromium binary (infra/host/ensure-browser installs Debian's) and Docker.
"""
from __future__ import annotations

import json
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from steps.report.checklist import load_mapping
from tests.acceptance_copy import ROOT
from tests.browser.chromium import PNG_SIGNATURE, chromium

pytestmark = pytest.mark.docker  # renders a report of a real acceptance run

SCREENSHOT = ROOT / "reports" / "acceptance-screenshot.png"
SCREENSHOT_WINDOW = "1400,2200"
# The visibility check uses a laptop-sized window: "first screenful" means what a reader sees
# without scrolling, not what fits in the tall screenshot.
CHECK_WINDOW = "1400,900"
MILESTONE = load_mapping(ROOT / "features" / "checklist.yaml")["milestone"]

# Runs after the report's own scripts (pytest-html renders its tables from JavaScript) and leaves
# its measurements in <body data-visibility="{json}">, which `--dump-dom` prints.
MEASURE = """
<script>
window.addEventListener("load", function () {
  setTimeout(function () {
    function measure(id) {
      var el = document.getElementById(id);
      if (!el) return {present: false};
      var r = el.getBoundingClientRect(), style = getComputedStyle(el), transparent = false;
      for (var e = el; e && e.nodeType === 1; e = e.parentElement) {
        if (parseFloat(getComputedStyle(e).opacity) === 0) transparent = true;
      }
      var firstScreen = r.top >= 0 && r.top < window.innerHeight && r.right > 0 && r.left < window.innerWidth;
      var uncovered = false;
      if (firstScreen) {
        var x = r.left + Math.min(r.width, window.innerWidth - r.left) / 2;
        var y = r.top + Math.min(r.height, window.innerHeight - r.top) / 2;
        var hit = document.elementFromPoint(x, y);
        uncovered = !!hit && (el === hit || el.contains(hit));
      }
      return {
        present: true,
        visible: r.width > 0 && r.height > 0 && style.display !== "none" &&
                 style.visibility !== "hidden" && !transparent,
        first_screen: firstScreen, uncovered: uncovered,
        rect: [Math.round(r.left), Math.round(r.top), Math.round(r.width), Math.round(r.height)],
        display: style.display, visibility: style.visibility, transparent: transparent,
        text: (el.innerText || "").trim().slice(0, 500)
      };
    }
    var result = {viewport: [window.innerWidth, window.innerHeight], title: measure("title"),
                  verdict: measure("verdict"), checklist: measure("checklist"), environment: measure("environment"),
                  results: measure("results-table"), document_title: document.title, rows: []};
    // pytest-html's script still works on the arranged page: it filled the environment table and the
    // results table, and its filters hide the results they name.
    function resultRows() { return document.querySelectorAll("#results-table tbody.results-table-row").length; }
    result.environment_rows = document.querySelectorAll("#environment tr").length;
    result.result_rows = resultRows();
    var filters = document.querySelectorAll("input[name='filter_checkbox']:not([disabled])");
    filters.forEach(function (box) { box.click(); });
    result.result_rows_all_filtered_out = resultRows() - document.querySelectorAll("#not-found-message").length;
    filters.forEach(function (box) { box.click(); });
    result.result_rows_after_filters_back = resultRows();
    document.querySelectorAll("#checklist tr[data-item]").forEach(function (row) {
      var cell = row.querySelector("td.verdict");
      result.rows.push({item: row.dataset.item, verdict_cell: !!cell,
                        verdict_class: cell ? cell.className : "", verdict_text: cell ? cell.innerText.trim() : "",
                        height: row.getBoundingClientRect().height});
    });
    document.body.dataset.visibility = JSON.stringify(result);
  }, 200);
});
</script>
"""


def screenshot(binary: str, page: Path, png: Path, profile: Path) -> subprocess.CompletedProcess:
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    return chromium(binary, profile, f"--window-size={SCREENSHOT_WINDOW}", f"--screenshot={png}", page.as_uri())


def measure_visibility(binary: str, page: Path, scratch: Path) -> dict:
    """Renders a copy of `page` with MEASURE injected and returns what it measured."""
    source = page.read_text(encoding="utf-8")
    end = source.rfind("</body>")
    probe = scratch / f"{page.stem}.measured.html"
    probe.write_text(source[:end] + MEASURE + source[end:] if end >= 0 else source + MEASURE, encoding="utf-8")
    done = chromium(binary, scratch / "profile-measure", f"--window-size={CHECK_WINDOW}", "--dump-dom", probe.as_uri())
    parser = _BodyData()
    parser.feed(done.stdout)
    assert parser.visibility is not None, (
        f"the measuring script left no result (chromium exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(parser.visibility)


class _BodyData(HTMLParser):
    def __init__(self):
        super().__init__()
        self.visibility = None

    def handle_starttag(self, tag, attrs):
        if tag == "body":
            self.visibility = dict(attrs).get("data-visibility", self.visibility)


@pytest.fixture(scope="module")
def visibility(browser, report, tmp_path_factory) -> dict:
    return measure_visibility(browser, report, tmp_path_factory.mktemp("browser"))


def test_screenshot_of_the_report(browser, report, tmp_path):
    done = screenshot(browser, report, SCREENSHOT, tmp_path / "profile")
    assert SCREENSHOT.is_file(), f"chromium wrote no screenshot (exit {done.returncode}):\n{done.stderr[-3000:]}"
    data = SCREENSHOT.read_bytes()
    assert data.startswith(PNG_SIGNATURE), f"{SCREENSHOT} is not a PNG"
    assert len(data) > 20_000, f"{SCREENSHOT} is only {len(data)} bytes: a blank page?"


def test_verdict_is_visible_on_the_first_screen_and_passed(visibility):
    verdict = visibility["verdict"]
    assert verdict["present"], "the report has no element with id 'verdict'"
    assert verdict["visible"], f"#verdict is in the HTML but not visible: {verdict}"
    assert verdict["first_screen"], f"#verdict is not on the first screen ({visibility['viewport']}): {verdict}"
    assert verdict["uncovered"], f"#verdict is covered by another element: {verdict}"
    assert "BDD criterion" in verdict["text"], f"#verdict does not name the BDD criterion: {verdict['text']!r}"
    assert "PASSED" in verdict["text"], f"#verdict does not say PASSED for a passing run: {verdict['text']!r}"


def test_checklist_is_visible_with_a_verdict_per_item(visibility):
    checklist, rows = visibility["checklist"], visibility["rows"]
    assert checklist["present"], "the report has no element with id 'checklist'"
    assert checklist["visible"], f"#checklist is in the HTML but not visible: {checklist}"
    assert rows, "#checklist has no <tr data-item=...> rows"
    assert all(row["verdict_cell"] for row in rows), f"rows without a td.verdict cell: {rows}"
    assert all(row["height"] > 0 for row in rows), f"rows rendered with no height: {rows}"
    selected = [row for row in rows if row["item"] == "1.1"]
    assert selected, f"no row for item 1.1 (selected in this run): {[row['item'] for row in rows]}"
    shown = (selected[0]["verdict_class"] + " " + selected[0]["verdict_text"]).lower()
    assert "pass" in shown, f"item 1.1 passed in this run but its verdict cell shows {selected[0]}"


def test_the_first_screen_is_the_sign_off_under_a_title_naming_the_milestone(visibility):
    title, verdict, environment = visibility["title"], visibility["verdict"], visibility["environment"]
    assert MILESTONE in visibility["document_title"], \
        f"<title> does not name {MILESTONE}: {visibility['document_title']!r}"
    assert title["present"] and title["first_screen"] and MILESTONE in title["text"], \
        f"the <h1> on the first screen does not name {MILESTONE}: {title}"
    assert environment["present"], "pytest-html's environment table (id 'environment') is gone"
    assert title["rect"][1] < verdict["rect"][1] < environment["rect"][1], (
        f"expected the title, then #verdict, then the environment table: title at y={title['rect'][1]}, "
        f"verdict at y={verdict['rect'][1]}, environment at y={environment['rect'][1]}")
    assert not environment["first_screen"], f"the environment table is on the first screen: {environment}"


def test_pytest_htmls_script_still_fills_and_filters_its_tables(visibility):
    assert visibility["environment_rows"] > 0, "pytest-html's script left the environment table empty"
    assert visibility["result_rows"] > 0, "pytest-html's script rendered no row of the results table"
    assert visibility["result_rows_all_filtered_out"] == 0, (
        f"{visibility['result_rows_all_filtered_out']} result rows still shown with every filter unchecked")
    assert visibility["result_rows_after_filters_back"] == visibility["result_rows"], visibility
