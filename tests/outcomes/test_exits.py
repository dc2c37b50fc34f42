"""`trials outcomes import`: exit records, their validation and the derived outcomes."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from tests.outcomes.conftest import PROTOCOL, TRIAL, Person, write_csv
from trials import db
from trials.models import AuditEvent, ExitRecord, Outcome, OutcomeSnapshot
from trials.outcomes.exits import exit_kind_of

MONDAY = dt.date(2025, 1, 6)
CPR = "010190-1235"
OTHER_CPR = "020290-2345"


def count(engine: Engine, model: type) -> int:
    with db.read_session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def outcomes_by_case(engine: Engine) -> dict[int, Outcome]:
    with db.read_session(engine) as session:
        return {o.case_id: o for o in session.scalars(select(Outcome))}


def test_exit_kinds_accept_ids_danish_aliases_and_returns() -> None:
    assert exit_kind_of("ordinært job") == "ordinary_job"
    assert exit_kind_of("Fleksjob") == "flexjob"
    assert exit_kind_of("førtidspension") == "disability_pension"
    assert exit_kind_of("a-dagpenge") == "unemployment_insurance"
    assert exit_kind_of("fraflytning") == "moved"
    assert exit_kind_of("død") == "died"
    assert exit_kind_of("kontanthjælp") == "cash_assistance"  # a return to that benefit
    assert exit_kind_of("tilbagefald") == "return_to_benefit"
    assert exit_kind_of("holiday") is None


def test_import_derives_every_enrolled_case(engine, enroll, trials_cli, tmp_path: Path) -> None:
    ids = enroll([
        Person("A1", MONDAY),
        Person("A2", MONDAY, arm="treatment"),
        Person("A3", MONDAY),
        Person("A4", MONDAY),
        Person(CPR, MONDAY, cpr=True),
    ])
    path = write_csv(tmp_path / "exits.csv", ["case_id", "exit_date", "exit_kind"], [
        ["A1", "2025-02-03", "ordinært job"],  # 4 weeks
        ["A2", "2025-01-20", "fleksjob"],  # competing, 2 weeks
        ["A2", "2025-03-03", "ordinary_job"],  # after the competing exit: not the event
        ["A3", "2025-01-13", "uddannelse"],  # 1 week, but back on benefit 3 weeks later
        ["A3", "2025-02-03", "kontanthjælp"],
        ["A3", "2025-04-07", "job"],  # 13 weeks: the event
        ["A3", "2025-06-02", "tilbagefald"],  # a relapse
    ])
    result = trials_cli.ok("outcomes", "import", TRIAL, path, "--as-of", "2025-12-29", "--json")
    summary = json.loads(result.stdout)
    assert summary["cases"] == 5 and summary["events"] == 2 and summary["competing"] == 1
    assert summary["rows"] == 7
    rows = outcomes_by_case(engine)
    a1, a2, a3, a4, cpr = (rows[i] for i in ids)
    assert (a1.time_weeks, a1.event, a1.exit_kind, a1.relapses) == (4, 1, "ordinary_job", 0)
    assert (a2.time_weeks, a2.event, a2.exit_kind) == (2, 0, "flexjob")
    assert (a3.time_weeks, a3.event, a3.exit_kind, a3.relapses) == (13, 1, "ordinary_job", 1)
    # no exit: censored at as-of (51 whole weeks), still on the benefit at enrollment
    assert (a4.time_weeks, a4.event, a4.exit_kind) == (51, 0, None)
    assert (cpr.time_weeks, cpr.event) == (51, 0)
    assert a4.weeks_on_support_52 is None and a4.status_52 is None  # week 52 not yet observed
    assert count(engine, ExitRecord) == 7
    with db.read_session(engine) as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "outcomes_imported")).one()
        payload = json.loads(event.payload)
        assert payload["kind"] == "exits" and payload["events"] == 2 and payload["as_of"] == "2025-12-29"
        assert payload["source_sha256"] == summary["source_sha256"]


def test_cpr_numbers_are_pseudonymised_with_the_case_key(engine, enroll, trials_cli, tmp_path: Path) -> None:
    (case,) = enroll([Person(CPR, MONDAY, cpr=True)])
    path = write_csv(tmp_path / "exits.csv", ["CPR-nummer", "afgangsdato", "afgangsårsag"], [
        ["0101901235", "17-02-2025", "ordinært job"],
    ], delimiter=";")
    trials_cli.ok("outcomes", "import", TRIAL, path, "--as-of", "2025-12-29")
    outcome = outcomes_by_case(engine)[case]
    assert (outcome.time_weeks, outcome.event) == (6, 1)


def test_a_censoring_exit_and_the_horizon(engine, enroll, trials_cli, tmp_path: Path) -> None:
    moved, long = enroll([Person("M1", MONDAY), Person("L1", MONDAY)])
    path = write_csv(tmp_path / "exits.csv", ["case_id", "exit_date", "exit_kind"], [
        ["M1", "2025-03-04", "fraflytning"],
    ])
    trials_cli.ok("outcomes", "import", TRIAL, path, "--as-of", "2027-06-01")
    rows = outcomes_by_case(engine)
    assert (rows[moved].time_weeks, rows[moved].event, rows[moved].exit_kind) == (8, 0, "moved")
    assert (rows[long].time_weeks, rows[long].event, rows[long].exit_kind) == (104, 0, None)
    assert rows[long].weeks_on_support_104 == 104 and rows[long].status_104 == "sickness_benefit"


def test_every_problem_is_listed_and_nothing_is_written(engine, enroll, trials_cli, tmp_path: Path) -> None:
    enroll([Person("A1", MONDAY), Person("A2", MONDAY), Person(CPR, MONDAY, cpr=True)])
    enroll([Person("B1", MONDAY)], PROTOCOL.replace('"outcome-test"', '"other-trial"'))
    path = write_csv(tmp_path / "exits.csv", ["case_id", "exit_date", "exit_kind"], [
        ["A1", "2025-02-03", "ordinary_job"],  # fine
        ["ZZ", "2025-02-03", "ordinary_job"],  # 3: unknown case
        ["B1", "2025-02-03", "ordinary_job"],  # 4: enrolled in another trial
        ["A2", "2024-12-30", "ordinary_job"],  # 5: before enrollment
        ["A2", "2026-02-03", "ordinary_job"],  # 6: after --as-of
        ["A2", "2025-02-10", "holiday"],  # 7: unknown exit kind
        ["A1", "2025-02-03", "ordinary_job"],  # 8: duplicate of row 2
        ["A1", "2025-02-03", "flexjob"],  # 9: conflicts with row 2
        ["A2", "2025-13-45", "ordinary_job"],  # 10: not a date
        ["", "2025-02-03", "ordinary_job"],  # 11: empty id
        [OTHER_CPR, "2025-02-03", "ordinary_job"],  # 12: a CPR in the case_id column: unknown, never echoed
    ])
    result = trials_cli("outcomes", "import", TRIAL, path, "--as-of", "2025-12-29")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    expected = {
        3: "unknown case", 4: "not enrolled in trial outcome-test", 5: "before the enrollment",
        6: "after --as-of", 7: "unknown exit kind", 8: "duplicate of row 2", 9: "conflicts with row 2",
        10: "not a date", 11: "case id is empty", 12: "unknown case",
    }
    assert len(lines) == len(expected)
    for line, (row, text) in zip(lines, sorted(expected.items()), strict=True):
        assert line.startswith(f"error: exits.csv, row {row}, column "), line
        assert text in line
    assert OTHER_CPR not in result.stderr and OTHER_CPR.replace("-", "") not in result.stderr
    assert count(engine, OutcomeSnapshot) == 0 and count(engine, Outcome) == 0 and count(engine, ExitRecord) == 0


def test_an_invalid_cpr_is_reported_without_echoing_it(engine, enroll, trials_cli, tmp_path: Path) -> None:
    enroll([Person(CPR, MONDAY, cpr=True)])
    path = write_csv(tmp_path / "exits.csv", ["cpr", "exit_date", "exit_kind"], [["320190-1235", "2025-02-03", "job"]])
    result = trials_cli("outcomes", "import", TRIAL, path, "--as-of", "2025-12-29")
    assert result.exit_code == 2
    assert "row 2, column cpr: not a valid CPR number" in result.stderr
    assert "320190" not in result.stderr


def test_missing_columns_and_unknown_trial(enroll, trials_cli, tmp_path: Path) -> None:
    enroll([Person("A1", MONDAY)])
    path = write_csv(tmp_path / "exits.csv", ["case_id", "when"], [["A1", "2025-02-03"]])
    result = trials_cli("outcomes", "import", TRIAL, path, "--as-of", "2025-12-29")
    assert result.exit_code == 2
    assert "needs a column exit_date" in result.stderr and "needs a column exit_kind" in result.stderr
    result = trials_cli("outcomes", "import", "no-such-trial", path, "--as-of", "2025-12-29")
    assert result.exit_code == 2 and "no trial 'no-such-trial'" in result.stderr
