"""The HTML report's page, arranged for signing off (issue: "the first screen is the sign-off").

pytest-html 4 writes its page from one Jinja template: the title, "Report generated on …", the
Environment table, then its summary (where steps/report/signoff.py puts the sign-off section, in the
summary's prefix), its filters and the results table, which its JavaScript fills from a JSON blob at
the end of the page. This plugin

- names the milestone in the page's <title> and <h1> (pytest_html_report_title), when the run covers
  the acceptance features (a sign-off section is shown);
- once pytest-html has written the file (its pytest_sessionfinish, which this plugin's wraps), moves
  the `#sign-off` section to just after the <h1> and the Environment (its heading and table) to after
  the results table, and adds a print stylesheet: printed (or saved as PDF), the page is the sign-off
  document alone, black on white.

The markup is only moved, never rewritten: every element keeps its id, so pytest-html's script (which
finds the environment table, the filters and the results table by id) works as before.
`arrange_page` is a plain function of the HTML text, idempotent, a no-op without a sign-off section.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from steps.report.checklist import load_mapping
from steps.report.signoff import FEATURES, _covers_features

PAGE_CSS_ID, PAGE_JS_ID = "tse-page-css", "tse-page-js"
# Chromium prints backgrounds only when asked; the verdict reads PASSED / FAILED in words, so black on
# white loses nothing. Rows of the sign-off's tables are kept whole on a page where they fit, and
# header rows repeat on every page (PAGE_JS gives the tables the <thead> they lack).
PAGE_CSS = f"""<style id="{PAGE_CSS_ID}">
@page {{ size: A4; margin: 14mm 12mm 16mm 12mm; }}
@media print {{
  html, body {{ background: #fff !important; color: #000 !important; }}
  body {{ min-width: 0; margin: 0; font-size: 9.5pt; }}
  body * {{ color: #000 !important; background: transparent !important; box-shadow: none !important; }}
  .summary, #results-table, #environment-header, #environment, footer, template,
  body > p {{ display: none !important; }}  /* pytest-html's: its date line, filters, tables */
  h1#title {{ font-size: 16pt; margin: 0 0 .3em; }}
  #sign-off {{ margin: 0 0 1em; }}
  #sign-off h2, #sign-off h3 {{ break-after: avoid; page-break-after: avoid; }}
  #verdict {{ border: 2px solid #000; border-radius: 0; font-size: 14pt; break-inside: avoid; }}
  #sign-off table {{ width: 100%; border-collapse: collapse; }}
  #sign-off th, #sign-off td {{ border: 1px solid #444 !important; overflow-wrap: break-word; }}
  #sign-off table.run th, #sign-off td.history {{ white-space: nowrap; }}
  #sign-off thead {{ display: table-header-group; }}
  #sign-off tr, #failures li, #waivers li {{ break-inside: avoid; page-break-inside: avoid; }}
  #failures code, #waivers code {{ white-space: pre-wrap; overflow-wrap: break-word; }}
  #sign-off details > summary {{ list-style: none; cursor: auto; }}
  #sign-off details > summary::-webkit-details-marker {{ display: none; }}
  #sign-off details > :not(summary) {{ display: none !important; }}
  a {{ text-decoration: none; }}
}}
</style>"""
# Runs once the page is parsed: each table of the sign-off whose first row is headings only gets it
# as its <thead> (printed on every page the table spans), and the section's heading is hidden when
# it repeats the page's title word for word.
PAGE_JS = f"""<script id="{PAGE_JS_ID}">
document.addEventListener("DOMContentLoaded", function () {{
  var section = document.getElementById("sign-off"), title = document.getElementById("title");
  if (!section) return;
  section.querySelectorAll("table").forEach(function (table) {{
    var first = table.rows[0];
    if (table.tHead || !first || first.querySelector("td")) return;
    table.createTHead().appendChild(first);
  }});
  var heading = section.querySelector("h2");
  if (title && heading && heading.textContent.trim() === title.textContent.trim()) heading.hidden = true;
}});
</script>"""

_SIGN_OFF = re.compile(r"""<section\b[^>]*\bid=(["'])sign-off\1[^>]*>""", re.IGNORECASE)
_TITLE = re.compile(r"""<h1\b[^>]*\bid=(["'])title\1[^>]*>.*?</h1>""", re.IGNORECASE | re.DOTALL)
_ENVIRONMENT = re.compile(r"""<div\b[^>]*\bid=(["'])environment-header\1[^>]*>(?:(?!</div>).)*</div>\s*"""
                          r"""<table\b[^>]*\bid=(["'])environment\2[^>]*>.*?</table>""", re.IGNORECASE | re.DOTALL)
_RESULTS = re.compile(r"""<table\b[^>]*\bid=(["'])results-table\1[^>]*>""", re.IGNORECASE)
_PAGE_PARTS = re.compile(rf"""<style id="{PAGE_CSS_ID}">.*?</style>\n?|<script id="{PAGE_JS_ID}">.*?</script>\n?""",
                         re.DOTALL)


def page_title(mapping: dict | None = None) -> str:
    """The report's title: the milestone of features/checklist.yaml and what the page is for."""
    mapping = mapping if mapping is not None else load_mapping(FEATURES / "checklist.yaml")
    return f"Milestone {mapping['milestone']}: sign-off"


def _element_end(text: str, tag: str, start: int) -> int:
    """The index just after the element whose opening <tag ...> is at `start` (nested ones counted)."""
    depth = 0
    for found in re.compile(rf"<(/?){tag}\b[^>]*>", re.IGNORECASE).finditer(text, start):
        depth += -1 if found.group(1) else 1
        if depth == 0:
            return found.end()
    return len(text)


def _move(text: str, start: int, end: int, after: int) -> str:
    """`text` with text[start:end] moved to `after` (an index outside it), on a line of its own."""
    piece = text[start:end]
    if after >= end:
        return text[:start] + text[end:after] + "\n" + piece + text[after:]
    return text[:after] + "\n" + piece + text[after:start] + text[end:]


def _sign_off_first(text: str) -> str:
    section, title = _SIGN_OFF.search(text), _TITLE.search(text)
    if section is None or title is None or not text[title.end():section.start()].strip():
        return text
    return _move(text, section.start(), _element_end(text, "section", section.start()), title.end())


def _environment_last(text: str) -> str:
    environment, results = _ENVIRONMENT.search(text), _RESULTS.search(text)
    if environment is None or results is None or environment.start() > results.start():
        return text
    return _move(text, environment.start(), environment.end(), _element_end(text, "table", results.start()))


def _with_page_parts(text: str) -> str:
    """The print stylesheet and the page's script in <head> (replacing those of an earlier arrangement)."""
    text = _PAGE_PARTS.sub("", text)
    head_end = text.lower().find("</head>")
    return text if head_end < 0 else text[:head_end] + PAGE_CSS + "\n" + PAGE_JS + "\n" + text[head_end:]


def arrange_page(html_text: str) -> str:
    """pytest-html's page with the sign-off right after the title, the environment after the results
    and the print stylesheet and script in <head>. Idempotent; the page unchanged when it has no sign-off section."""
    if _SIGN_OFF.search(html_text) is None:
        return html_text
    return _with_page_parts(_environment_last(_sign_off_first(html_text)))


def arrange_file(path: Path) -> bool:
    """Arranges the report at `path` in place; whether it changed."""
    if not path.is_file():
        return False
    before = path.read_text(encoding="utf-8")
    after = arrange_page(before)
    if after != before:
        path.write_text(after, encoding="utf-8")
    return after != before


class HtmlPage:
    """Registered on the process that writes the HTML report (not on pytest-xdist's workers)."""

    def __init__(self, config):
        self.config = config
        # Where pytest-html writes it: the path it was given, from the directory pytest started in.
        self.path = Path.cwd() / Path(os.path.expandvars(config.option.htmlpath)).expanduser()
        self.report = None

    def pytest_html_report_title(self, report):
        # Called when the session starts, before any scenario reported whether the run covers the
        # features: the title is decided at the end (pytest-html reads report.title when it writes).
        self.report = report

    def pytest_html_results_summary(self, session):
        if self.report is not None and _covers_features(session.config):
            self.report.title = page_title()

    @pytest.hookimpl(wrapper=True)
    def pytest_sessionfinish(self, session):
        result = yield   # pytest-html's own (trylast) has written the file by now
        arrange_file(self.path)
        return result


def pytest_configure(config):
    if getattr(config.option, "htmlpath", None) and not hasattr(config, "workerinput"):
        config.pluginmanager.register(HtmlPage(config), "tse-html-page")
