"""Eligibility and stratum sizes of a trial over the pool (`trials cases strata TRIAL`)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from trials import db
from trials.cases.importer import read_case_file, write_cases
from trials.cases.pool import (
    eligibility_conditions,
    is_eligible,
    protocol_stratum_sizes,
    trial_stratum_sizes,
)
from trials.errors import NotFound
from trials.models import Case
from trials.protocol import parse_protocol, read_protocol_file, register
from trials.strata import months_band
from trials.synth import synthesise, write_cohort

CASEWORKER_TRIAL = """
id = "talk-training"
title = "Conversation training"
hypothesis = "Trained caseworkers shorten courses."
unit = "caseworker"
[arms]
control = 1
treatment = 1
[stratification]
method = "permuted_blocks"
factors = ["team", "size_band"]
cluster_size_bands = [0, 20]
block_sizes = [2]
[eligibility]
benefit_types = ["cash_assistance", "education_assistance"]
[outcome]
event_exits = ["ordinary_job"]
competing_exits = []
consecutive_weeks = 4
"""


@pytest.fixture
def pool(engine: Engine, tmp_path: Path) -> list[dict[str, Any]]:
    rows = synthesise(600, "pool")
    path = tmp_path / "pool.csv"
    write_cohort(rows, path)
    with db.write_session(engine) as session:
        write_cases(session, read_case_file(path, b"s" * 32))
    return rows


def test_sql_and_python_eligibility_agree(engine: Engine, pool: list[dict[str, Any]], protocols_dir: Path) -> None:
    for path in sorted(protocols_dir.glob("*.toml")):
        protocol = read_protocol_file(path)
        with db.read_session(engine) as session:
            in_sql = set(session.scalars(select(Case.case_key).where(*eligibility_conditions(protocol.eligibility))))
        assert in_sql == {r["case_id"] for r in pool if is_eligible(protocol.eligibility, r)}, path.name


def test_case_trial_strata_count_the_eligible_cases(engine: Engine, pool: list[dict[str, Any]],
                                                   protocols_dir: Path) -> None:
    """Reference: street-walker takes sickness-benefit cases of at most 12 months, stratified by
    months band [0, 2, 6] with blocks of 2, 4, 6; counted here directly from the generated rows."""
    protocol = read_protocol_file(protocols_dir / "street-walker.toml")
    with db.read_session(engine) as session:
        report = protocol_stratum_sizes(session, protocol)
    eligible = [r for r in pool if r["benefit_type"] == "sickness_benefit" and r["months_unemployed"] <= 12]
    expected = Counter(f"months_band={months_band(r['months_unemployed'], (0, 2, 6))}" for r in eligible)
    assert report.unit == "case" and report.eligible_cases == report.units == len(eligible)
    assert {s.label: s.n for s in report.strata} == dict(expected)
    assert all(s.too_small == (s.n < 2) for s in report.strata)


def test_small_strata_are_flagged(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "few.csv"
    path.write_text("case_id,primary_barrier,months_unemployed,benefit_type\n"
                    "F1,social,1,sickness_benefit\nF2,social,1,sickness_benefit\nF3,social,1,sickness_benefit\n"
                    "F4,social,3,sickness_benefit\n")
    with db.write_session(engine) as session:
        write_cases(session, read_case_file(path, b"s" * 32))
    protocol = parse_protocol(CASEWORKER_TRIAL.replace('unit = "caseworker"', 'unit = "case"')
                              .replace('factors = ["team", "size_band"]', 'factors = ["months_band"]')
                              .replace("cluster_size_bands = [0, 20]", "months_bands = [0, 2]")
                              .replace("block_sizes = [2]", "block_sizes = [4]")
                              .replace('["cash_assistance", "education_assistance"]', '["sickness_benefit"]'))
    with db.read_session(engine) as session:
        report = protocol_stratum_sizes(session, protocol)
    assert [(s.label, s.n, s.too_small) for s in report.strata] == [
        ("months_band=0-2", 3, True), ("months_band=2+", 1, True)]
    assert report.as_dict()["too_small"] == 2


def test_caseworker_trial_strata_count_caseworkers(engine: Engine, pool: list[dict[str, Any]]) -> None:
    protocol = parse_protocol(CASEWORKER_TRIAL)
    with db.read_session(engine) as session:
        report = protocol_stratum_sizes(session, protocol)
    eligible = [r for r in pool if r["benefit_type"] in ("cash_assistance", "education_assistance")]
    sizes = Counter(r["caseworker"] for r in eligible)
    teams = {r["caseworker"]: r["team"] for r in eligible}  # a synthetic caseworker works in one team
    expected = Counter(f"team={teams[c]}|size_band={months_band(n, (0, 20))}" for c, n in sizes.items())
    assert report.unit == "caseworker" and report.units == len(sizes) and report.eligible_cases == len(eligible)
    assert {s.label: s.n for s in report.strata} == dict(expected)
    assert report.without_cluster == 0


def test_cases_without_a_cluster_are_counted_in_a_note(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "nocw.csv"
    path.write_text("case_id,primary_barrier,months_unemployed,benefit_type,caseworker\n"
                    "N1,social,1,cash_assistance,SB1\nN2,social,1,cash_assistance,\n")
    with db.write_session(engine) as session:
        write_cases(session, read_case_file(path, b"s" * 32))
    with db.read_session(engine) as session:
        report = protocol_stratum_sizes(session, parse_protocol(CASEWORKER_TRIAL))
    assert report.units == 1 and report.without_cluster == 1
    assert report.notes == ["1 eligible cases have no caseworker and cannot be randomized by cluster"]


def test_strata_command(trials_cli: Any, tmp_path: Path, protocols_dir: Path) -> None:
    path = tmp_path / "pool.csv"
    trials_cli.ok("cases", "synth", "--n", "500", "--seed", "3", "-o", path)
    trials_cli.ok("cases", "import", path)
    trials_cli.ok("protocol", "register", protocols_dir / "street-walker.toml")
    shown = json.loads(trials_cli.ok("cases", "strata", "street-walker", "--json").stdout)
    assert shown["trial"] == "street-walker" and shown["version"] == 1 and shown["unit"] == "case"
    assert shown["block_sizes"] == [2, 4, 6]
    assert sum(s["n"] for s in shown["strata"]) == shown["eligible_cases"] > 0
    assert {s["stratum"] for s in shown["strata"]} <= {"months_band=0-2", "months_band=2-6", "months_band=6+"}
    text = trials_cli.ok("cases", "strata", "street-walker").stdout
    assert text.startswith("street-walker v1: ") and "permuted_blocks, block sizes 2, 4, 6" in text
    missing = trials_cli("cases", "strata", "no-such-trial")
    assert missing.exit_code == 2 and "no trial 'no-such-trial' is registered" in missing.stderr


def test_trial_stratum_sizes_needs_a_registered_trial(engine: Engine) -> None:
    with db.read_session(engine) as session, pytest.raises(NotFound):
        trial_stratum_sizes(session, "nothing-here")


def test_strata_of_a_registered_trial(engine: Engine, pool: list[dict[str, Any]], protocols_dir: Path) -> None:
    with db.write_session(engine) as session:
        register(session, read_protocol_file(protocols_dir / "job-clarification.toml"))
    with db.read_session(engine) as session:
        report = trial_stratum_sizes(session, "job-clarification")
    assert report.version == 1
    assert report.units == sum(r["benefit_type"] == "job_clarification" for r in pool)
    assert all(s.label.startswith("primary_barrier=") and "|months_band=" in s.label for s in report.strata)
