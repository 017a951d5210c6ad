"""The HTML report's page arranged for signing off (steps/report/html_page.py): the sign-off right
after the title, pytest-html's environment after its results, a print stylesheet; on pages made from
pytest-html's own template, and end to end through its hooks in a small pytest run."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jinja2
import pytest
import pytest_html

from steps.report import html_page
from steps.report.checklist import load_mapping
from steps.report.html_page import PAGE_CSS_ID, PAGE_JS_ID, arrange_page, page_title

ROOT = Path(__file__).resolve().parents[2]
RESOURCES = Path(pytest_html.__file__).parent / "resources"
# A nested <section> and a table inside, as the sign-off may grow them: the move takes the whole.
SIGN_OFF = ("<section id='sign-off'><h2>Milestone X: sign-off</h2><p id='verdict'>BDD criterion: PASSED</p>"
            "<section id='inner'><table id='checklist'><tr><th>item</th></tr><tr><td>1.1</td></tr></table></section>"
            "<div id='waivers'><ul><li>W.1</li></ul></div></section>")


def pytest_html_page(prefix: list[str], title: str = "acceptance.html") -> str:
    """A page as pytest-html 4 renders it, from its own template."""
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(str(RESOURCES)), autoescape=True)
    return environment.get_template("index.jinja2").render(
        title=title, date="07-Dec-2026", time="02:27:34", version=pytest_html.__version__, styles="body {}",
        run_count="1 test took 1 ms.", running_state="finished", self_contained=True,
        outcomes={"passed": {"label": "Passed", "value": 1}}, test_data="{}",
        table_head=["<th class='sortable' data-column-type='result'>Result</th>"],
        additional_summary={"prefix": prefix, "summary": [], "postfix": []})


def _positions(page: str, *markers: str) -> list[int]:
    found = [page.find(marker) for marker in markers]
    assert all(position >= 0 for position in found), dict(zip(markers, found, strict=True))
    return found


def test_the_sign_off_comes_right_after_the_title_and_the_environment_after_the_results():
    page = arrange_page(pytest_html_page(["<style>#sign-off {}</style>", SIGN_OFF]))
    title, sign_off, verdict, generated, environment, results, footer = _positions(
        page, '<h1 id="title">', "<section id='sign-off'>", "id='verdict'", "<p>Report generated on",
        '<div id="environment-header">', '<table id="results-table">', "<footer>")
    assert title < sign_off < verdict < generated < results < environment < footer
    assert page[page.find("</h1>") + len("</h1>"):sign_off].strip() == ""
    assert SIGN_OFF in page, "the section is moved whole, nested section and waivers included"
    assert page.count("<section id='sign-off'>") == 1 and page.count('<table id="environment">') == 1
    assert '<div class="additional-summary prefix">' in page and "<style>#sign-off {}</style>" in page


def test_the_print_stylesheet_and_the_script_are_in_the_head_once():
    page = arrange_page(pytest_html_page([SIGN_OFF]))
    head = page[:page.find("</head>")]
    assert head.count(f'<style id="{PAGE_CSS_ID}">') == 1 and head.count(f'<script id="{PAGE_JS_ID}">') == 1
    css = html_page.PAGE_CSS
    for needed in ("@media print", "@page", "break-inside: avoid", "table-header-group", "#failures", "#waivers",
                   "#results-table", "#environment"):
        assert needed in css, needed


def test_arranging_twice_changes_nothing():
    once = arrange_page(pytest_html_page([SIGN_OFF]))
    assert arrange_page(once) == once
    assert arrange_page(arrange_page(once)) == once


def test_a_page_without_a_sign_off_section_is_left_as_it_is():
    page = pytest_html_page(["<p>some other plugin's summary</p>"])
    assert arrange_page(page) == page
    assert arrange_page("") == ""


def test_the_title_names_the_milestone_of_the_checklist_mapping():
    milestone = load_mapping(ROOT / "features" / "checklist.yaml")["milestone"]
    assert page_title() == f"Milestone {milestone}: sign-off"
    assert page_title({"milestone": "TSE-9"}) == "Milestone TSE-9: sign-off"


def test_the_report_of_the_existing_acceptance_run_is_arranged_when_there_is_one():
    written = ROOT / "reports" / "acceptance.html"
    if not written.is_file():
        pytest.skip("no reports/acceptance.html here (made by `pytest features/`)")
    page = arrange_page(written.read_text(encoding="utf-8"))
    _, verdict, environment = _positions(page, "id='sign-off'", "id='verdict'", 'id="environment"')
    assert verdict < environment and arrange_page(page) == page


CONFTEST = """
from steps.report import signoff

pytest_plugins = ["steps.report.html_page"]
COVERS = {covers}


def pytest_configure(config):
    if COVERS:  # as signoff does when the run collects scenarios
        config.stash[signoff.RESULTS_KEY] = {{"a scenario": None}}


def pytest_html_results_summary(prefix, session):
    if COVERS:
        prefix.append("<section id='sign-off'><p id='verdict'>BDD criterion: PASSED</p></section>")
"""


def _html_run(tmp_path: Path, covers: bool) -> str:
    (tmp_path / "conftest.py").write_text(CONFTEST.format(covers=covers))
    (tmp_path / "test_one.py").write_text("def test_one():\n    pass\n")
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--html=out/report.html",
                           "--self-contained-html", "test_one.py"], cwd=tmp_path, capture_output=True, text=True,
                          env=environment, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return (tmp_path / "out" / "report.html").read_text(encoding="utf-8")


def test_a_run_with_a_sign_off_writes_the_milestone_title_and_the_arranged_page(tmp_path):
    page = _html_run(tmp_path, covers=True)
    title = page_title()
    assert f'<title id="head-title">{title}</title>' in page and f'<h1 id="title">{title}</h1>' in page
    sign_off, environment = _positions(page, "<section id='sign-off'>", '<div id="environment-header">')
    assert page.find("</h1>") < sign_off < environment and f'<style id="{PAGE_CSS_ID}">' in page
    assert arrange_page(page) == page


def test_a_run_without_a_sign_off_keeps_pytest_htmls_title_and_page(tmp_path):
    page = _html_run(tmp_path, covers=False)
    assert '<h1 id="title">report.html</h1>' in page and "Milestone" not in page
    assert PAGE_CSS_ID not in page
