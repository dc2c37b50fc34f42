"""Reports looked at in a real browser: headless Chromium, offline, loading from a file URL.

Marked `browser`; CI installs Debian's chromium (.ci/run) and then these must run: under
CI=true a missing Chromium fails instead of skipping. Screenshots go to artifacts/ (not
committed) and their paths are printed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from trials.reports.browser import HEADLESS_FLAGS, find_chromium, html_to_pdf
from trials.reports.effect import ReportInput, render_report

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


def chromium_or_skip() -> str:
    path = find_chromium()
    if path is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("Chromium is required under CI=true (.ci/run installs Debian's chromium)", pytrace=False)
        pytest.skip("Chromium is not installed")
    return path


def load_in_browser(page_file: Path, screenshot: Path) -> tuple[list[str], list[str]]:
    """Open the page offline; return (every requested URL, console errors); save a screenshot."""
    from playwright.sync_api import sync_playwright

    requests: list[str] = []
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_or_skip(), args=list(HEADLESS_FLAGS[1:]))
        try:
            context = browser.new_context(offline=True, viewport={"width": 1100, "height": 1400})
            page = context.new_page()
            page.on("request", lambda request: requests.append(request.url))
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(page_file.as_uri(), wait_until="load")
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot))
        finally:
            browser.close()
    return requests, errors


@pytest.mark.browser
@pytest.mark.parametrize("lang", ["da", "en"])
def test_effect_report_loads_offline_without_errors(report_input: ReportInput, tmp_path: Path, lang: str) -> None:
    chromium_or_skip()
    page_file = tmp_path / f"effect-{lang}.html"
    page_file.write_text(render_report(report_input, lang=lang), encoding="utf-8")
    screenshot = ARTIFACTS / f"effect-report-{lang}.png"
    requests, errors = load_in_browser(page_file, screenshot)
    assert requests == [page_file.as_uri()], "a request left the file"
    assert errors == []
    assert screenshot.stat().st_size > 10_000
    print(f"screenshot: {screenshot}")


@pytest.mark.browser
def test_pdf_is_printed_with_chromium(report_input: ReportInput, tmp_path: Path) -> None:
    chromium_or_skip()
    page_file = tmp_path / "effect.html"
    page_file.write_text(render_report(report_input), encoding="utf-8")
    pdf = tmp_path / "effect.pdf"
    html_to_pdf(page_file, pdf)
    assert pdf.read_bytes().startswith(b"%PDF")


@pytest.mark.browser
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_every_kind_of_demo_page_loads_offline(db_url: str, key_file: Path, tmp_path: Path, trials_cli) -> None:  # type: ignore[no-untyped-def]
    """The pages `make demo` writes (effect report in both languages, audit report, portfolio),
    made by the same commands on a small trial, each opened offline from a file URL."""
    from tests.pipeline import run_pipeline

    chromium_or_skip()
    run_pipeline(db_url, key_file, tmp_path, n=200)
    pages = {
        "demo-effect-da": ["report", "street-walker", "--lang", "da", "--replicates", "100"],
        "demo-effect-en": ["report", "street-walker", "--lang", "en", "--replicates", "100"],
        "demo-audit": ["audit", "report", "street-walker"],
        "demo-portfolio": ["portfolio", "report"],
    }
    for name, args in pages.items():
        page_file = tmp_path / f"{name}.html"
        trials_cli.ok(*args, "-o", page_file)
        requests, errors = load_in_browser(page_file, ARTIFACTS / f"{name}.png")
        assert requests == [page_file.as_uri()], f"{name}: a request left the file"
        assert errors == [], name
        print(f"screenshot: {ARTIFACTS / f'{name}.png'}")
