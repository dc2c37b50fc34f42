"""`trials report`, `audit report`, `status` and `portfolio report` on a trial in the database."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from bs4 import BeautifulSoup
from sqlalchemy import select

from tests.pipeline import run_pipeline
from trials import db
from trials.models import AuditEvent, ProtocolVersion


@pytest.fixture
def pipeline_db(db_url: str, key_file: Path, tmp_path: Path) -> str:
    run_pipeline(db_url, key_file, tmp_path, n=300)
    return db_url


def _audit_events(db_url: str) -> list[AuditEvent]:
    engine = db.make_engine(db_url)
    with db.read_session(engine) as session:
        events = list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))
    engine.dispose()
    return events


def test_json_report_follows_the_contract_and_names_its_provenance(pipeline_db: str, trials_cli) -> None:  # type: ignore[no-untyped-def]
    head_before = _audit_events(pipeline_db)[-1].hash
    result = trials_cli.ok("report", "street-walker", "--format", "json", "--replicates", "200")
    report = json.loads(result.stdout)
    from importlib.resources import files

    schema = json.loads((files("trials.analysis") / "schema.json").read_text())
    jsonschema.validate(report, schema)
    assert set(report["horizons"]) == {"52", "104"}
    assert set(report["n"]) == {"control", "treatment"}
    engine = db.make_engine(pipeline_db)
    with db.read_session(engine) as session:
        sha = session.scalars(select(ProtocolVersion.sha256)).one()
    engine.dispose()
    provenance = report["provenance"]
    assert provenance["protocol_sha256"] == sha
    assert provenance["audit_head"] == head_before
    last = _audit_events(pipeline_db)[-1]
    assert last.action == "report_generated" and last.prev_hash == head_before
    again = json.loads(trials_cli.ok("report", "street-walker", "--format", "json", "--replicates", "200").stdout)
    assert again["horizons"]["52"]["cox"] == report["horizons"]["52"]["cox"]  # same snapshot, same numbers
    assert again["horizons"]["52"]["ri"]["p"] == report["horizons"]["52"]["ri"]["p"]


def test_html_reports_as_a_committee_and_an_auditor_see_them(pipeline_db: str, trials_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    effect = tmp_path / "effect.html"
    trials_cli.ok("report", "street-walker", "--lang", "da", "--public", "--replicates", "100", "-o", effect)
    page = BeautifulSoup(effect.read_text(), "lxml")
    boxes = page.select("#flow .box.arm")
    allocated = sum(int(box.select_one(".allocated").text.replace(".", "")) for box in boxes)
    randomized = page.select("#flow .box")[2].select_one(".count").text.replace(".", "")
    assert str(allocated) == randomized
    for node in page.select(".count"):
        assert node.text == "<5" or int(node.text.replace(".", "")) >= 5
    report_event = _audit_events(pipeline_db)[-1]
    assert page.select_one('[data-key="audit_head"]').text == report_event.prev_hash

    audit = tmp_path / "audit.html"
    trials_cli.ok("audit", "report", "street-walker", "-o", audit)
    audit_page = BeautifulSoup(audit.read_text(), "lxml")
    assert audit_page.select_one("#verification .ok").text.startswith("OK:")
    assert audit_page.select_one("#seed") is not None  # closed: the seed is revealed
    assert audit_page.select_one("#chain-head").text == _audit_events(pipeline_db)[-2].hash

    status = json.loads(trials_cli.ok("status", "--json").stdout)
    (row,) = status
    assert row["state"] == "reported"
    assert row["last_report"]["headline"]["hr"] is not None
    portfolio = tmp_path / "portfolio.html"
    trials_cli.ok("portfolio", "report", "-o", portfolio)
    assert BeautifulSoup(portfolio.read_text(), "lxml").select_one('[data-trial="street-walker"] .state').text \
        == "reported"


def test_per_protocol_report_lists_the_deviation(pipeline_db: str, trials_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "pp.md"
    trials_cli.ok("report", "street-walker", "--format", "md", "--population", "per-protocol", "--replicates", "0",
                  "-o", out)
    assert "Population: per protocol" in out.read_text()
