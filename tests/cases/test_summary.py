"""Categorisation of the pool: the barrier x months-band cross-table, benefit counts, lists."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from trials import db
from trials.cases.importer import read_case_file, write_cases
from trials.cases.summary import cross_table, list_cases, parse_bands
from trials.errors import InputError
from trials.strata import band_labels, months_band
from trials.synth import synthesise, write_cohort
from trials.vocab import BARRIERS, BENEFIT_TYPES


@pytest.fixture
def pool(engine: Engine, tmp_path: Path) -> list[dict[str, Any]]:
    rows = synthesise(400, "summary")
    path = tmp_path / "pool.csv"
    write_cohort(rows, path)
    with db.write_session(engine) as session:
        write_cases(session, read_case_file(path, b"s" * 32))
    return rows


@pytest.mark.parametrize("bands", [(0, 6, 12, 24), (0, 3), (0,), (0, 1.5, 12)])
def test_cross_table_matches_counting_in_python(engine: Engine, pool: list[dict[str, Any]],
                                                bands: tuple[float, ...]) -> None:
    """Reference: the rows the generator wrote, banded by trials.strata.months_band in Python
    (the SQL CASE in cross_table must put every case in the same band)."""
    with db.read_session(engine) as session:
        table = cross_table(session, bands)
    expected = Counter((r["primary_barrier"], months_band(r["months_unemployed"], bands)) for r in pool)
    assert table["total"] == len(pool)
    assert table["band_labels"] == band_labels(bands)
    assert {(c["primary_barrier"], c["months_band"]): c["n"] for c in table["cells"] if c["n"]} == dict(expected)
    assert len(table["cells"]) == len(BARRIERS.ids) * len(band_labels(bands))  # empty cells shown as 0
    assert sum(table["barrier_totals"].values()) == sum(table["band_totals"].values()) == len(pool)
    for barrier, total in table["barrier_totals"].items():
        assert total == sum(n for (b, _), n in expected.items() if b == barrier)
    assert table["benefit_types"] == {b: sum(r["benefit_type"] == b for r in pool) for b in BENEFIT_TYPES.ids}


def test_band_edges_are_lower_inclusive(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "edges.csv"
    path.write_text("case_id,primary_barrier,months_unemployed,benefit_type\n"
                    "E1,social,0,other\nE2,social,5.99,other\nE3,social,6,other\nE4,social,24,other\n")
    with db.write_session(engine) as session:
        write_cases(session, read_case_file(path, b"s" * 32))
    with db.read_session(engine) as session:
        cells = {c["months_band"]: c["n"] for c in cross_table(session)["cells"] if c["primary_barrier"] == "social"}
    assert cells == {"0-6": 2, "6-12": 1, "12-24": 0, "24+": 1}


def test_empty_pool_has_a_full_table_of_zeros(engine: Engine) -> None:
    with db.read_session(engine) as session:
        table = cross_table(session)
    assert table["total"] == 0 and all(c["n"] == 0 for c in table["cells"]) and len(table["cells"]) == 36
    assert set(table["benefit_types"]) == set(BENEFIT_TYPES.ids)


@pytest.mark.parametrize(("text", "message"), [
    ("6,12", "the first band edge must be 0"),
    ("0,12,6", "band edges must increase"),
    ("0,6,6", "band edges must increase"),
    ("0,seks", "'seks' is not a number"),
    ("", "give at least one band edge"),
])
def test_bad_bands_are_refused(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_bands(text)


def test_parse_bands() -> None:
    assert parse_bands("0, 6,12,24") == (0, 6, 12, 24)
    assert parse_bands("0,1.5") == (0, 1.5)


def test_list_filters_by_primary_barrier_and_benefit(engine: Engine, pool: list[dict[str, Any]]) -> None:
    with db.read_session(engine) as session:
        everything = list_cases(session)
        social = list_cases(session, barrier="sociale problemer")
        sick_physical = list_cases(session, barrier="physical", benefit="sygedagpenge")
        team = list_cases(session, team="Unge", limit=5)
        first = list_cases(session, caseworker=pool[0]["caseworker"])
    assert [c["case_id"] for c in everything] == [r["case_id"] for r in pool]
    assert [c["case_id"] for c in social] == [r["case_id"] for r in pool if r["primary_barrier"] == "social"]
    assert [c["case_id"] for c in sick_physical] == [
        r["case_id"] for r in pool if r["primary_barrier"] == "physical" and r["benefit_type"] == "sickness_benefit"]
    assert len(team) == 5 and all(c["team"] == "Unge" for c in team)
    assert first and all(c["caseworker"] == pool[0]["caseworker"] for c in first)
    shown = everything[0]
    source = pool[0]
    assert {k: shown[k] for k in ("primary_barrier", "barriers", "months_unemployed", "benefit_type")} == {
        "primary_barrier": source["primary_barrier"], "barriers": source["barriers"],
        "months_unemployed": source["months_unemployed"], "benefit_type": source["benefit_type"]}
    assert shown["covariates"] == {"age": source["age"], "sex": source["sex"], "risk": source["risk"]}


def test_unknown_filter_lists_the_accepted_ids(engine: Engine) -> None:
    with db.read_session(engine) as session, pytest.raises(InputError, match="accepted: physical, mild_mental"):
        list_cases(session, barrier="heartbreak")
    with db.read_session(engine) as session, pytest.raises(InputError, match="accepted: cash_assistance"):
        list_cases(session, benefit="dagpenge")


# --- the commands ---------------------------------------------------------------------


def test_synth_import_summary_json_end_to_end(trials_cli: Any, tmp_path: Path) -> None:
    """The acceptance path: `cases synth --n 2000`, `cases import`, `cases summary --json`."""
    path = tmp_path / "pool.csv"
    trials_cli.ok("cases", "synth", "--n", "2000", "--seed", "acceptance", "-o", path)
    imported = trials_cli.ok("cases", "import", path)
    assert "2000 rows, 2000 new, 0 updated, 0 unchanged" in imported.stdout
    summary = json.loads(trials_cli.ok("cases", "summary", "--json").stdout)
    assert summary["total"] == 2000
    assert sum(c["n"] for c in summary["cells"]) == 2000
    assert set(summary["cells"][0]) >= {"primary_barrier", "months_band", "n"}
    assert {c["months_band"] for c in summary["cells"]} == {"0-6", "6-12", "12-24", "24+"}
    assert sum(summary["benefit_types"].values()) == 2000
    rows = synthesise(2000, "acceptance")
    assert summary["benefit_types"] == {b: sum(r["benefit_type"] == b for r in rows) for b in BENEFIT_TYPES.ids}
    again = trials_cli.ok("cases", "import", path)
    assert "2000 rows, 0 new, 0 updated, 2000 unchanged" in again.stdout


def test_summary_text_and_bands_option(trials_cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "pool.csv"
    trials_cli.ok("cases", "synth", "--n", "300", "--seed", "1", "-o", path)
    trials_cli.ok("cases", "import", path)
    text = trials_cli.ok("cases", "summary", "--bands", "0,12").stdout
    assert "300 cases; months on benefits in bands 0-12, 12+" in text
    assert "physical conditions" in text and text.splitlines()[-1].startswith("other")
    danish = trials_cli.ok("cases", "summary", "--lang", "da").stdout
    assert "fysiske lidelser" in danish and "kontanthjælp" in danish and "i alt" in danish
    bands = json.loads(trials_cli.ok("cases", "summary", "--bands", "0,6", "--json").stdout)
    assert bands["band_labels"] == ["0-6", "6+"]
    bad = trials_cli("cases", "summary", "--bands", "3,6")
    assert bad.exit_code == 2 and "--bands: the first band edge must be 0" in bad.stderr


def test_list_json_contract_and_filters(trials_cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "pool.csv"
    trials_cli.ok("cases", "synth", "--n", "200", "--seed", "2", "-o", path)
    trials_cli.ok("cases", "import", path)
    listed = json.loads(trials_cli.ok("cases", "list", "--json").stdout)
    assert len(listed) == 200
    assert set(listed[0]) >= {"case_id", "primary_barrier", "months_unemployed", "benefit_type"}
    misbrug = json.loads(trials_cli.ok("cases", "list", "--barrier", "misbrug", "--json").stdout)
    assert misbrug and all(c["primary_barrier"] == "substance" for c in misbrug)
    cash = json.loads(trials_cli.ok("cases", "list", "--benefit", "cash_assistance", "--json").stdout)
    assert cash and all(c["benefit_type"] == "cash_assistance" for c in cash)
    text = trials_cli.ok("cases", "list", "--limit", "3").stdout.splitlines()
    assert text[0].split()[:2] == ["case_id", "primary_barrier"] and len(text) == 4
    bad = trials_cli("cases", "list", "--barrier", "heartbreak")
    assert bad.exit_code == 2 and "--barrier: unknown barrier 'heartbreak'; accepted: physical" in bad.stderr
    assert "no cases match" in trials_cli.ok("cases", "list", "--team", "nobody").stdout
