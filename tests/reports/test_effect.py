"""The effect report, checked by selector as a reader would see it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from trials.reports.effect import ReportInput, build_report, render_report

CONTEXT_KEYS = {"trial", "population", "generated_at", "summary", "flow", "baseline", "horizons", "subgroups",
                "business", "warnings", "methods", "deviations", "provenance"}


def soup(html: str) -> BeautifulSoup:
    return BeautifulSoup(html, "lxml")


def test_template_context_is_the_documented_contract(report_input: ReportInput) -> None:
    """docs/reports.md documents these keys; templates in a user folder rely on them."""
    context = build_report(report_input)
    assert set(context) == CONTEXT_KEYS
    docs = (Path(__file__).resolve().parents[2] / "docs" / "reports.md").read_text()
    for key in CONTEXT_KEYS:
        assert f"`{key}`" in docs
    assert [h["key"] for h in context["horizons"]] == ["52", "104"]


def test_flow_diagram_numbers_add_up(report_input: ReportInput) -> None:
    page = soup(render_report(report_input))
    boxes = page.select("#flow .box.arm")
    allocated = sum(int(box.select_one(".allocated").text.replace(",", "")) for box in boxes)
    randomized = int(page.select("#flow .box")[2].select_one(".count").text.replace(",", ""))
    assert allocated == randomized == report_input.result["n_total"]
    for box in boxes:
        assert int(box.select_one(".analysed").text) <= int(box.select_one(".allocated").text)


def test_every_figure_is_inline_svg_and_nothing_is_fetched(report_input: ReportInput) -> None:
    html = render_report(report_input)
    page = soup(html)
    for horizon in ("52", "104"):
        section = page.select_one(f"#horizon-{horizon}")
        assert len(section.select("svg.figure")) == 2  # KM curves and cumulative incidence
    assert page.select_one("#subgroups svg.figure") is not None
    assert not page.select("link[href], script[src], img[src]")
    assert not re.search(r"(?:src|href)=\"https?://", html)


def test_danish_report_uses_decimal_commas_and_danish_text(report_input: ReportInput) -> None:
    page = soup(render_report(report_input, lang="da"))
    assert page.html["lang"] == "da"
    assert "Sammenfatning" in page.select_one("#summary h2").text
    estimates = [td.text for td in page.select("#horizon-52 table.effects td.num") if td.text.strip()]
    hr = next(text for text in estimates if re.fullmatch(r"\d,\d\d", text))
    assert "." not in hr
    english = soup(render_report(report_input, lang="en"))
    assert any(re.fullmatch(r"\d\.\d\d", td.text) for td in english.select("#horizon-52 table.effects td.num"))


def test_public_report_shows_no_count_below_five(report_input: ReportInput) -> None:
    html = render_report(report_input, public=True)
    counts = [node.text.strip() for node in soup(html).select(".count")]
    assert counts, "counts must be marked so they can be checked"
    for text in counts:
        assert text == "<5" or int(text.replace(",", "")) >= 5, text
    assert "<5" in counts  # the withdrawn cells (3) and the small baseline cell are suppressed
    internal = [node.text.strip() for node in soup(render_report(report_input)).select(".count")]
    assert "3" in internal


def test_title_is_escaped(report_input: ReportInput) -> None:
    html = render_report(report_input)
    assert "Street walker &lt;early contact&gt;" in html
    assert "<early contact>" not in html


def test_user_template_folder_overrides_a_package_template(report_input: ReportInput, tmp_path: Path) -> None:
    (tmp_path / "_provenance.html").write_text('<footer id="provenance">custom footer {{ report.trial.id }}</footer>')
    html = render_report(report_input, template_dir=tmp_path)
    assert "custom footer street-walker" in html


def test_provenance_footer_carries_the_hashes(report_input: ReportInput) -> None:
    page = soup(render_report(report_input))
    assert page.select_one('[data-key="protocol_sha256"]').text == "a" * 64
    assert page.select_one('[data-key="audit_head"]').text == "b" * 64


@pytest.mark.parametrize("lang", ["da", "en"])
def test_markdown_report_has_every_section(report_input: ReportInput, lang: str) -> None:
    markdown = render_report(report_input, fmt="md", lang=lang)
    assert markdown.startswith("# Street walker <early contact>")
    assert markdown.count("\n## ") >= 8
    assert "clarified eligibility" in markdown


def test_methods_state_whether_the_trial_reached_its_targets(report_input: ReportInput) -> None:
    """Protocols record target_n and minimum_detectable_hr; the report says whether they were reached."""
    result = dict(report_input.result)
    result["targets"] = dict(result["targets"], target_n=1000, minimum_detectable_hr=1.3)
    data = ReportInput(report_input.trial, result, report_input.outcomes)
    methods = build_report(data, lang="en")["methods"]
    assert f"Planned number: 1,000; randomized: {result['n_total']}." in methods
    assert any(m.startswith("The trial was planned to detect a hazard ratio of 1.30") for m in methods)


def test_with_few_clusters_the_summary_quotes_the_randomization_p(report_input: ReportInput) -> None:
    """Robust errors are too small with few clusters; the committee reads the design-based p."""
    result = dict(report_input.result, few_clusters=True)
    summary = " ".join(build_report(ReportInput(report_input.trial, result, report_input.outcomes))["summary"])
    ri_p = result["horizons"]["52"]["ri"]["p"]
    assert f"(p = {ri_p:.3f})" in summary
