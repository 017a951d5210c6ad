"""The HTML report printed: headless Chromium prints it to PDF (as a reader's "Print > Save as PDF"
does, with the report's print stylesheet, steps/report/html_page.py), poppler renders the pages to
PNG and reads their text. The printed report is the sign-off document: page 1 opens with the title
naming the milestone and the BDD criterion's verdict, pytest-html's environment, filters and results
table are left out, and the checklist's header row repeats on the pages it continues on. The PDF and
its first page as PNG go to the main repository's reports/ (acceptance-print.pdf, acceptance-print-1.png).

Needs chromium and poppler-utils (infra/host/ensure-browser installs both) and, without
TSE_BROWSER_REPORT, Docker (tests/browser/conftest.py).
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from steps.report.checklist import load_mapping
from tests.acceptance_copy import ROOT
from tests.browser.chromium import PNG_SIGNATURE, chromium

pytestmark = pytest.mark.docker  # renders a report of a real acceptance run

PDF = ROOT / "reports" / "acceptance-print.pdf"
FIRST_PAGE_PNG = ROOT / "reports" / "acceptance-print-1.png"
MILESTONE = load_mapping(ROOT / "features" / "checklist.yaml")["milestone"]
RESOLUTION = "60"   # dpi of the PNG pages: an A4 page is 496x702 pixels


def poppler(tool: str, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([tool, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{tool} {' '.join(args)} failed (exit {done.returncode}):\n{done.stderr[-2000:]}"
    return done


@pytest.fixture(scope="module")
def printed(browser, report, tmp_path_factory) -> Path:
    if not (shutil.which("pdftoppm") and shutil.which("pdftotext")):
        pytest.skip("no pdftoppm/pdftotext on PATH: run infra/host/ensure-browser (Debian: apt-get install "
                    "poppler-utils)")
    scratch = tmp_path_factory.mktemp("print")
    PDF.parent.mkdir(parents=True, exist_ok=True)
    PDF.unlink(missing_ok=True)
    done = chromium(browser, scratch / "profile", f"--print-to-pdf={PDF}", "--no-pdf-header-footer", report.as_uri())
    assert PDF.is_file(), f"chromium printed no PDF (exit {done.returncode}):\n{done.stderr[-3000:]}"
    return PDF


@pytest.fixture(scope="module")
def pages(printed, tmp_path_factory) -> list[Path]:
    """The printed pages as PNG files, in order; the first also saved as reports/acceptance-print-1.png."""
    scratch = tmp_path_factory.mktemp("pages")
    poppler("pdftoppm", "-png", "-r", RESOLUTION, str(printed), str(scratch / "page"))
    found = sorted(scratch.glob("page-*.png"), key=lambda path: int(path.stem.rsplit("-", 1)[1]))
    if found:
        shutil.copyfile(found[0], FIRST_PAGE_PNG)
    return found


def page_text(pdf: Path, number: int) -> str:
    return poppler("pdftotext", "-layout", "-f", str(number), "-l", str(number), str(pdf), "-").stdout


def dark_share(pdf: Path, number: int, scratch: Path) -> float:
    """The share of a page's pixels that are not near white (the page in grey, read from poppler's PGM)."""
    poppler("pdftoppm", "-gray", "-r", RESOLUTION, "-f", str(number), "-l", str(number), "-singlefile",
            str(pdf), str(scratch / "grey"))
    data = (scratch / "grey.pgm").read_bytes()
    magic, width, height, _maximum, pixels = data.split(maxsplit=4)
    assert magic == b"P5", f"not a binary PGM: {magic!r}"
    pixels = pixels[:int(width) * int(height)]
    return sum(1 for value in pixels if value < 200) / len(pixels)


def test_the_report_prints_to_a_pdf_with_pages(printed, pages):
    assert printed.read_bytes().startswith(b"%PDF"), f"{printed} is not a PDF"
    assert pages, f"pdftoppm rendered no page of {printed}"
    for page in pages:
        data = page.read_bytes()
        assert data.startswith(PNG_SIGNATURE), f"{page} is not a PNG"
        assert len(data) > 5_000, f"{page} is only {len(data)} bytes: a blank page?"
    assert FIRST_PAGE_PNG.read_bytes() == pages[0].read_bytes()


def test_the_first_page_is_the_sign_off(printed, pages, tmp_path):
    text = page_text(printed, 1)
    assert MILESTONE in text, f"page 1 does not name the milestone {MILESTONE}:\n{text[:1500]}"
    assert "BDD criterion" in text, f"page 1 has no BDD criterion verdict:\n{text[:1500]}"
    lines = [line.strip() for line in text.splitlines()]
    verdict = next(n for n, line in enumerate(lines) if "BDD criterion" in line)
    assert "Environment" not in lines[:verdict], f"pytest-html's Environment heading before the verdict:\n{text[:1500]}"
    assert lines.index(next(line for line in lines if MILESTONE in line)) < verdict, "the title comes first"
    share = dark_share(printed, 1, tmp_path)
    assert share > 0.01, f"page 1 is nearly blank: {share:.2%} of its pixels are dark"


def test_pytest_htmls_controls_and_tables_are_not_printed(printed, pages):
    text = "".join(page_text(printed, number) for number in range(1, len(pages) + 1))
    for shown_on_screen_only in ("(Un)check the boxes to filter the results", "Show all details",
                                 "Report generated on"):
        assert shown_on_screen_only not in text, f"{shown_on_screen_only!r} is printed"
    assert not any(line.strip() == "Environment" for line in text.splitlines()), "the Environment table is printed"


def test_the_checklist_header_row_repeats_on_every_page_it_continues_on(printed, pages):
    """The checklist is the sign-off's last table, and nothing is printed after the sign-off: every page
    after the one where the checklist starts begins (after the page's own rows) with its header row."""
    texts = [page_text(printed, number) for number in range(1, len(pages) + 1)]
    header = "scenarios and evidence"
    starts = next((n for n, text in enumerate(texts) if header in text), None)
    assert starts is not None, "no page shows the checklist's header row"
    missing = [n + 1 for n, text in enumerate(texts) if n > starts and header not in text]
    assert not missing, f"the checklist's header row is not repeated on page(s) {missing} of {len(texts)}"
